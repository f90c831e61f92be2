"""Fuzzing ppx.codec.decode (and what the engine does next): untrusted frames may only raise ProtocolError.

Inputs are random bytes, every truncation of valid frames, and single-byte
mutations of valid frames of every message type, each through
``ppx.untrusted.decode_and_check`` (decoded, a TraceBatch unpacked and checked, a
Sample's or Observe's distribution built). Any other exception fails,
and every call must return quickly (hypothesis deadlines, a time cap per call
in the exhaustive sweeps). Set ``PPX_FUZZ_EXAMPLES`` (default 300) for a deeper run.
"""

from __future__ import annotations

import dataclasses
import os
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ppx import batch, codec
from ppx import messages as m
from ppx.batch import Record
from ppx.distributions import KINDS
from ppx.errors import ProtocolError
from ppx.untrusted import decode_and_check

from . import plain_ppx
from .test_codec import any_message, trace_batches

pytestmark = pytest.mark.timeout(60)

SLOW_CALL_S = 2.0
"""A frame of a few hundred bytes decodes in about a millisecond: this still catches a decoder that loops or
allocates without bound, and leaves room for a machine whose cores other tests keep busy."""
FUZZ = settings(max_examples=int(os.environ.get("PPX_FUZZ_EXAMPLES", "300")), deadline=timedelta(seconds=SLOW_CALL_S),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

NORMAL = m.WireDistribution(1, (np.array(0.5), np.array([1.0, 2.0])))
CATEGORICAL = m.WireDistribution(3, (np.array([0.2, 0.3, 0.5]),))

CORPUS: tuple[m.Message, ...] = (
    m.Handshake("engine", 1, ("trace-batch", "error")),
    m.HandshakeResult("simulator", "gaussian", 1, ("trace-batch",)),
    m.Run(), m.Run(num_traces=8),
    m.RunResult(np.array([[1.0, -0.0], [np.nan, np.inf]])), m.RunResult(),
    m.Sample("[forward()+0x96]", "mu", NORMAL, control=False),
    m.SampleResult(np.array(1.5)),
    m.Observe("[forward()+0x1c2]", "obs0", CATEGORICAL, np.array(2.0)),
    m.Observe("[forward()+0x2a8]", "", NORMAL),
    m.ObserveResult(),
    m.Tag("t", "energy", np.zeros((2, 0, 3))),
    m.TagResult(), m.Reset(),
    batch.pack(
        [[Record(m.RECORD_SAMPLE, "a", "mu", NORMAL, np.array([0.1, 0.2])),
          Record(m.RECORD_OBSERVE, "b", "", CATEGORICAL, np.array(1.0), control=False),
          Record(m.RECORD_TAG, "a", "tag", None, np.ones((1, 2)))],
         []],
        [np.array(3.0), None]),
    m.Error("model raised ValueError"),
)
# A Sample as flatc's C++ builder lays it out: file identifier, vtables after their tables, shared vtables.
CPP_BUILT_SAMPLE = bytes.fromhex(
    "100000005050584608000c00070008000800000000000005100000000c00140008000c00070010000c00000000000001"
    "700000006400000004000000c8ffffff3c00000004000000d4ffffff1000000004000000010000000200000002000000"
    "000000000000004000000000000008400000000008000c0004000800080000000c000000040000000000000001000000"
    "000000000000f03f020000006d750000100000005b666f727761726428292b307839365d00000000"
)
# Frames as a plain PPX peer builds them with the flatc-generated Python code.
PLAIN_FRAMES = {
    "plain-Sample": plain_ppx.sample_frame("[forward()+0x96]", "mu", 1, (1.0, [2.0, 3.0]), control=False),
    "plain-Observe": plain_ppx.observe_frame("[forward()+0x1c2]", "obs0", 3, ([0.5, 0.5],), 1.0),
    "plain-Tag": plain_ppx.tag_frame("t", "x", np.ones((2, 2))),
    "plain-HandshakeResult": plain_ppx.handshake_result_frame("simulator", "model"),
}

CORPUS_FRAMES = [codec.encode(message) for message in CORPUS] + [CPP_BUILT_SAMPLE, *PLAIN_FRAMES.values()]
CORPUS_IDS = [f"{i}-{type(message).__name__}" for i, message in enumerate(CORPUS)] + ["cpp-Sample", *PLAIN_FRAMES]


def decode_untrusted(frame: bytes) -> None:
    """Decode and check as the engine does; only ProtocolError may escape, and it is swallowed."""
    try:
        decode_and_check(frame)
    except ProtocolError:
        pass


def decode_quickly(frame: bytes) -> None:
    started = time.perf_counter()
    decode_untrusted(frame)
    elapsed = time.perf_counter() - started
    assert elapsed < SLOW_CALL_S, f"decoding {frame!r} took {elapsed:.3f} s"


def mutations(frame: bytes) -> list[bytes]:
    """Every single-byte mutation worth trying: zero, all ones, and two bit flips at each position."""
    mutated = []
    for position, original in enumerate(frame):
        for value in {0x00, 0xFF, original ^ 0x01, original ^ 0x80} - {original}:
            mutated.append(frame[:position] + bytes([value]) + frame[position + 1:])
    return mutated


COLUMNS = ("trace_offsets", "kind", "address", "name", "distribution_type", "control")
RAGGED = ("values", "params", "results")
RAGGED_COLUMNS = ("data", "offsets", "shapes", "shape_offsets")
edit_values = st.integers(-2, 6) | st.sampled_from([16, 64, 65, 2**30, 2**31 - 1, -2**31, 2**62])


def edited(column: np.ndarray, action: str, index: int, value: int) -> np.ndarray:
    """``column`` with one element set, appended or dropped; values wrap to the column's dtype."""
    if action == "drop" or (action == "set" and not len(column)):
        return column[:-1]
    wrapped = np.array([value], dtype=np.int64).astype(column.dtype)
    if action == "append":
        return np.concatenate([column, wrapped])
    changed = column.copy()
    changed[index % len(column)] = wrapped[0]
    return changed


def edited_table(table: object, field: str, action: str, index: int, value: int) -> object:
    return dataclasses.replace(table, **{field: edited(getattr(table, field), action, index, value)})


@st.composite
def corrupted_batches(draw: st.DrawFn) -> m.TraceBatch:
    """A valid packed batch after one to three column edits, so that validation is probed past its first check."""
    trace_batch = draw(trace_batches())
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["set", "set", "append", "drop"]))
        index, value = draw(st.integers(0, 50)), draw(edit_values)
        target = draw(st.sampled_from(COLUMNS + RAGGED))
        if target in COLUMNS:
            trace_batch = edited_table(trace_batch, target, action, index, value)
        else:
            ragged = edited_table(getattr(trace_batch, target), draw(st.sampled_from(RAGGED_COLUMNS)),
                                  action, index, value)
            trace_batch = dataclasses.replace(trace_batch, **{target: ragged})
    return trace_batch


