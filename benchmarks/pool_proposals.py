"""IC importance sampling over a simulator pool: copies that wait for each other's proposals vs not,
and the price of reproducible proposals.

An IC network is trained in-process on the Gaussian model; then a pool of
``--workers`` copies runs ``--traces`` IC importance-sampling traces, alternating
between the pool as it is (a copy waiting for a proposal waits, for at most one
network call's time, for the others to join its batch), the pool with that
wait turned off (``GATHER_CAP_SECONDS = 0``: each proposal is answered as soon as
it arrives), and the waiting pool made ``reproducible`` (each trace's proposal
drawn from its own stream, with a head call of its own, as under ``--seed``).
It prints traces/s, how the proposals were batched, and the ratios.

    python -m benchmarks.pool_proposals [--traces 2000] [--rounds 5] [--workers 2]
"""

from __future__ import annotations

import argparse
import collections
import time

import numpy as np
import torch

from benchmarks._processes import machine
from benchmarks.ic_efficiency import train
from inference.ic import NetworkProposal
from inference.ic import proposal as proposal_module
from inference.importance import importance_sampling
from inference.pool import SimulatorPool
from simulators import gaussian

OBSERVED = {"obs0": np.array(8.0), "obs1": np.array(9.0)}


def run(network, traces: int, workers: int, gather_cap: float, batch_sizes: list[int],
        reproducible: bool = False) -> float:
    SimulatorPool.GATHER_CAP_SECONDS = gather_cap
    batch_sizes.clear()
    with SimulatorPool("python -m simulators.gaussian", workers=workers, reproducible=reproducible) as pool:
        started = time.perf_counter()
        importance_sampling(pool, traces, OBSERVED, proposal=NetworkProposal(network, OBSERVED))
        return traces / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=2000, help="IS traces per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of both modes")
    parser.add_argument("--workers", type=int, default=2, help="simulator copies in the pool")
    parser.add_argument("--train", type=int, default=5000, help="IC training traces")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print(f"machine: {machine()}")
    network = train(gaussian.model, args.train)[0].network

    batch_sizes: list[int] = []
    original = proposal_module._advance

    def counting(requests):
        batch_sizes.append(len(requests))
        return original(requests)

    proposal_module._advance = counting
    default_cap = SimulatorPool.GATHER_CAP_SECONDS
    run(network, args.traces // 4, args.workers, default_cap, batch_sizes)  # warm-up: first calls are slow
    modes = (("waiting", default_cap, False), ("not waiting", 0.0, False), ("reproducible", default_cap, True))
    rates: dict[str, list[float]] = {mode: [] for mode, _, _ in modes}
    for _ in range(args.rounds):
        for mode, cap, reproducible in modes:
            rate = run(network, args.traces, args.workers, cap, batch_sizes, reproducible)
            rates[mode].append(rate)
            print(f"{mode:>12}: {rate:7.0f} traces/s   network calls by batch size "
                  f"{dict(sorted(collections.Counter(batch_sizes).items()))}")
    SimulatorPool.GATHER_CAP_SECONDS = default_cap
    waiting, alone, reproducible = (np.median(rates[mode]) for mode, _, _ in modes)
    print(f"median: waiting {waiting:.0f} traces/s, not waiting {alone:.0f} traces/s, ratio {waiting / alone:.2f}; "
          f"reproducible {reproducible:.0f} traces/s, {reproducible / waiting:.2f} of waiting")


if __name__ == "__main__":
    main()
