"""Sparse observations over real sockets: sparse to engines that negotiated ``sparse-tensor``, dense to others.

The LArTPC simulator observing its full sparse image runs in its own process;
engines are written here with our codec on a raw REQ socket (so that frame
sizes can be measured) or with flatc-generated code only (a plain PPX engine).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import zmq

from ppx import batch, codec
from ppx import messages as m
from ppx.schema.generated.Distribution import Distribution
from ppx.schema.generated.MessageBody import MessageBody
from ppx.sparse import SparseArray

from . import plain_ppx

# An electron shower at the centre: vertex x, y, z, kind (2 = electron), energy, cos_theta, phi.
LATENTS = (50.0, 50.0, 50.0, 2.0, 400.0, 0.3, 1.0)


@pytest.fixture
def lartpc(tmp_path: Path) -> Iterator[Any]:
    """``lartpc(size)`` starts ``python -m simulators.lartpc --observe sparse`` and returns its address."""
    processes: list[subprocess.Popen] = []

    def start(size: int) -> str:
        address = f"ipc://{tmp_path}/lartpc{len(processes)}.sock"
        processes.append(subprocess.Popen([sys.executable, "-m", "simulators.lartpc", "--address", address,
                                           "--size", str(size), "--observe", "sparse"],
                                          cwd=plain_ppx.REPO_ROOT))
        return address

    yield start
    for process in processes:
        process.kill()
        process.wait()


class RawEngine:
    """Our codec on a bare REQ socket: every reply frame is kept, so its size can be read."""

    def __init__(self, address: str, capabilities: tuple[str, ...]) -> None:
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.REQ)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(address)
        self.frames: list[bytes] = []
        reply = self.request(m.Handshake("raw-engine", m.PROTOCOL_VERSION, capabilities), timeout_s=60)
        assert isinstance(reply, m.HandshakeResult) and m.CAPABILITY_SPARSE in reply.capabilities

    def request(self, message: m.Message, timeout_s: float = 30) -> m.Message:
        self.socket.send(codec.encode(message))
        assert self.socket.poll(int(timeout_s * 1000)), f"no reply to {type(message).__name__}"
        self.frames.append(self.socket.recv())
        return codec.decode(self.frames[-1])

    def run(self) -> list[tuple[m.Message, int]]:
        """One trace with ``LATENTS`` as the sampled values: each message with its frame size."""
        seen, latents = [], iter(LATENTS)
        reply = self.request(m.Run())
        while not isinstance(reply, m.RunResult):
            seen.append((reply, len(self.frames[-1])))
            if isinstance(reply, m.Sample):
                reply = self.request(m.SampleResult(np.array(next(latents))))
            else:
                reply = self.request(m.ObserveResult() if isinstance(reply, m.Observe) else m.TagResult())
        return seen

    def close(self) -> None:
        self.socket.close()
        self.context.term()


def test_a_256_cubed_event_travels_as_its_active_voxels(lartpc) -> None:
    engine = RawEngine(lartpc(256), (m.CAPABILITY_SPARSE,))
    try:
        observe, frame_size = [(message, size) for message, size in engine.run() if isinstance(message, m.Observe)][0]
    finally:
        engine.close()
    image = observe.value
    assert isinstance(image, SparseArray) and image.shape == (256, 256, 256)
    assert observe.distribution.type_id == Distribution.SparseNormal
    np.testing.assert_array_equal(observe.distribution.params[0].values, image.values)
    dense_bytes = 8 * 256 ** 3  # one dense float64 tensor; the frame carries the image twice (value and mean)
    assert image.nnz > 50  # a shower of a few hundred voxels (105-714 over 30 seeds)
    # Per voxel and copy: 3 int32 coordinates and one float64 value; a little for the message around them.
    assert frame_size < 2 * 20 * image.nnz + 1024
    assert frame_size < dense_bytes / 1000


def plain_trace(address: str) -> list[tuple[str, Any]]:
    """One trace driven by a plain PPX engine (flatc-generated code, no extensions)."""
    seen = []
    latents = iter(LATENTS)
    with plain_ppx.PlainEngine(address, timeout_s=60) as engine:
        engine.handshake()
        body_type, body = engine.request(plain_ppx.empty_frame(MessageBody.Run), "first message")
        while body_type != MessageBody.RunResult:
            if body_type == MessageBody.Sample:
                reply = plain_ppx.result_frame(MessageBody.SampleResult, next(latents))
            elif body_type == MessageBody.Observe:
                seen.append(("observe", (plain_ppx.read_distribution(body), plain_ppx.read_tensor(body.Value()))))
                reply = plain_ppx.empty_frame(MessageBody.ObserveResult)
            else:
                reply = plain_ppx.empty_frame(MessageBody.TagResult)
            body_type, body = engine.request(reply, "next message")
    return seen


def test_a_plain_engine_gets_a_dense_tensor_and_a_normal(lartpc) -> None:
    [(_, ((type_id, (mean, stddev)), value))] = plain_trace(lartpc(16))
    assert type_id == Distribution.Normal
    assert value.shape == mean.shape == (16, 16, 16)
    np.testing.assert_array_equal(value, mean)  # the simulator reports the image its likelihood is centred on
    assert 0 < np.count_nonzero(value) < 0.05 * value.size and float(stddev) == 1.0


def test_prior_batches_keep_images_sparse_only_for_engines_that_negotiated_it(lartpc) -> None:
    address = lartpc(16)
    for capabilities, sparse in (((m.CAPABILITY_TRACE_BATCH,), False),
                                 ((m.CAPABILITY_TRACE_BATCH, m.CAPABILITY_SPARSE), True)):
        engine = RawEngine(address, capabilities)
        try:
            reply = engine.request(m.Run(num_traces=3))
        finally:
            engine.close()
        assert isinstance(reply, m.TraceBatch)
        observations = [record for records, _ in batch.unpack(reply) for record in records
                        if record.kind == m.RECORD_OBSERVE]
        assert len(observations) == 3
        for record in observations:
            assert isinstance(record.value, SparseArray) is sparse
            assert record.distribution.type_id == (Distribution.SparseNormal if sparse else Distribution.Normal)
            dense = record.value.to_dense() if sparse else record.value
            assert dense.shape == (16, 16, 16)
        assert (len(reply.values.sparse) > 0) is sparse
