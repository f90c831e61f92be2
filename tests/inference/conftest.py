"""Fixtures that start real simulator processes on real sockets, and a barely trained IC network."""

from __future__ import annotations

import socket
import subprocess
import sys
from typing import Callable, Iterator

import pytest

from inference.ic import load_checkpoint
from simulators import gaussian
from tests.inference.networks import barely_train


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


@pytest.fixture(scope="module")
def barely_trained_checkpoint(tmp_path_factory):
    """A checkpoint of ``barely_train(gaussian.model)``."""
    checkpoint = tmp_path_factory.mktemp("barely-trained") / "gaussian.ckpt"
    barely_train(gaussian.model, str(checkpoint))
    return checkpoint


@pytest.fixture(scope="module")
def barely_trained(barely_trained_checkpoint):
    return load_checkpoint(barely_trained_checkpoint)[0]
