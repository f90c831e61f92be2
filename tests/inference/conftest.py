"""Fixtures that start real simulator processes on real sockets."""

from __future__ import annotations

import socket
import subprocess
import sys
from typing import Callable, Iterator

import pytest


def free_tcp_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


@pytest.fixture
def start_simulator(tmp_path) -> Iterator[Callable[..., str]]:
    """``start_simulator("simulators.gaussian", transport="ipc")`` runs ``python -m MODULE
    --address ADDR`` in its own process and returns ADDR; the process is killed afterwards."""
    processes: list[subprocess.Popen] = []

    def start(module: str, transport: str = "ipc", *extra: str) -> str:
        if transport == "ipc":
            address = f"ipc://{tmp_path}/sim{len(processes)}.sock"
        else:
            address = free_tcp_address()
        processes.append(subprocess.Popen([sys.executable, "-m", module, "--address", address, *extra]))
        return address

    start.processes = processes  # type: ignore[attr-defined]
    yield start
    for process in processes:
        process.kill()
        process.wait()