# Crashing inputs, kept as regression cases. Found by review rather than by the fuzzer
# (single-byte edits rarely produce them); see test_batch for the object-level twins.
OVERFLOWING_SHAPE = bytes.fromhex(  # one tag whose value has shape [2**30, 2**30, 16] and no data
    "0c000000080009000800040008000000200000000c0018002c00040008000c001000140018001c002000240028000000"
    "1a000000280000003400000044000000480000004c000000500000005400000064000000c80000000c01000001000000"
    "040000000100000061000000020000000000000000000000010000000000000001000000020000000100000000000000"
    "01000000ffffffff01000000000000000100000001000c001400040008000c00100000000e0000001400000018000000"
    "280000003800000000000000000000000000000002000000000000000000000000000000000000000300000000000040"
    "00000040100000000000000002000000000000000000000003000000000000000c001400040008000c0010000c000000"
    "140000001800000020000000200000000000000000000000000000000100000000000000000000000000000001000000"
    "00000000000000000c001400040008000c0010000c000000140000001800000028000000300000000000000000000000"
    "000000000200000000000000000000000000000000000000010000000000000000000000020000000000000000000000"
    "0100000000000000"
)
REGRESSIONS = [
    pytest.param(OVERFLOWING_SHAPE, id="trace-batch-shape-overflows-int64"),
]
FUZZ_REGRESSIONS = Path(__file__).parent / "fuzz_regressions"
"""Crashing inputs that a fuzzer found, one file each (see its README)."""


@pytest.mark.parametrize("frame", REGRESSIONS)
def test_regressions(frame: bytes) -> None:
    decode_quickly(frame)


@pytest.mark.parametrize("path", sorted(FUZZ_REGRESSIONS.glob("*.bin")), ids=lambda path: path.stem)
def test_fuzzer_regressions(path: Path) -> None:
    decode_quickly(path.read_bytes())


@FUZZ
@given(frame=st.binary(max_size=256))
@example(frame=b"")
@example(frame=bytes(8))
@example(frame=b"\xff" * 64)
def test_random_bytes(frame: bytes) -> None:
    decode_untrusted(frame)


@FUZZ
@given(prefix=st.binary(min_size=4, max_size=4), message=any_message, tail=st.binary(max_size=16))
def test_random_root_offset_and_trailing_bytes(prefix: bytes, message: m.Message, tail: bytes) -> None:
    decode_untrusted(prefix + codec.encode(message)[4:] + tail)


@settings(FUZZ, max_examples=max(1, FUZZ.max_examples // 3))  # generating traces costs most here
@given(trace_batch=corrupted_batches())
def test_trace_batches_with_edited_columns(trace_batch: m.TraceBatch) -> None:
    decode_untrusted(codec.encode(trace_batch))


@pytest.mark.parametrize("frame", CORPUS_FRAMES, ids=CORPUS_IDS)
def test_every_truncation(frame: bytes) -> None:
    for length in range(len(frame)):
        decode_quickly(frame[:length])


@pytest.mark.parametrize("frame", CORPUS_FRAMES, ids=CORPUS_IDS)
def test_every_single_byte_mutation(frame: bytes) -> None:
    for mutated in mutations(frame):
        decode_quickly(mutated)


@FUZZ
@given(message=any_message, data=st.data())
def test_truncated_random_messages(message: m.Message, data: st.DataObject) -> None:
    frame = codec.encode(message)
    decode_untrusted(frame[:data.draw(st.integers(0, len(frame) - 1), label="length")])


@FUZZ
@given(message=any_message, data=st.data())
def test_mutated_random_messages(message: m.Message, data: st.DataObject) -> None:
    frame = bytearray(codec.encode(message))
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        frame[data.draw(st.integers(0, len(frame) - 1), label="position")] = data.draw(st.integers(0, 255))
    decode_untrusted(bytes(frame))


def test_fuzzing_benchmark_seeds_every_message_type_with_valid_frames() -> None:
    from benchmarks.fuzz_decoder import seed_frames  # atheris itself is imported only when fuzzing

    decoded = [codec.decode(frame) for frame in seed_frames().values()]
    assert {type(message) for message in decoded} == set(m.MESSAGE_TYPES)
    sampled = {message.distribution.type_id for message in decoded if isinstance(message, m.Sample)}
    assert sampled == {kind.type_id for kind in KINDS}
