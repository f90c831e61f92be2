"""Fixtures for data-parallel training: a fixed trace file and real ranks on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

GLOBAL_BATCH = 16
TINY = ["--lstm-dim", "16", "--observation-dim", "16", "--components", "2", "--validation-size", "16",
        "--batch-size", str(GLOBAL_BATCH), "--seed", "0", "--quiet"]
"""``ppx train`` flags for a network small enough that process start-up dominates."""


@pytest.fixture(scope="session")
def branching_file(tmp_path_factory) -> Path:
    """320 prior traces of the branching model (20 global batches), whose address sets vary by trace."""
    import pyro

    from inference.local import LocalSimulator
    from inference.trace_file import write_traces
    from simulators import branching

    pyro.set_rng_seed(3)
    path = tmp_path_factory.mktemp("traces") / "branching.h5"
    write_traces(path, LocalSimulator(branching.model).prior(320), model_name="branching")
    return path


def ppx_train(*args: str, env: dict[str, str] | None = None, **popen: object) -> subprocess.Popen:
    """``python -m inference train ARGS`` in its own process (one thread, like the test process)."""
    return subprocess.Popen([sys.executable, "-m", "inference", "train", *args], env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


@pytest.fixture
def rank_processes() -> Callable[..., list[subprocess.Popen]]:
    """``rank_processes(2, *args)`` starts ranks the way torchrun does (RANK, WORLD_SIZE, MASTER_* set);
    every process still running at the end of the test is killed."""
    from inference.ic.distributed import free_port

    started: list[subprocess.Popen] = []

    def start(world_size: int, *args: str) -> list[subprocess.Popen]:
        port = str(free_port())
        ranks = [ppx_train(*args, env=dict(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                                           MASTER_ADDR="127.0.0.1", MASTER_PORT=port))
                 for rank in range(world_size)]
        started.extend(ranks)
        return ranks

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()
