"""What CURVE authentication costs: engine <-> Gaussian simulator with and without it, in one run.

Both simulators are separate processes on ipc endpoints; the CURVE one is given
fresh keys from ``ppx.curve.create_keys``. Measured step by step (four round trips
per trace) and with whole prior traces in batches of 256 (``trace-batch``), the
two settings alternating so that a change in the machine's load hits both.

    python -m benchmarks.curve_overhead [--seconds 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

import torch

from benchmarks._processes import machine, simulator_process
from inference.remote import RemoteSimulator
from ppx.curve import ENVIRONMENT_VARIABLE, create_keys


def connect(address: str, keys: Optional[Path]) -> RemoteSimulator:
    """A connection with ``keys`` (None: plain); RemoteSimulator reads them from $PPX_CURVE as it connects."""
    os.environ[ENVIRONMENT_VARIABLE] = str(keys) if keys else ""
    return RemoteSimulator(address, handshake_timeout=60)


def traces_per_second(simulator: RemoteSimulator, draw: Callable[[RemoteSimulator], int], seconds: float) -> float:
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        count += draw(simulator)
    return count / (time.perf_counter() - started)


def step_by_step(simulator: RemoteSimulator) -> int:
    for _ in range(50):
        simulator.run()
    return 50


def batched(simulator: RemoteSimulator) -> int:
    return len(simulator.prior(1024, batch_size=256))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating plain/CURVE rounds")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the ppx command and the simulators run
    os.environ[ENVIRONMENT_VARIABLE] = ""  # the simulators get their keys from --curve alone
    with tempfile.TemporaryDirectory() as folder:
        keys = create_keys(Path(folder) / "keys")
        with simulator_process("simulators.gaussian") as plain_address, \
                simulator_process("simulators.gaussian", "--curve", str(keys)) as curve_address, \
                connect(plain_address, None) as plain, connect(curve_address, keys) as secured:
            for simulator in (plain, secured):  # warm up
                step_by_step(simulator)
                batched(simulator)
            rates: dict[tuple[str, str], list[float]] = {}
            for _ in range(args.rounds):
                for mode, draw in (("step by step", step_by_step), ("batched", batched)):
                    for name, simulator in (("plain", plain), ("CURVE", secured)):
                        rates.setdefault((mode, name), []).append(traces_per_second(simulator, draw, args.seconds))
    print(f"machine: {machine()}")
    for mode in ("step by step", "batched"):
        plain_rate, curve_rate = (max(rates[(mode, name)]) for name in ("plain", "CURVE"))
        print(f"{mode:13s} plain {plain_rate:8.0f} traces/s, CURVE {curve_rate:8.0f} traces/s, "
              f"ratio CURVE / plain {curve_rate / plain_rate:.2f} (best of {args.rounds})")


if __name__ == "__main__":
    main()
