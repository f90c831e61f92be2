"""The plain PPX helpers against each other, so that interoperability failures point at our code."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from . import plain_ppx


@pytest.fixture(scope="module")
def simulator_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One plain simulator subprocess shared by the tests below (each uses its own engine)."""
    address = f"ipc://{tmp_path_factory.mktemp('plain')}/simulator"
    with plain_ppx.simulator_process(address):
        yield address


def record_sample(calls: list, value: float):
    def sample_value(address: str, name: str, type_id: int, params: tuple) -> float:
        calls.append((address, name, type_id, [float(p) for p in params]))
        return value
    return sample_value


def test_handshake_then_traces_walk_the_gaussian_model(simulator_address: str) -> None:
    calls: list = []
    with plain_ppx.PlainEngine(simulator_address) as engine:
        assert engine.handshake() == ("plain-ppx-simulator", "gaussian-unknown-mean")
        for trace in range(2):
            seen, result = engine.run(record_sample(calls, 0.25 + trace))
            assert [(s.kind, s.address, s.name) for s in seen] == [
                ("sample", "[forward()+0x96]", "mu"),
                ("observe", "[forward()+0x1c2]", "obs0"),
                ("observe", "[forward()+0x2a8]", "obs1"),
            ]
            assert seen[1].value is None and seen[2].value is None
            np.testing.assert_array_equal(result, np.float64(0.25 + trace))
    assert calls[0] == ("[forward()+0x96]", "mu", plain_ppx.Distribution.Normal, [1.0, np.sqrt(5.0)])


def test_unexpected_top_level_request_is_answered_with_reset(simulator_address: str) -> None:
    with plain_ppx.PlainEngine(simulator_address) as engine:
        body_type, _ = engine.request(plain_ppx.empty_frame(plain_ppx.MessageBody.TagResult), "Reset")
        assert body_type == plain_ppx.MessageBody.Reset
        body_type, _ = engine.request(b"not a flatbuffer", "Reset")
        assert body_type == plain_ppx.MessageBody.Reset


def test_run_interrupting_a_trace_starts_a_new_one(simulator_address: str) -> None:
    with plain_ppx.PlainEngine(simulator_address) as engine:
        body_type, _ = engine.request(plain_ppx.empty_frame(plain_ppx.MessageBody.Run), "Sample")
        assert body_type == plain_ppx.MessageBody.Sample
        seen, result = engine.run(lambda *_: 2.0)
        assert [s.name for s in seen] == ["mu", "obs0", "obs1"]
        np.testing.assert_array_equal(result, np.float64(2.0))


def test_observed_values_travel_with_observe(tmp_path: Path) -> None:
    address = f"ipc://{tmp_path}/simulator"
    with plain_ppx.simulator_process(address, "--observed", "8", "9"):
        with plain_ppx.PlainEngine(address) as engine:
            seen, _ = engine.run(lambda *_: 0.0)
    np.testing.assert_array_equal(seen[1].value, np.float64(8.0))
    np.testing.assert_array_equal(seen[2].value, np.float64(9.0))


def test_in_process_simulator_over_tcp() -> None:
    with plain_ppx.PlainSimulator("tcp://127.0.0.1:*") as simulator:
        serving = threading.Thread(target=simulator.serve, kwargs={"idle_timeout_s": 0.5})
        serving.start()
        try:
            with plain_ppx.PlainEngine(simulator.endpoint, timeout_s=5.0) as engine:
                assert engine.handshake()[1] == "gaussian-unknown-mean"
                seen, result = engine.run(lambda *_: -1.0)
        finally:
            serving.join(timeout=10)
    assert [s.kind for s in seen] == ["sample", "observe", "observe"]
    np.testing.assert_array_equal(result, np.float64(-1.0))
