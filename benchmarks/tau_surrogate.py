"""End-to-end tau-decay simulation speed with the shower stage run by the simulator vs by a GAN surrogate.

Both run the same tau model in-process (the engine's ``LocalSimulator``), the
surrogate answering every ``ppx.stage("shower", ...)`` call. The surrogate here is
trained only briefly: speed does not depend on training.

    python -m benchmarks.tau_surrogate [--traces 300]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from benchmarks._processes import machine
from inference.local import LocalSimulator
from inference.surrogate.record import record_showers
from inference.surrogate.serving import ShowerStage
from inference.surrogate.showers_file import read_showers
from inference.surrogate.train import train_surrogate
from simulators import calorimeter, tau_decay


def traces_per_second(simulator: LocalSimulator, count: int) -> tuple[float, int]:
    simulator.prior(10)
    started = time.perf_counter()
    traces = simulator.prior(count)
    return count / (time.perf_counter() - started), sum(len(t.stages) for t in traces)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        showers = Path(folder) / "showers.h5"
        record_showers(LocalSimulator(calorimeter.model), 500, showers, progress=False)
        checkpoint = Path(folder) / "surrogate.ckpt"
        train_surrogate(read_showers(showers), checkpoint, progress=False, epochs=1)
        stage = ShowerStage.load(str(checkpoint))
    simulated, calls = traces_per_second(LocalSimulator(tau_decay.model), args.traces)
    surrogated, _ = traces_per_second(LocalSimulator(tau_decay.model, stages={"shower": stage}), args.traces)
    print(f"machine: {machine()}")
    print(f"tau traces/s, simulator's shower stage: {simulated:8.1f} ({calls / args.traces:.1f} showers per trace)")
    print(f"tau traces/s, GAN surrogate stage:      {surrogated:8.1f}")
    print(f"end-to-end speed-up: {surrogated / simulated:.2f}x")


if __name__ == "__main__":
    main()
