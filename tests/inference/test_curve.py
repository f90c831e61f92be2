"""CURVE keys through the engine: RemoteSimulator, launched pools and the ``ppx`` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from inference.cli import main
from inference.pool import SimulatorPool
from inference.remote import RemoteSimulator
from ppx.curve import ENVIRONMENT_VARIABLE
from ppx.errors import AuthenticationFailed
from ppx.transport import Connection

from ..conftest import NEVER
from .conftest import free_tcp_address

@pytest.fixture(scope="module")
def curve_simulator(curve_keys: Path):
    """The Gaussian simulator in its own process on loopback tcp, answering only engines with ``curve_keys``."""
    address = free_tcp_address()
    process = subprocess.Popen([sys.executable, "-m", "simulators.gaussian", "--address", address,
                                "--curve", str(curve_keys)])
    yield address
    process.kill()
    process.wait()


def test_engine_with_the_keys_runs_traces_over_tcp(curve_simulator, curve_keys, monkeypatch):
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, str(curve_keys))
    with RemoteSimulator(curve_simulator, timeout=NEVER, handshake_timeout=NEVER) as simulator:
        assert [choice.name for choice in simulator.run()] == ["mu", "obs0", "obs1"]
        assert len(simulator.prior(10, batch_size=4)) == 10


def test_remote_simulator_takes_the_keys_as_an_argument(curve_simulator, curve_keys):
    with RemoteSimulator(curve_simulator, timeout=NEVER, handshake_timeout=NEVER, curve=curve_keys) as simulator:
        assert len(simulator.prior(3)) == 3


def test_engine_without_keys_is_refused_with_a_clear_error(curve_simulator):
    with pytest.raises(AuthenticationFailed, match=f"simulator at {curve_simulator} .*CURVE authentication"):
        RemoteSimulator(curve_simulator, timeout=NEVER, handshake_timeout=NEVER)


@pytest.mark.parametrize("given", ["environment", "argument"])
def test_simulators_a_pool_launches_get_the_keys(curve_keys, monkeypatch, given):
    if given == "environment":
        monkeypatch.setenv(ENVIRONMENT_VARIABLE, str(curve_keys))
    curve = curve_keys if given == "argument" else None
    with SimulatorPool("python -m simulators.gaussian", workers=1, timeout=NEVER, curve=curve) as pool:
        assert len(pool.prior(5)) == 5
        # The local channel would bypass CURVE, so secured copies stay on their ZeroMQ sockets.
        assert type(pool._workers[0].simulator.connection) is Connection
        address = pool.processes[0].args[-1]
        with Connection(address, timeout=NEVER, curve="") as plain:  # the same ipc socket, without keys
            plain.send(b"not authenticated")
            with pytest.raises(AuthenticationFailed, match="CURVE authentication"):
                plain.receive()


def test_ppx_keys_writes_keys_once(tmp_path, capsys):
    folder = tmp_path / "keys"
    assert main(["keys", str(folder)]) == 0
    assert "engine.key_secret" in capsys.readouterr().out and (folder / "simulator.key_secret").exists()
    assert main(["keys", str(folder)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_ppx_prior_curve_flag(curve_simulator, curve_keys, capsys):
    command = ["prior", "--address", curve_simulator, "-n", "5", "--json", "--quiet", "--timeout", str(NEVER)]
    assert main([*command, "--curve", str(curve_keys)]) == 0
    assert json.loads(capsys.readouterr().out)["traces"] == 5
    assert main(command) == 2
    assert "CURVE authentication" in capsys.readouterr().err
