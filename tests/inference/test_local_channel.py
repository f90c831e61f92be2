"""The ``local-channel`` extension between the engine and simulator processes: who gets it, and failures on it."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from inference.controllers import PRIOR
from inference.pool import SimulatorPool
from inference.remote import RemoteSimulator
from ppx import messages as m
from ppx.channel import ChannelClosed, ChannelConnection, channel_path
from ppx.errors import ProtocolTimeout
from ppx.transport import Connection

from ..conftest import NEVER


def test_ipc_simulators_move_to_the_channel_after_the_handshake(start_simulator):
    address = start_simulator("simulators.gaussian", "ipc")
    with RemoteSimulator(address, timeout=5, handshake_timeout=NEVER) as simulator:
        assert m.CAPABILITY_LOCAL_CHANNEL in simulator.capabilities
        assert isinstance(simulator.connection, ChannelConnection)
        assert os.path.exists(channel_path(address))
        trace = simulator.run(observations={"obs0": np.array(8.0)})
        assert trace.named("obs0").value == 8.0 and trace.result == trace.named("mu").value
        assert len(simulator.prior(300, batch_size=128)) == 300


def test_tcp_simulators_stay_on_zeromq(start_simulator):
    address = start_simulator("simulators.gaussian", "tcp")
    with RemoteSimulator(address, timeout=5, handshake_timeout=NEVER) as simulator:
        assert m.CAPABILITY_LOCAL_CHANNEL not in simulator.capabilities
        assert isinstance(simulator.connection, Connection)
        assert len(simulator.run()) == 3


def test_a_killed_simulator_is_reported_at_once_not_at_the_timeout(start_simulator):
    address = start_simulator("tests.inference.faulty_simulators", "ipc", "hang-after", "2")
    with RemoteSimulator(address, timeout=NEVER, handshake_timeout=NEVER) as simulator:
        simulator.run()
        process = start_simulator.processes[0]
        killer = threading.Timer(0.3, os.kill, (process.pid, signal.SIGKILL))  # once inside the hung trace
        killer.start()
        started = time.monotonic()
        with pytest.raises(ChannelClosed, match=f"simulator at {address} closed its local channel"):
            simulator.run()
        assert time.monotonic() - started < 5
        killer.join()


def test_a_hung_simulator_on_the_channel_times_out(start_simulator):
    address = start_simulator("tests.inference.faulty_simulators", "ipc", "hang-after", "2")
    with RemoteSimulator(address, timeout=1.0, handshake_timeout=NEVER) as simulator:
        assert isinstance(simulator.connection, ChannelConnection)
        simulator.run()
        with pytest.raises(ProtocolTimeout, match=address):
            simulator.run()


def test_a_trace_the_engine_abandons_leaves_the_simulator_serving(start_simulator):
    address = start_simulator("simulators.gaussian", "ipc")
    with RemoteSimulator(address, timeout=5, handshake_timeout=NEVER) as simulator:
        with pytest.raises(ValueError, match="obs0"):  # a wrong-shaped observation, refused mid-trace
            simulator.run(observations={"obs0": np.zeros(3)})
        assert isinstance(simulator.connection, ChannelConnection)
        assert simulator.run(observations={"obs0": np.array(2.0)}).named("obs0").value == 2.0


def test_the_engine_can_decline_the_channel(start_simulator):
    address = start_simulator("simulators.gaussian", "ipc")
    with RemoteSimulator(address, timeout=5, handshake_timeout=NEVER, local_channel=False) as simulator:
        assert m.CAPABILITY_LOCAL_CHANNEL not in simulator.capabilities
        assert isinstance(simulator.connection, Connection)
        assert len(simulator.run()) == 3


def test_pool_copies_are_reached_over_their_channels():
    with SimulatorPool("python -m simulators.gaussian", workers=2, timeout=NEVER) as pool:
        assert all(isinstance(worker.simulator.connection, ChannelConnection) for worker in pool._workers)
        assert len(pool.run_many([PRIOR] * 20)) == 20
