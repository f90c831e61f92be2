"""Effective samples per simulator run and per second: IC importance sampling vs prior IS vs RMH.

For each model the IC network is trained in-process first (its training rate is
printed too); then the three engines run on the same observation with the same
number of simulator runs. ESS is Kish's for IS and ArviZ's for the RMH chain.

    python -m benchmarks.ic_efficiency [--train 20000] [--runs 2000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from benchmarks._processes import machine
from inference.ic import NetworkConfig, NetworkProposal, OnlineSource, Trainer, TrainingConfig
from inference.importance import importance_sampling
from inference.local import LocalSimulator
from inference.mcmc import metropolis_hastings
from simulators import branching, gaussian

CASES = {
    "gaussian (obs 8, 9)": (gaussian.model, {"obs0": 8.0, "obs1": 9.0}, "mu"),
    "branching (obs 10)": (branching.model, {"obs": 10.0}, "count"),
}


def train(model, traces: int) -> tuple[Trainer, float]:
    source = OnlineSource(LocalSimulator(model), batch_size=64)
    started = time.perf_counter()
    try:
        trainer = Trainer(source, NetworkConfig(lstm_dim=64), TrainingConfig(validate_every=10 * traces))
        trainer.train(traces, progress_bar=False)
    finally:
        source.close()
    return trainer, traces / (time.perf_counter() - started)


def timed(run):
    started = time.perf_counter()
    posterior = run()
    return posterior, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=20_000, help="IC training traces per model")
    parser.add_argument("--runs", type=int, default=2000, help="simulator runs per engine")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print(f"machine: {machine()}")
    for label, (model, observed, variable) in CASES.items():
        trainer, rate = train(model, args.train)
        simulator = LocalSimulator(model)
        observations = {k: np.array(v) for k, v in observed.items()}
        ic, ic_seconds = timed(lambda: importance_sampling(
            simulator, args.runs, observed, proposal=NetworkProposal(trainer.network, observations)))
        prior, prior_seconds = timed(lambda: importance_sampling(simulator, args.runs, observed))
        rmh, rmh_seconds = timed(lambda: metropolis_hastings(simulator, args.runs, observed, chains=1,
                                                             burn_in=0, seed=0))
        rows = {"IC IS": (ic.ess, ic_seconds), "prior IS": (prior.ess, prior_seconds),
                "RMH": (float(np.ravel(rmh.variable_ess(variable))[0]), rmh_seconds)}
        print(f"\n{label}: IC trained on {args.train} traces at {rate:.0f} traces/s; {args.runs} runs per engine")
        print(f"{'engine':<10}{'ESS':>10}{'ESS/run':>10}{'ESS/s':>10}")
        for engine, (ess, seconds) in rows.items():
            print(f"{engine:<10}{ess:>10.1f}{ess / args.runs:>10.4f}{ess / seconds:>10.1f}")
        print(f"ratio IC/prior IS, ESS per run: {ic.ess / prior.ess:.1f}; "
              f"IC/RMH: {ic.ess / max(rows['RMH'][0], 1e-9):.1f}")


if __name__ == "__main__":
    main()
