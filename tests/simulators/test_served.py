"""Every bundled simulator runs as its own process and answers an engine's Handshake."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ppx import codec
from ppx.messages import PROTOCOL_VERSION, Handshake, HandshakeResult
from ppx.transport import Connection

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("module", ["gaussian", "branching", "calorimeter", "tau_decay"])
def test_served_as_a_module_answers_a_handshake(module, tmp_path):
    address = f"ipc://{tmp_path / 'sim.sock'}"
    process = subprocess.Popen([sys.executable, "-m", f"simulators.{module}", "--address", address],
                               cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with Connection(address, timeout=30.0) as connection:
            request = Handshake("test", PROTOCOL_VERSION, ())
            reply = codec.decode(connection.request(codec.encode(request), waiting_for="a HandshakeResult"))
        assert isinstance(reply, HandshakeResult)
        assert reply.model_name == "model"
        assert reply.protocol_version == PROTOCOL_VERSION
        process.terminate()
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == -signal.SIGTERM, stderr.decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
