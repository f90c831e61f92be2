"""Wire compatibility both ways with plain PPX 1.0 peers built only on flatc's generated code.

The plain simulator stands in for a program built on the C++ front end (backtrace
addresses, no extension fields); the plain engine for the reference Python engine.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from inference.importance import importance_sampling
from inference.pool import SimulatorPool
from inference.remote import RemoteSimulator
from simulators import gaussian
from tests.ppx.plain_ppx import PlainEngine


@pytest.fixture
def plain_simulator(tmp_path):
    address = f"ipc://{tmp_path}/plain.sock"
    process = subprocess.Popen([sys.executable, "-m", "tests.ppx.plain_ppx", "simulator", address])
    yield address
    process.kill()
    process.wait()


def test_our_engine_drives_a_plain_simulator(plain_simulator):
    with RemoteSimulator(plain_simulator, timeout=10, handshake_timeout=60) as simulator:
        assert simulator.peer_version == 0 and simulator.capabilities == frozenset()
        assert not simulator.supports_batches
        trace = simulator.run(observations={"obs0": np.array(8.0), "obs1": np.array(9.0)})
        assert trace.samples[0].address.startswith("[forward()+0x")
        assert trace.samples[0].key.endswith("__Normal__0")
        # Without the batch extension, prior traces come one round trip per choice.
        traces = simulator.prior(50)
        assert len(traces) == 50 and all(len(t) == 3 for t in traces)


def test_plain_simulators_in_a_pool_take_the_address_as_argument():
    observed = {"obs0": 8.0, "obs1": 9.0}
    with SimulatorPool("python -m tests.ppx.plain_ppx simulator {address}", workers=2) as pool:
        posterior = importance_sampling(pool, 3000, observed)
    mean, std = gaussian.posterior([8.0, 9.0])
    assert posterior.ess > 10
    assert abs(float(posterior.mean("mu")) - mean) < 4.5 * std / math.sqrt(posterior.ess)


def test_plain_engine_drives_our_simulator(start_simulator):
    address = start_simulator("simulators.gaussian")
    with PlainEngine(address, timeout_s=60) as engine:
        system_name, model_name = engine.handshake()
        assert model_name == "model"
        seen, result = engine.run(lambda address, name, type_id, params: 2.5)
    assert [(s.kind, s.address, s.name) for s in seen] == [
        ("sample", "mu", "mu"), ("observe", "obs0", "obs0"), ("observe", "obs1", "obs1")]
    assert float(result) == 2.5
