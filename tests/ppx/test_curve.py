"""CURVE authentication on the transport: key files, and who gets through, over real sockets."""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import zmq
import zmq.auth

from ppx import codec
from ppx import messages as m
from ppx.curve import AUTHORISED, ENVIRONMENT_VARIABLE, create_keys
from ppx.errors import AuthenticationFailed, ProtocolTimeout
from ppx.transport import Connection, Listener
from simulators import gaussian
from simulators._cli import serve_main

from ..conftest import NEVER


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keys of another engine and simulator, made independently."""
    return create_keys(tmp_path_factory.mktemp("curve") / "stranger")


def mixed_keys(folder: Path, engine_from: Path, simulator_from: Path) -> Path:
    """An engine's key directory holding one set's engine pair and the other's simulator key."""
    folder.mkdir()
    shutil.copy(engine_from / "engine.key_secret", folder)
    shutil.copy(simulator_from / "simulator.key", folder)
    return folder


def endpoints(tmp_path: Path) -> list[str]:
    return ["tcp://127.0.0.1:0", f"ipc://{tmp_path}/curve.sock"]


def test_keys_are_two_pairs_with_private_secrets_and_never_overwritten(tmp_path):
    folder = create_keys(tmp_path / "keys")
    for role in ("engine", "simulator"):
        secret = folder / f"{role}.key_secret"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        public, secret_key = zmq.auth.load_certificate(secret)
        assert secret_key and zmq.auth.load_certificate(folder / f"{role}.key") == (public, None)
    engine_public, _ = zmq.auth.load_certificate(folder / "engine.key")
    assert zmq.auth.load_certificates(folder / AUTHORISED) == {engine_public: True}
    with pytest.raises(ValueError, match="engine.key already exists"):
        create_keys(folder)


def test_secret_key_readable_by_others_is_refused(tmp_path):
    folder = create_keys(tmp_path / "keys")
    (folder / "engine.key_secret").chmod(0o644)
    with pytest.raises(ValueError, match="engine.key_secret is readable by other users"):
        Connection("tcp://127.0.0.1:5555", curve=folder)


def test_missing_keys_are_named(tmp_path):
    with pytest.raises(ValueError, match="has no simulator.key_secret"):
        Listener("tcp://127.0.0.1:0", curve=tmp_path)
    folder = create_keys(tmp_path / "keys")
    (folder / AUTHORISED / "engine.key").unlink()
    with pytest.raises(ValueError, match="holds no engine public keys"):
        Listener("tcp://127.0.0.1:0", curve=folder)


@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_authorised_engine_exchanges_messages(curve_keys, tmp_path, transport):
    address = endpoints(tmp_path)[["tcp", "ipc"].index(transport)]
    listener = Listener(address, curve=curve_keys)
    try:
        assert listener.secured
        with Connection(listener.bound_address, timeout=NEVER, curve=curve_keys) as connection:
            connection.send(b"ping")
            assert listener.receive() == b"ping"
            listener.reply(b"pong")
            assert connection.receive() == b"pong"
    finally:
        listener.close()


@pytest.mark.parametrize("case, message", [
    ("unauthorised engine", "refused the engine's CURVE key .*authorised/ folder"),
    ("wrong simulator key", "serves with another key than .*simulator.key"),
    ("plain engine", "CURVE authentication.*--curve DIR"),
])
@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_engine_the_simulator_refuses_gets_a_clear_error_not_a_wait(curve_keys, stranger, tmp_path, case, message,
                                                                    transport):
    engine_keys = {"unauthorised engine": lambda: mixed_keys(tmp_path / "engine", stranger, curve_keys),
                   "wrong simulator key": lambda: mixed_keys(tmp_path / "engine", curve_keys, stranger),
                   "plain engine": lambda: ""}[case]()
    listener = Listener(endpoints(tmp_path)[["tcp", "ipc"].index(transport)], curve=curve_keys)
    try:
        with Connection(listener.bound_address, timeout=NEVER, curve=engine_keys) as connection:
            connection.send(b"ping")
            with pytest.raises(AuthenticationFailed, match=message):
                connection.receive()
        with Connection(listener.bound_address, timeout=NEVER, curve=curve_keys) as authorised:
            authorised.send(b"authorised")
            assert listener.receive() == b"authorised"  # the refused request never arrived
    finally:
        listener.close()


def test_curve_engine_is_told_when_the_simulator_does_not_use_curve(curve_keys):
    listener = Listener("tcp://127.0.0.1:0")
    try:
        with Connection(listener.bound_address, timeout=NEVER, curve=curve_keys) as connection:
            connection.send(b"ping")
            with pytest.raises(AuthenticationFailed, match="does not use CURVE"):
                connection.receive()
    finally:
        listener.close()


def test_timeout_with_curve_says_authentication_may_be_the_reason(curve_keys):
    listener = Listener("tcp://127.0.0.1:0", curve=curve_keys)
    try:
        with Connection(listener.bound_address, curve=curve_keys) as connection:
            connection.send(b"ping")
            with pytest.raises(ProtocolTimeout, match="CURVE is in use.*authentication may be the reason"):
                connection.receive(timeout=0.2)
    finally:
        listener.close()


def test_both_ends_take_the_key_directory_from_the_environment(curve_keys, monkeypatch):
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, str(curve_keys))
    listener = Listener("tcp://127.0.0.1:0")
    try:
        assert listener.secured
        with Connection(listener.bound_address, timeout=NEVER) as connection:
            assert connection.keys is not None
            connection.send(b"ping")
            assert listener.receive() == b"ping"
    finally:
        listener.close()


def test_inproc_stays_plain(curve_keys):
    listener = Listener("inproc://curve-test", curve=curve_keys)
    try:
        assert not listener.secured
        with Connection("inproc://curve-test", curve=curve_keys) as connection:
            assert connection.keys is None
    finally:
        listener.close()


@pytest.fixture(scope="module")
def curve_simulator(curve_keys: Path, tmp_path_factory: pytest.TempPathFactory):
    """The bundled Gaussian simulator in its own process, serving over ipc with CURVE."""
    address = f"ipc://{tmp_path_factory.mktemp('served')}/gaussian.sock"
    process = subprocess.Popen([sys.executable, "-m", "simulators.gaussian", "--address", address,
                                "--curve", str(curve_keys)])
    yield address
    process.kill()
    process.wait()


def test_plain_ppx_peer_gets_nothing_from_a_curve_simulator(curve_simulator, curve_keys):
    handshake = codec.encode(m.Handshake("plain-engine", 0, ()))
    with Connection(curve_simulator, timeout=NEVER, curve=curve_keys) as authorised:
        authorised.send(handshake)
        assert isinstance(codec.decode(authorised.receive()), m.HandshakeResult)
    plain = zmq.Context.instance().socket(zmq.REQ)  # as a C++ front end without CURVE would connect
    try:
        plain.linger = 0
        plain.connect(curve_simulator)
        plain.send(handshake)
        assert plain.poll(1000) == 0
    finally:
        plain.close()


def test_simulator_command_names_missing_keys(tmp_path):
    with pytest.raises(SystemExit, match="error: CURVE key directory .* has no simulator.key_secret"):
        serve_main(gaussian.model, "test", ["--address", "tcp://127.0.0.1:0", "--curve", str(tmp_path)])
