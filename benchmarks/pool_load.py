"""A simulator pool under sustained load: traces/s and resident memory per window, last window over first.

Two copies of a simulator (the Gaussian model by default) produce ``--traces``
prior traces in each prior mode: ``batched`` (the simulators sample whole traces
and send them in batches, the ``trace-batch`` extension) and ``step`` (one round
trip per random choice, as for plain PPX simulators). The traces are drawn in
windows of ``--window`` and dropped after each (as a dataset writer would), and
for each window the script prints the rate and the resident memory (VmRSS from
/proc) of the engine and of the simulators together. A steady run has rate and
memory ratios near 1 between its last and first windows.

    python -m benchmarks.pool_load [--traces 100000] [--window 5000] [--modes batched,step]
                                   [--simulator "python -m simulators.gaussian"] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from benchmarks._processes import machine
from inference.controllers import PRIOR
from inference.pool import SimulatorPool


def resident_mib(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB (VmRSS in /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise ValueError(f"/proc/{pid}/status has no VmRSS line")


def draw(pool: SimulatorPool, mode: str, count: int, batch_size: int) -> int:
    if mode == "batched":
        return len(pool.prior(count, batch_size=batch_size))
    return len(pool.run_many([PRIOR] * count))


def load_run(pool: SimulatorPool, mode: str, traces: int, window: int, batch_size: int) -> list[tuple]:
    """Rows of (window, traces/s, engine MiB, simulators MiB) over ``traces`` traces."""
    rows = []
    print(f"\n{mode}: {traces:,} traces in windows of {window:,}")
    print(f"{'window':>6} {'traces':>9} {'traces/s':>9} {'engine MiB':>11} {'simulators MiB':>15}")
    for index in range(traces // window):
        started = time.perf_counter()
        done = draw(pool, mode, window, batch_size)
        rate = done / (time.perf_counter() - started)
        engine = resident_mib(os.getpid())
        simulators = sum(resident_mib(process.pid) for process in pool.processes)
        rows.append((index, rate, engine, simulators))
        print(f"{index:>6} {(index + 1) * window:>9,} {rate:>9.0f} {engine:>11.1f} {simulators:>15.1f}",
              flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=100_000, help="traces per mode (default 100,000)")
    parser.add_argument("--window", type=int, default=5_000, help="traces per measurement window (default 5,000)")
    parser.add_argument("--modes", default="batched,step", help="batched, step or both (default both)")
    parser.add_argument("--simulator", default="python -m simulators.gaussian", help="simulator command")
    parser.add_argument("--workers", type=int, default=2, help="simulator copies (default 2)")
    parser.add_argument("--batch-size", type=int, default=64, help="traces per batch message (default 64)")
    args = parser.parse_args()
    if args.traces < 2 * args.window:
        parser.error(f"--traces {args.traces} must hold at least two windows of {args.window}")
    torch.set_num_threads(1)  # as the ppx command and the simulators run
    print(f"machine: {machine()}; load average at start {os.getloadavg()[0]:.1f}")
    print(f"simulator: {args.simulator!r} x {args.workers}")
    results = {}
    for mode in args.modes.split(","):
        with SimulatorPool(args.simulator, workers=args.workers) as pool:
            draw(pool, mode, min(1000, args.window), args.batch_size)  # start-up and first allocations
            results[mode] = load_run(pool, mode, args.traces, args.window, args.batch_size)
            if pool.restarts:
                print(f"simulator restarts: {pool.restarts}, dropped traces: {pool.dropped}")
    print(f"\nload average at end {os.getloadavg()[0]:.1f}")
    for mode, rows in results.items():
        (_, rate0, engine0, simulators0), (_, rate1, engine1, simulators1) = rows[0], rows[-1]
        mean_rate = sum(row[1] for row in rows) / len(rows)
        print(f"{mode}: last/first window: rate {rate1 / rate0:.2f}, engine memory {engine1 / engine0:.3f} "
              f"({engine1 - engine0:+.1f} MiB), simulators' memory {simulators1 / simulators0:.3f} "
              f"({simulators1 - simulators0:+.1f} MiB); mean rate {mean_rate:.0f} traces/s")


if __name__ == "__main__":
    main()
