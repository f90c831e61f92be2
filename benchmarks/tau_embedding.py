"""Tau IC networks with and without spatial moments in their calorimeter embedding, on the same traces.

Prior traces of the tau-decay simulator are drawn once from a pool; then one IC
network per embedding kind (``cnn``: conv levels pooled to a grid, ``cnn-moments``:
the grid plus spatial moments) trains on exactly the same batches, in
the same order, from the same initial seed. It prints each network's loss on
held-out traces along the way (nats per trace, lower is better), the training
rate, and the final difference.

    python -m benchmarks.tau_embedding [--traces 10000] [--epochs 2] [--held-out 512] [--workers 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from benchmarks._processes import machine
from inference.ic import NetworkConfig, Trainer, TrainingConfig
from inference.ic.network import controlled_samples
from inference.pool import SimulatorPool

KINDS = ("cnn-moments", "cnn")


class ReplaySource:
    """The validation traces once (the trainer takes them first), then the training traces in the
    same batches, epoch after epoch."""

    def __init__(self, validation: list, training: list, batch_size: int) -> None:
        self.validation = [validation[i:i + batch_size] for i in range(0, len(validation), batch_size)]
        self.batches = [training[i:i + batch_size] for i in range(0, len(training), batch_size)]
        self.position = 0

    def next_batch(self) -> list:
        if self.validation:
            return self.validation.pop(0)
        batch = self.batches[self.position % len(self.batches)]
        self.position += 1
        return batch


def known(network, traces: list) -> list:
    """The traces whose every address the network has learnt (the same for both networks, which
    trained on the same batches)."""
    return [t for t in traces if all(network.knows(c.key) for c in controlled_samples(t))]


def held_out_loss(network, traces: list) -> tuple[float, int]:
    """Mean loss over the held-out traces the network knows, and how many those are."""
    traces = known(network, traces)
    network.eval()
    with torch.no_grad():
        loss = float(np.mean([float(network.loss(traces[i:i + 64])) for i in range(0, len(traces), 64)]))
    network.train()
    return loss, len(traces)


def address_losses(network, traces: list) -> tuple[dict[str, float], dict[str, float], int]:
    """Per address, the network's -log q and the prior's -log p, in nats per trace, over the
    traces the network knows, and how many those are."""
    traces = known(network, traces)
    proposal: dict[str, float] = {}
    network.eval()
    with torch.no_grad():
        for i in range(0, len(traces), 64):
            network.loss(traces[i:i + 64], per_address=proposal)
    network.train()
    prior: dict[str, float] = {}
    for trace in traces:
        for choice in controlled_samples(trace):
            prior[choice.key] = prior.get(choice.key, 0.0) - choice.log_prob
    return ({key: value / len(traces) for key, value in proposal.items()},
            {key: value / len(traces) for key, value in prior.items()}, len(traces))


def site_table(network, traces: list, rows: int = 12) -> str:
    """The addresses that take most of the held-out loss: -log q and the prior's -log p per trace."""
    proposal, prior, _ = address_losses(network, traces)
    return format_site_table(proposal, prior, rows)


def format_site_table(proposal: dict[str, float], prior: dict[str, float], rows: int = 12) -> str:
    lines = [f"    {'address':<44} {'-log q':>8} {'-log p':>8} {'gain':>7}   (nats per trace)"]
    for key in sorted(proposal, key=proposal.get, reverse=True)[:rows]:
        lines.append(f"    {key:<44} {proposal[key]:8.2f} {prior[key]:8.2f} {prior[key] - proposal[key]:7.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=10_000, help="training traces, drawn once")
    parser.add_argument("--epochs", type=int, default=2, help="passes over them per network")
    parser.add_argument("--held-out", type=int, default=512, help="held-out traces for the loss")
    parser.add_argument("--workers", type=int, default=2, help="simulator copies drawing the traces")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"machine: {machine()}")
    started = time.perf_counter()
    with SimulatorPool("python -m simulators.tau_decay", workers=args.workers, timeout=120) as pool:
        traces = pool.prior(args.traces + args.held_out + 256, batch_size=args.batch_size)
    print(f"drew {len(traces)} prior traces in {time.perf_counter() - started:.0f} s")
    validation, held_out, training = traces[:256], traces[256:256 + args.held_out], traces[256 + args.held_out:]

    results = {}
    for kind in KINDS:
        torch.manual_seed(0)
        source = ReplaySource(validation, training, args.batch_size)
        trainer = Trainer(source, NetworkConfig(lstm_dim=128, embeddings={"calorimeter": kind}),
                          TrainingConfig(batch_size=args.batch_size, validation_size=256,
                                         validate_every=args.traces // 2))
        began = time.perf_counter()
        trainer.train(args.epochs * args.traces, progress_bar=False)
        rate = args.epochs * args.traces / (time.perf_counter() - began)
        results[kind], count = held_out_loss(trainer.network, held_out)
        curve = ", ".join(f"{loss:.1f}" for _, loss in trainer.progress["validation"])
        print(f"{kind:>10}: held-out loss {results[kind]:.2f} nats/trace ({count} traces), {rate:.0f} traces/s; "
              f"validation along the way {curve}")
        print(site_table(trainer.network, held_out))
    print(f"held-out loss, cnn-moments minus cnn: {results['cnn-moments'] - results['cnn']:+.2f} nats/trace")


if __name__ == "__main__":
    main()
