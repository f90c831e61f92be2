"""Prior traces per second: over PPX with the whole-trace extension vs the same model in-process.

In-process, the engine runs the Gaussian model itself under its recording
handler. Over PPX, a simulator process samples whole traces locally and sends
them in TraceBatch messages, the engine asking for the next batch before it
unpacks the last. Plain step-by-step PPX is printed for comparison.

    python -m benchmarks.prior_throughput [--traces 20000] [--batch-size 256]
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks._processes import machine, simulator_process
from inference.local import LocalSimulator
from inference.remote import RemoteSimulator
from simulators import gaussian


def rate(draw, count: int) -> float:
    started = time.perf_counter()
    traces = draw(count)
    elapsed = time.perf_counter() - started
    assert len(traces) == count
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the ppx command and the simulators run
    local = LocalSimulator(gaussian.model)
    local.prior(500)
    in_process = rate(local.prior, args.traces)
    with simulator_process("simulators.gaussian") as address, \
            RemoteSimulator(address, handshake_timeout=60) as remote:
        remote.prior(500, batch_size=args.batch_size)
        batched = rate(lambda n: remote.prior(n, batch_size=args.batch_size), args.traces)
        stepwise = rate(lambda n: [remote.run() for _ in range(n)], max(1000, args.traces // 10))
    print(f"machine: {machine()}")
    print(f"in-process (engine runs the model):   {in_process:8.0f} traces/s")
    print(f"PPX, whole-trace batches of {args.batch_size:<5d}:   {batched:8.0f} traces/s")
    print(f"PPX, one round trip per choice:       {stepwise:8.0f} traces/s")
    print(f"ratio batched PPX / in-process: {batched / in_process:.2f} (target 0.80)")
    print(f"ratio batched / step-by-step PPX: {batched / stepwise:.1f}")


if __name__ == "__main__":
    main()
