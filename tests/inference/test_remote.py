"""Engine <-> simulator in separate processes, over ipc and tcp, including failures."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import zmq

from inference.remote import RemoteSimulator
from ppx import codec
from ppx import messages as m
from ppx.errors import ProtocolError, ProtocolTimeout, SimulatorError
from ppx.flatbuf import Writer


@pytest.mark.parametrize("transport", ["ipc", "tcp"])
def test_engine_drives_simulator_process(start_simulator, transport):
    address = start_simulator("simulators.gaussian", transport)
    with RemoteSimulator(address, timeout=5, handshake_timeout=60) as simulator:
        assert simulator.model_name == "model"
        assert simulator.supports_batches
        trace = simulator.run(observations={"obs0": np.array(8.0)})
        assert [c.key for c in trace] == ["mu__Normal__0", "obs0__Normal__0", "obs1__Normal__0"]
        assert trace.named("obs0").observed and trace.named("obs0").value == 8.0
        assert not trace.named("obs1").observed
        assert trace.result == trace.named("mu").value
        batch = simulator.prior(130, batch_size=64)
        assert len(batch) == 130
        mus = np.array([t.named("mu").value for t in batch])
        assert len(np.unique(mus)) == 130


def test_tcp_simulator_binds_loopback_by_default():
    from ppx.transport import DEFAULT_ADDRESS, Listener
    assert DEFAULT_ADDRESS.startswith("tcp://127.0.0.1:")
    listener = Listener("tcp://127.0.0.1:0")
    try:
        assert listener.bound_address.startswith("tcp://127.0.0.1:")
    finally:
        listener.close()


def test_nobody_listening_times_out_with_clear_error(tmp_path):
    started = time.monotonic()
    with pytest.raises(ProtocolTimeout, match="did not answer the Handshake within 0.5 s"):
        RemoteSimulator(f"ipc://{tmp_path}/nobody.sock", handshake_timeout=0.5)
    assert time.monotonic() - started < 3


def test_hung_simulator_times_out_mid_trace(start_simulator):
    address = start_simulator("tests.inference.faulty_simulators", "ipc", "hang-after", "2")
    with RemoteSimulator(address, timeout=1.0, handshake_timeout=60) as simulator:
        simulator.run()
        started = time.monotonic()
        with pytest.raises(ProtocolTimeout, match=address):
            simulator.run()
        assert time.monotonic() - started < 3


def test_simulator_that_never_replies_times_out(start_simulator):
    address = start_simulator("tests.inference.faulty_simulators", "ipc", "silent")
    with pytest.raises(ProtocolTimeout):
        RemoteSimulator(address, handshake_timeout=2.0)


def test_model_exception_is_reported_with_its_message(start_simulator):
    address = start_simulator("tests.inference.faulty_simulators", "ipc", "raise")
    with RemoteSimulator(address, timeout=5, handshake_timeout=60) as simulator:
        with pytest.raises(SimulatorError, match="detector geometry file missing"):
            simulator.run()
        with pytest.raises(SimulatorError, match="detector geometry file missing"):
            simulator.prior(3)
        # A failure while the next batch is already requested leaves the connection usable.
        with pytest.raises(SimulatorError, match="detector geometry file missing"):
            simulator.prior(200, batch_size=50)
        # The simulator survives its model's failure and keeps answering.
        simulator.handshake()


def test_invalid_distribution_parameters_name_the_site(start_simulator):
    address = start_simulator("tests.inference.faulty_simulators", "ipc", "bad-params")
    with RemoteSimulator(address, timeout=5, handshake_timeout=60) as simulator:
        with pytest.raises(ProtocolError, match=r"address 'x'.*Normal\.stddev.*stddev = -1\.0"):
            simulator.run()


@pytest.mark.parametrize("wrong, batched, expected", [
    ("SampleResult", False, "during a trace: expected Sample, Observe, Tag, StageRequest or RunResult, "
                            "got SampleResult"),
    ("HandshakeResult", False, "got HandshakeResult"),
    ("RunResult", True, "to a request for 5 prior traces: expected TraceBatch, got RunResult"),
])
def test_reply_out_of_protocol_order_names_what_was_expected_and_what_came(start_simulator, wrong,
                                                                           batched, expected):
    address = start_simulator("tests.inference.faulty_simulators", "ipc", "out-of-order", "2", wrong)
    with RemoteSimulator(address, timeout=5, handshake_timeout=60) as simulator:
        draw = (lambda: simulator.prior(5, batch_size=5)) if batched else (lambda: [simulator.run()])
        assert len(draw()) in (1, 5)
        with pytest.raises(ProtocolError, match=expected):
            draw()
        assert len(draw()) in (1, 5)  # the connection is usable again


def test_python_is_replaced_by_the_engines_interpreter():
    from inference.pool import simulator_argv
    assert simulator_argv("python -m simulators.gaussian", "ipc:///a") == [
        sys.executable, "-m", "simulators.gaussian", "--address", "ipc:///a"]
    assert simulator_argv("./sim {address} --fast", "tcp://127.0.0.1:1") == [
        "./sim", "tcp://127.0.0.1:1", "--fast"]


def test_ctrl_c_stops_a_served_simulator(tmp_path, monkeypatch):
    import signal
    monkeypatch.setenv("PYTHONFAULTHANDLER", "1")  # SIGABRT below makes a stuck simulator print its stacks
    address = f"ipc://{tmp_path}/sim.sock"
    # As a terminal's foreground job has it: a shell starts background jobs, CI's among them
    # perhaps, with SIGINT ignored, and children inherit that.
    process = subprocess.Popen([sys.executable, "-m", "simulators.gaussian", "--address", address],
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        RemoteSimulator(address, handshake_timeout=60).close()
        process.send_signal(signal.SIGINT)
        # The interpreter's own teardown (torch, pyro) takes about a second on an idle machine,
        # and several times that while the other test process keeps both cores busy.
        try:
            assert process.wait(timeout=30) == 0
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)
            pytest.fail("the simulator did not stop within 30 s of SIGINT (its stacks are in the captured stderr)")
    finally:
        process.kill()
        process.wait()


def fake_simulator(address: str, replies: list[bytes]) -> tuple[threading.Thread, list[m.Message]]:
    """A REP socket in a thread that answers each request with the next of ``replies`` and
    keeps the requests it received (decoded)."""
    received: list[m.Message] = []
    ready = threading.Event()

    def serve() -> None:
        socket = zmq.Context.instance().socket(zmq.REP)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.RCVTIMEO, 20_000)
        socket.bind(address)
        ready.set()
        try:
            for reply in replies:
                received.append(codec.decode(socket.recv()))
                socket.send(reply)
        except zmq.Again:
            pass
        finally:
            socket.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(10)
    return thread, received


def unknown_message(type_id: int) -> bytes:
    writer = Writer()
    return writer.finish(writer.table(octets=((0, type_id),)))


@pytest.mark.timeout(30)  # the engine's own timeout is 60 s: this fails if it waits for it
def test_engine_receiving_an_unknown_message_raises_at_once(tmp_path):
    address = f"ipc://{tmp_path}/fake.sock"
    thread, received = fake_simulator(address, [codec.encode(m.HandshakeResult("fake", "model")),
                                                unknown_message(77)])
    with RemoteSimulator(address, timeout=60, handshake_timeout=10) as simulator:
        with pytest.raises(ProtocolError, match="unknown message type id 77"):
            simulator.run()
    thread.join(10)
    assert [type(r) for r in received] == [m.Handshake, m.Run]  # a plain peer is not sent an Error


@pytest.mark.timeout(30)
def test_engine_tells_a_simulator_that_negotiated_errors_why_it_abandoned_the_trace(tmp_path):
    address = f"ipc://{tmp_path}/fake.sock"
    handshake = m.HandshakeResult("fake", "model", m.PROTOCOL_VERSION, (m.CAPABILITY_ERROR,))
    thread, received = fake_simulator(address, [codec.encode(handshake), unknown_message(77),
                                                codec.encode(m.Reset())])
    with RemoteSimulator(address, timeout=60, handshake_timeout=10) as simulator:
        with pytest.raises(ProtocolError, match="unknown message type id 77"):
            simulator.run()
    thread.join(10)
    assert isinstance(received[-1], m.Error)
    assert "engine abandoned the trace: unknown message type id 77" in received[-1].message


def test_non_finite_parameters_name_the_site_in_traces_and_batches(start_simulator):
    address = start_simulator("tests.inference.faulty_simulators", "ipc", "infinite-mean")
    with RemoteSimulator(address, timeout=10, handshake_timeout=60) as simulator:
        with pytest.raises(ProtocolError, match=r"Sample at address 'x' \(name 'x'\): "
                                                r"Normal\.mean must be finite, but mean = inf"):
            simulator.run()
        with pytest.raises(ProtocolError, match=r"TraceBatch record 0 \(address 'x'\): "
                                                r"Normal\.mean must be finite, but holds inf"):
            simulator.prior(3)


def test_observation_of_the_wrong_shape_is_refused_in_traces_and_batches(start_simulator):
    address = start_simulator("simulators.gaussian")
    with RemoteSimulator(address, timeout=10, handshake_timeout=60) as simulator:
        expected = r"observation 'obs1' has shape \[2\], but the model observes shape \[\] there"
        with pytest.raises(ValueError, match=expected):
            simulator.run(observations={"obs1": np.array([8.0, 9.0])})
        with pytest.raises(ValueError, match=expected):
            simulator.prior(3, observations={"obs1": np.array([8.0, 9.0])})
        trace = simulator.run(observations={"obs1": np.array([9.0])})  # one number, as a vector
        assert trace.named("obs1").observed
