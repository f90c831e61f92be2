"""A supervised pool of simulator processes: parallel work, crashes, hangs, bad replies, sustained load."""

from __future__ import annotations

import gc
import os
import signal
import tracemalloc

import numpy as np
import pytest

from inference.controllers import PRIOR
from inference.pool import SimulatorPool


def test_pool_survives_a_simulator_killed_mid_run():
    with SimulatorPool("python -m simulators.gaussian", workers=2, timeout=10) as pool:
        first_pids = [p.pid for p in pool.processes]
        completed = []

        def kill_one_midway(traces):
            completed.extend(traces)
            if len(completed) == 50:
                os.kill(pool.processes[0].pid, signal.SIGKILL)

        traces = pool.run_many([PRIOR] * 200, {"obs0": np.array(1.0)}, on_done=kill_one_midway)
        assert len(traces) == 200 and all(t is not None for t in traces)
        assert all(len(t) == 3 and t.named("obs0").value == 1.0 for t in traces)
        # Every trace completed before the kill is among the results: nothing recorded is lost.
        assert all(any(t is done for t in traces) for done in completed[:50])
        assert pool.restarts == 1 and pool.dropped >= 1
        assert pool.processes[0].pid != first_pids[0] and pool.processes[1].pid == first_pids[1]


def test_pool_restarts_a_hung_simulator():
    command = "python -m tests.inference.faulty_simulators hang-after 3"
    with SimulatorPool(command, workers=2, timeout=1.0) as pool:
        traces = pool.run_many([PRIOR] * 10)
        assert len(traces) == 10
        assert pool.restarts >= 1 and pool.dropped >= 1


@pytest.mark.parametrize("wrong, batched", [("SampleResult", False), ("RunResult", True)])
def test_pool_restarts_a_simulator_replying_out_of_protocol_order(wrong, batched):
    command = f"python -m tests.inference.faulty_simulators out-of-order 4 {wrong}"
    with SimulatorPool(command, workers=2, timeout=10) as pool:
        if batched:
            traces = pool.prior(40, batch_size=5)
        else:
            traces = pool.run_many([PRIOR] * 8, {"obs0": np.array(1.0)})
        assert len(traces) == (40 if batched else 8) and all(len(t) == 3 for t in traces)
        # Each copy misbehaves at its fourth Run; each time the partial work is dropped and counted.
        assert pool.restarts >= 1 and pool.dropped == pool.restarts


def test_pool_batches_prior_traces_across_workers():
    with SimulatorPool("python -m simulators.gaussian", workers=2) as pool:
        assert pool.supports_batches
        traces = pool.prior(300, batch_size=64)
        assert len(traces) == 300
        assert len({float(t.named("mu").value) for t in traces}) == 300


@pytest.mark.parametrize("batched, window", [(True, 1000), (False, 250)])
def test_pool_keeps_no_per_trace_state(batched, window):
    """Memory the engine retains does not grow with the traces it has run (benchmarks/pool_load.py
    measures the same over 100k traces, with the processes' resident memory)."""
    with SimulatorPool("python -m simulators.gaussian", workers=2) as pool:
        def run() -> None:
            traces = pool.prior(window) if batched else pool.run_many([PRIOR] * window)
            assert len(traces) == window

        run()  # start-up, first allocations and caches
        tracemalloc.start()
        try:
            retained = []
            for _ in range(3):
                run()
                gc.collect()
                retained.append(tracemalloc.get_traced_memory()[0])
        finally:
            tracemalloc.stop()
    # Over the last two windows, less than 64 kB kept: torch's own caches grow by a few kB now and
    # then, up to about 30 kB in all, while keeping a trace costs 2 kB (and anything per trace above
    # 32 or 128 bytes would show).
    assert retained[-1] - retained[0] < 64_000, retained
