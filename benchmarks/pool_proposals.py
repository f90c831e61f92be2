"""IC importance sampling over a simulator pool: copies that wait for each other's proposals vs not,
and the price of reproducible proposals.

An IC network is trained in-process on the Gaussian model; then a pool of
``--workers`` copies runs ``--traces`` IC importance-sampling traces, alternating
between the pool as it is (a copy waiting for a proposal waits, for at most one
network call's time, for the others to join its batch), the pool with that
wait turned off (``GATHER_CAP_SECONDS = 0``: each proposal is answered as soon as
it arrives), and the waiting pool made ``reproducible`` (each trace's proposal
drawn from its own stream, with a head call of its own, as under ``--seed``).
It prints traces/s, how the proposals were batched, and the ratios. With
``--network CKPT`` (a tau network, see README's longer run) the pool runs the tau
simulator on held-out event 0 instead, where the simulator's own time dominates.

    python -m benchmarks.pool_proposals [--traces 2000] [--rounds 5] [--workers 2]
    python -m benchmarks.pool_proposals --network tau.ckpt --traces 300 --rounds 3
"""

from __future__ import annotations

import argparse
import collections
import time

import numpy as np

from benchmarks._processes import start_run
from benchmarks.ic_efficiency import train
from benchmarks.tau_inference import FIRST_EVENT_SEED
from inference.ic import NetworkProposal
from inference.ic import proposal as proposal_module
from inference.ic.adapt import quiet_weight_warnings
from inference.ic.checkpoint import load_checkpoint
from inference.importance import importance_sampling
from inference.pool import SimulatorPool
from simulators import gaussian, tau_decay

GAUSSIAN = ("python -m simulators.gaussian", {"obs0": np.array(8.0), "obs1": np.array(9.0)})


def run(network, simulator: tuple[str, dict], traces: int, workers: int, gather_cap: float,
        batch_sizes: list[int], reproducible: bool = False) -> float:
    command, observed = simulator
    SimulatorPool.GATHER_CAP_SECONDS = gather_cap
    with SimulatorPool(command, workers=workers, reproducible=reproducible) as pool, quiet_weight_warnings():
        importance_sampling(pool, 2 * workers, observed, proposal=NetworkProposal(network, observed))  # start-up
        batch_sizes.clear()
        started = time.perf_counter()
        importance_sampling(pool, traces, observed, proposal=NetworkProposal(network, observed))
        return traces / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=2000, help="IS traces per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of both modes")
    parser.add_argument("--workers", type=int, default=2, help="simulator copies in the pool")
    parser.add_argument("--train", type=int, default=5000, help="IC training traces (Gaussian)")
    parser.add_argument("--network", help="a tau IC checkpoint: run tau events instead of the Gaussian")
    args = parser.parse_args()
    start_run()
    if args.network:
        network = load_checkpoint(args.network)[0].eval()
        _, observed = tau_decay.generate_event(FIRST_EVENT_SEED, image_source="likelihood")
        simulator = ("python -m simulators.tau_decay --image-source likelihood", observed)
    else:
        network, simulator = train(gaussian.model, args.train)[0].network, GAUSSIAN

    batch_sizes: list[int] = []
    original = proposal_module._advance

    def counting(requests):
        batch_sizes.append(len(requests))
        return original(requests)

    proposal_module._advance = counting
    default_cap = SimulatorPool.GATHER_CAP_SECONDS
    run(network, simulator, args.traces // 4, args.workers, default_cap, batch_sizes)  # warm-up: first calls are slow
    modes = (("waiting", default_cap, False), ("not waiting", 0.0, False), ("reproducible", default_cap, True))
    rates: dict[str, list[float]] = {mode: [] for mode, _, _ in modes}
    for _ in range(args.rounds):
        for mode, cap, reproducible in modes:
            rate = run(network, simulator, args.traces, args.workers, cap, batch_sizes, reproducible)
            rates[mode].append(rate)
            print(f"{mode:>12}: {rate:7.0f} traces/s   network calls by batch size "
                  f"{dict(sorted(collections.Counter(batch_sizes).items()))}")
    SimulatorPool.GATHER_CAP_SECONDS = default_cap
    waiting, alone, reproducible = (np.median(rates[mode]) for mode, _, _ in modes)
    print(f"median: waiting {waiting:.0f} traces/s, not waiting {alone:.0f} traces/s, ratio {waiting / alone:.2f}; "
          f"reproducible {reproducible:.0f} traces/s, {reproducible / waiting:.2f} of waiting")


if __name__ == "__main__":
    main()
