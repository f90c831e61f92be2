"""Showers per second: the calorimeter shower stage against its GAN surrogate, on CPU, in one run.

Both make showers for the same random particle kinds (uniform over electron,
photon, pion) and energies (uniform in 1-100 GeV), one at a time (batch 1:
``simulators.calorimeter.shower`` against ``Surrogate.sample`` of one shower)
and many at once (``showers`` against ``sample`` of the whole batch). The stage
is also timed through the engine (``LocalSimulator`` prior traces), which is
how ``ppx surrogate record`` runs it. The surrogate's cost does not depend on
its weights: without --surrogate an untrained generator of the default
architecture is timed. Rates are given per second of wall time and per second
of the process's CPU time: on a shared machine the second is the steadier
measure of the work each side does (both run on one core).

    python -m benchmarks.surrogate_speed [--surrogate surrogate.pt] [--batch 10000] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import numpy as np
import torch

from benchmarks._processes import machine
from inference.local import LocalSimulator
from inference.surrogate.conditioning import Conditioning
from inference.surrogate.config import SurrogateConfig
from inference.surrogate.geometry import CALOGAN
from inference.surrogate.response import ResponseModel
from inference.surrogate.sampler import ShowerSampler
from inference.surrogate.surrogate import Surrogate
from simulators import calorimeter


def rate(make: Callable[[int], object], count: int, repeats: int = 1) -> tuple[float, float]:
    """Showers per second of wall time and per second of CPU time of ``make(count)``, each the best of
    ``repeats`` runs."""
    wall = cpu = float("inf")
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        make(count)
        wall, cpu = min(wall, time.perf_counter() - started), min(cpu, time.process_time() - started_cpu)
    return count / wall, count / cpu


def untrained_surrogate(rng: np.random.Generator) -> Surrogate:
    """The default architecture with fresh weights, and a response model fitted to made-up responses."""
    kinds = rng.integers(0, len(calorimeter.KINDS), 10_000)
    energies = rng.uniform(*calorimeter.ENERGY_RANGE, len(kinds))
    response = ResponseModel.fit(kinds, energies, rng.normal(0.18, 0.01, len(kinds)), len(calorimeter.KINDS))
    conditioning = Conditioning(len(calorimeter.KINDS), float(np.log(30.0)), 1.0)
    sampler = ShowerSampler.from_config(SurrogateConfig(), CALOGAN, conditioning, response)
    return Surrogate(sampler, CALOGAN, calorimeter.KINDS, "GeV", calorimeter.ENERGY_RANGE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--surrogate", help="checkpoint from `ppx surrogate train` (default: untrained, same cost)")
    parser.add_argument("--batch", type=int, default=10_000, help="showers in the large batch (default 10000)")
    parser.add_argument("--singles", type=int, default=300, help="showers made one at a time by the stage")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the surrogate (default 1; "
                                                                "the stage runs on one core)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    count = max(args.batch, args.singles * 10)
    kinds = rng.integers(0, len(calorimeter.KINDS), count)
    energies = rng.uniform(*calorimeter.ENERGY_RANGE, count)
    surrogate = Surrogate.load(args.surrogate) if args.surrogate else untrained_surrogate(rng)
    surrogate.sample(kinds[:1000], energies[:1000])  # warm up

    def stage_one_by_one(n: int) -> None:
        for kind, energy in zip(kinds[:n], energies[:n]):
            calorimeter.shower(int(kind), float(energy), rng)

    def surrogate_one_by_one(n: int) -> None:
        for kind, energy in zip(kinds[:n], energies[:n]):
            surrogate.sample(int(kind), float(energy))

    engine = LocalSimulator(calorimeter.model)
    results = {
        "stage, batch 1": rate(stage_one_by_one, args.singles),
        "stage through the engine, 1 trace at a time": rate(lambda n: engine.prior(n), args.singles),
        f"stage, batch {args.batch}": rate(lambda n: calorimeter.showers(kinds[:n], energies[:n], rng), args.batch),
        "surrogate, batch 1": rate(surrogate_one_by_one, args.singles * 10, repeats=3),
        f"surrogate, batch {args.batch}": rate(lambda n: surrogate.sample(kinds[:n], energies[:n]), args.batch,
                                               repeats=3),
    }
    print(f"machine: {machine()}; torch {torch.__version__}, {torch.get_num_threads()} thread(s) for the surrogate")
    print(f"surrogate: {args.surrogate or 'untrained generator of the default architecture'}")
    print(f"{'':<46s} {'showers/s':>12s} {'per CPU s':>12s}")
    for name, (wall, cpu) in results.items():
        print(f"{name:<46s} {wall:12,.0f} {cpu:12,.0f}")
    for which, column in (("wall time", 0), ("CPU time", 1)):
        one = results["surrogate, batch 1"][column] / results["stage, batch 1"][column]
        many = results[f"surrogate, batch {args.batch}"][column] / results[f"stage, batch {args.batch}"][column]
        print(f"speed-up by {which} at batch 1: {one:,.0f}x; at batch {args.batch}: {many:,.0f}x "
              f"(target above 1000x)")


if __name__ == "__main__":
    main()
