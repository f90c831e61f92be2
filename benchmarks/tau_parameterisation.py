"""What two choices in the IC network's parameterisation buy on tau traces, against their earlier forms.

Nearly every costly site of a tau trace has a Uniform prior (px, py, pz, the
decay angles, the rejection loops' candidates), and the posterior fixes several
of them a hundred times finer than their priors. Three networks train on the
same traces in the same batches from the same seed:

* ``current``: Uniform and Beta heads read out each Beta component's mean and
  log concentration relative to the prior's (``inference.ic.proposals.bounded``),
  and value embeddings read earlier values relative to their priors
  (``inference.ic.network.in_prior_units``);
* ``alpha-beta``: the earlier heads, alpha and beta through softplus (defined here);
* ``raw-values``: value embeddings reading raw values (px in GeV, angles in radians).

It prints each one's held-out loss along the way and its costliest addresses
beside the prior's -log p there.

Traces come from ``ppx prior --out DIR --shard-size N`` files (``--dataset``):
the first file's first 256 traces validate, the next ``--held-out`` are held
out, and the other files train. Without ``--dataset`` they are drawn from a pool.

    python -m benchmarks.tau_parameterisation [--dataset 'prior.h5/*.h5'] [--steps 600] [--learning-rate 1e-3]
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import time
from typing import Iterator

import torch

from benchmarks._processes import machine
from benchmarks.tau_embedding import ReplaySource, held_out_loss, site_table
from inference.ic import NetworkConfig, Trainer, TrainingConfig
from inference.ic import network as network_module
from inference.ic.network import in_prior_units
from inference.ic.proposals import make_head
from inference.ic.proposals.base import ProposalHead, positive
from inference.ic.proposals.bounded import _ScaledBetaMixture
from inference.ic.sources import OfflineSource
from inference.pool import SimulatorPool
from inference.trace_file import TraceFile

VARIANTS = ("current", "alpha-beta", "raw-values")


class AlphaBetaHead(ProposalHead):
    """The earlier bounded head: each component's alpha and beta are softplus of the read-out."""

    outputs_per_element = 3

    def __init__(self, hidden_dim: int, numel: int, components: int, unit_interval: bool) -> None:
        super().__init__(hidden_dim, numel, components)
        self.unit_interval = unit_interval

    def forward(self, hidden, prior_params):
        logits, alpha, beta = self._outputs(hidden)
        if self.unit_interval:
            zeros = torch.zeros_like(prior_params[0])
            low, high = zeros, zeros + 1
        else:
            low, high = prior_params
        return _ScaledBetaMixture(logits, positive(alpha), positive(beta), low, high)


@contextlib.contextmanager
def alpha_beta_heads() -> Iterator[None]:
    """New Uniform and Beta addresses get ``AlphaBetaHead`` while inside."""

    def earlier_make_head(kind, hidden_dim, numel, components, categories=0):
        if kind in ("Uniform", "Beta"):
            return AlphaBetaHead(hidden_dim, numel, components, unit_interval=kind == "Beta")
        return make_head(kind, hidden_dim, numel, components, categories)

    network_module.make_head = earlier_make_head
    try:
        yield
    finally:
        network_module.make_head = make_head


@contextlib.contextmanager
def raw_value_embeddings() -> Iterator[None]:
    """Value embeddings read values as the simulator gave them while inside."""
    network_module.in_prior_units = lambda kind, values, params: values.double()
    try:
        yield
    finally:
        network_module.in_prior_units = in_prior_units


VARIATIONS = {"current": contextlib.nullcontext, "alpha-beta": alpha_beta_heads, "raw-values": raw_value_embeddings}


class ValidationFirst:
    """The validation traces once (the trainer takes them first), then batches of the training files."""

    def __init__(self, validation: list, training: OfflineSource) -> None:
        self.validation, self.training = [validation], training

    def next_batch(self) -> list:
        return self.validation.pop() if self.validation else self.training.next_batch()


def sources(args: argparse.Namespace) -> tuple[list, list, callable]:
    """Validation traces, held-out traces, and a maker of identical training sources."""
    if args.dataset:
        paths = sorted(glob.glob(args.dataset))
        if len(paths) < 2:
            raise SystemExit(f"--dataset {args.dataset!r} matches {len(paths)} file(s); it needs two or more: "
                             f"the first validates and holds out, the others train")
        first = TraceFile(paths[0])
        validation, held_out = first.read(0, 256), first.read(256, 256 + args.held_out)
        first.close()
        return validation, held_out, lambda: ValidationFirst(validation, OfflineSource(paths[1:], args.batch_size,
                                                                                     seed=0))
    started = time.perf_counter()
    with SimulatorPool("python -m simulators.tau_decay", workers=args.workers, timeout=120) as pool:
        traces = pool.prior(args.steps * args.batch_size + args.held_out + 256, batch_size=args.batch_size)
    print(f"drew {len(traces)} prior traces in {time.perf_counter() - started:.0f} s")
    validation, held_out, training = traces[:256], traces[256:256 + args.held_out], traces[256 + args.held_out:]
    return validation, held_out, lambda: ReplaySource(validation, training, args.batch_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", help="glob of trace files from `ppx prior --out DIR --shard-size N`")
    parser.add_argument("--steps", type=int, default=600, help="optimisation steps per network")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--held-out", type=int, default=512, help="held-out traces for the loss")
    parser.add_argument("--workers", type=int, default=2, help="simulator copies drawing traces without --dataset")
    parser.add_argument("--variants", type=lambda text: text.split(","), default=list(VARIANTS),
                        help=f"comma-separated, of {', '.join(VARIANTS)} (default all)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for training")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {machine()}")
    validation, held_out, make_source = sources(args)
    traces = args.steps * args.batch_size
    results = {}
    for variant in args.variants:
        torch.manual_seed(0)
        trainer = Trainer(make_source(), NetworkConfig(lstm_dim=128),
                          TrainingConfig(batch_size=args.batch_size, learning_rate=args.learning_rate,
                                         validation_size=256, validate_every=max(args.batch_size, traces // 4)))
        began = time.perf_counter()
        with VARIATIONS[variant]():  # held in force while the held-out loss is measured, too
            trainer.train(traces, progress_bar=False)
            rate = traces / (time.perf_counter() - began)
            results[variant], count = held_out_loss(trainer.network, held_out)
            curve = ", ".join(f"{loss:.2f}" for _, loss in trainer.progress["validation"])
            print(f"{variant:>10}: held-out loss {results[variant]:.2f} nats/trace ({count} traces) after "
                  f"{trainer.progress['steps']} steps, {rate:.0f} traces/s; validation along the way {curve}")
            print(site_table(trainer.network, held_out))
    for variant in [v for v in args.variants if v != "current" and "current" in results]:
        print(f"held-out loss, {variant} minus current: {results[variant] - results['current']:+.2f} nats/trace")


if __name__ == "__main__":
    main()
