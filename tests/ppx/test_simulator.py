"""ppx.serve on requests it cannot serve: an Error reply where the engine negotiated ``error``,
a Reset for plain PPX engines, and the simulator keeps serving either way.

A real simulator process on a real ipc socket; the requests are raw frames.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from ppx import codec
from ppx import messages as m
from ppx.flatbuf import Writer
from ppx.limits import MAX_BATCH_TRACES
from ppx.transport import Connection

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(90)


def unknown_message(type_id: int = 99) -> bytes:
    writer = Writer()
    return writer.finish(writer.table(octets=((0, type_id),)))


@pytest.fixture(scope="module")
def address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One Gaussian simulator process shared by the tests below, each on its own connection."""
    address = f"ipc://{tmp_path_factory.mktemp('serve')}/sim.sock"
    process = subprocess.Popen([sys.executable, "-m", "simulators.gaussian", "--address", address],
                               cwd=REPO_ROOT, stderr=subprocess.DEVNULL)
    try:
        yield address
    finally:
        process.kill()
        process.wait()


def exchange(connection: Connection, frame: bytes) -> m.Message:
    return codec.decode(connection.request(frame))


def connect(address: str, capabilities: tuple[str, ...]) -> Connection:
    connection = Connection(address, timeout=60.0)
    reply = exchange(connection, codec.encode(m.Handshake("test", m.PROTOCOL_VERSION, capabilities)))
    assert isinstance(reply, m.HandshakeResult)
    return connection


def test_unknown_message_type_is_answered_with_an_error_naming_it(address: str) -> None:
    with connect(address, (m.CAPABILITY_ERROR,)) as connection:
        reply = exchange(connection, unknown_message(99))
        assert isinstance(reply, m.Error)
        assert "malformed request: unknown message type id 99" in reply.message
        assert isinstance(exchange(connection, codec.encode(m.Run())), m.Sample)  # still serving


def test_plain_engine_gets_a_reset(address: str) -> None:
    with connect(address, ()) as connection:
        assert isinstance(exchange(connection, unknown_message(200)), m.Reset)
        assert isinstance(exchange(connection, b"\x01\x02"), m.Reset)
        assert isinstance(exchange(connection, codec.encode(m.Run())), m.Sample)


def test_malformed_request_inside_a_trace_ends_the_trace_with_an_error(address: str) -> None:
    with connect(address, (m.CAPABILITY_ERROR,)) as connection:
        assert isinstance(exchange(connection, codec.encode(m.Run())), m.Sample)
        reply = exchange(connection, unknown_message(42))
        assert isinstance(reply, m.Error)
        assert "malformed request during the trace: unknown message type id 42" in reply.message
        assert isinstance(exchange(connection, codec.encode(m.Run())), m.Sample)


def test_engine_abandoning_a_trace_gets_a_reset(address: str) -> None:
    with connect(address, (m.CAPABILITY_ERROR,)) as connection:
        assert isinstance(exchange(connection, codec.encode(m.Run())), m.Sample)
        assert isinstance(exchange(connection, codec.encode(m.Error("engine abandoned the trace"))), m.Reset)
        assert isinstance(exchange(connection, codec.encode(m.Run())), m.Sample)


def test_absurd_number_of_prior_traces_is_refused(address: str) -> None:
    with connect(address, (m.CAPABILITY_ERROR, m.CAPABILITY_TRACE_BATCH)) as connection:
        reply = exchange(connection, codec.encode(m.Run(num_traces=2**32 - 1)))
        assert isinstance(reply, m.Error)
        assert f"Run.num_traces 4294967295 is more than the {MAX_BATCH_TRACES}" in reply.message
        assert isinstance(exchange(connection, codec.encode(m.Run(num_traces=2))), m.TraceBatch)
