"""ppx.fastcodec: the template fast paths give exactly what ppx.codec gives, frame for frame.

Every check compares against ``ppx.codec`` (itself checked against flatc's code in
test_codec): the same bytes when encoding, the same message or the same
``ProtocolError`` when decoding, whether a template was used or not.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ppx import codec, fastcodec
from ppx import messages as m
from ppx.distributions import KINDS, DistributionKind
from ppx.errors import ProtocolError
from ppx.flatbuf import Reader

from . import plain_ppx
from .test_codec import MESSAGES, arrays, assert_same, floats, special_floats
from .test_codec_fuzz import CORPUS_FRAMES, CORPUS_IDS, mutations

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TEMPLATED = (m.Sample, m.Observe, m.SampleResult, m.RunResult, m.Tag, m.ObserveResult, m.TagResult, m.Reset)


@pytest.fixture(autouse=True)
def no_templates():
    """Each test starts and ends with empty caches, so that tests cannot see each other's templates."""
    fastcodec.forget()
    yield
    fastcodec.forget()


def same_outcome(frame: bytes) -> None:
    """``fastcodec.decode(frame)`` gives what ``codec.decode(frame)`` gives: a message or a ProtocolError."""
    try:
        expected = codec.decode(frame)
    except ProtocolError:
        with pytest.raises(ProtocolError):
            fastcodec.decode(frame)
        return
    assert_same(fastcodec.decode(frame), expected)


def with_new_data(message: Any, data: st.DataObject) -> Any:
    """``message`` with every tensor replaced by fresh values of the same shape (the same layout)."""
    def fresh(array: np.ndarray) -> np.ndarray:
        return data.draw(hnp.arrays(np.float64, array.shape, elements=floats | special_floats))

    changes = {}
    for field in dataclasses.fields(message):
        value = getattr(message, field.name)
        if isinstance(value, np.ndarray):
            changes[field.name] = fresh(value)
        elif isinstance(value, m.WireDistribution):
            changes[field.name] = m.WireDistribution(value.type_id, tuple(fresh(p) for p in value.params))
    return dataclasses.replace(message, **changes)


def from_template(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, any message that ``fastcodec`` hands to ``ppx.codec`` fails the test."""
    def refuse(*args: Any) -> Any:
        raise AssertionError("expected a template, fell back to ppx.codec")

    monkeypatch.setattr(codec, "encode", refuse)
    monkeypatch.setattr(codec, "decode", refuse)


# ---------------------------------------------------------------- encoding


@pytest.mark.parametrize("cls", TEMPLATED, ids=lambda cls: cls.__name__)
@SETTINGS
@given(data=st.data())
def test_encode_writes_the_codecs_bytes_from_a_template(cls: type, data: st.DataObject) -> None:
    fastcodec.forget()
    first = data.draw(MESSAGES[cls])
    second = with_new_data(first, data)
    expected = codec.encode(first), codec.encode(second)
    assert fastcodec.encode(first) == expected[0]
    with pytest.MonkeyPatch.context() as monkeypatch:
        from_template(monkeypatch)
        assert fastcodec.encode(second) == expected[1]
        assert fastcodec.encode(first) == expected[0]


@SETTINGS
@given(message=st.one_of(*(MESSAGES[cls] for cls in set(MESSAGES) - set(TEMPLATED))))
def test_other_messages_go_to_the_codec(message: m.Message) -> None:
    assert fastcodec.encode(message) == codec.encode(message)
    assert_same(fastcodec.decode(codec.encode(message)), message)


def test_an_engine_driven_run_gets_a_template_and_batch_runs_do_not(monkeypatch: pytest.MonkeyPatch) -> None:
    batches = [m.Run(num_traces=64, seed=seed) for seed in range(1, 4)]
    for message in [m.Run(), *batches]:
        assert fastcodec.encode(message) == codec.encode(message)
        assert_same(fastcodec.decode(codec.encode(message)), message)
    frames = [codec.encode(message) for message in batches]
    from_template(monkeypatch)
    assert_same(fastcodec.decode(fastcodec.encode(m.Run())), m.Run())
    with pytest.raises(AssertionError, match="fell back"):  # each seed would be a template of its own
        fastcodec.encode(batches[0])
    with pytest.raises(AssertionError, match="fell back"):
        fastcodec.decode(frames[0])


def test_layouts_that_differ_in_more_than_data_get_their_own_templates() -> None:
    normal = m.WireDistribution(1, (np.array(0.0), np.array(1.0)))
    messages = [
        m.Sample("a", "x", normal), m.Sample("a", "x", normal, control=False), m.Sample("b", "x", normal),
        m.Sample("a", "y", normal), m.Sample("a", "x", m.WireDistribution(2, normal.params)),
        m.Sample("a", "x", m.WireDistribution(1, (np.zeros(2), np.ones(2)))),
        m.Observe("a", "x", normal), m.Observe("a", "x", normal, np.array(1.0)),
        m.Observe("a", "x", normal, np.ones((1, 2))),
        m.RunResult(), m.RunResult(np.array(1.0)), m.RunResult(np.ones(1)), m.Run(), m.Run(num_traces=3),
    ]
    for _ in range(2):
        for message in messages:
            assert fastcodec.encode(message) == codec.encode(message)


def test_encode_converts_tensors_to_float64_as_the_codec_does() -> None:
    for value in (np.arange(6, dtype=np.int32).reshape(2, 3)[:, ::2], np.float32(0.1), 3, [1.0, 2.0]):
        for _ in range(2):
            assert fastcodec.encode(m.SampleResult(value)) == codec.encode(m.SampleResult(value))


# ---------------------------------------------------------------- decoding


@pytest.mark.parametrize("cls", TEMPLATED, ids=lambda cls: cls.__name__)
@SETTINGS
@given(data=st.data())
def test_decode_reads_data_through_a_template(cls: type, data: st.DataObject) -> None:
    fastcodec.forget()
    first = data.draw(MESSAGES[cls])
    second = with_new_data(first, data)
    frames = codec.encode(first), codec.encode(second)
    assert_same(fastcodec.decode(frames[0]), first)
    with pytest.MonkeyPatch.context() as monkeypatch:
        from_template(monkeypatch)
        assert_same(fastcodec.decode(frames[1]), second)
        assert_same(fastcodec.decode(frames[0]), first)


@SETTINGS
@given(address=st.text(max_size=12), name=st.text(max_size=12), params=st.tuples(arrays(), arrays()),
       value=st.none() | arrays())
def test_decode_learns_frames_built_by_flatc_generated_code(address: str, name: str, params: tuple,
                                                           value: Any) -> None:
    """A plain PPX peer lays frames out its own way (back to front, shared vtables); templates still apply."""
    fastcodec.forget()
    again = tuple(np.full(p.shape, 0.5) for p in params)
    for build in (lambda p: plain_ppx.sample_frame(address, name, 1, p, control=False),
                  lambda p: plain_ppx.observe_frame(address, name, 6, p, value),
                  lambda p: plain_ppx.tag_frame(address, name, p[0]),
                  lambda p: plain_ppx.result_frame(plain_ppx.MessageBody.SampleResult, p[1])):
        frames = build(params), build(again)
        same_outcome(frames[0])
        with pytest.MonkeyPatch.context() as monkeypatch:
            expected = codec.decode(frames[1])
            from_template(monkeypatch)
            assert_same(fastcodec.decode(frames[1]), expected)


def test_scalars_laid_out_back_to_front_come_back_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """flatc's builder writes the last parameter first; the values must still come back in schema order."""
    first = plain_ppx.observe_frame("[forward()+0x1c2]", "obs0", 1, (1.0, 2.0), 3.0)
    second = plain_ppx.observe_frame("[forward()+0x1c2]", "obs0", 1, (-4.0, 5.0), 6.0)
    same_outcome(first)
    expected = codec.decode(second)
    from_template(monkeypatch)
    decoded = fastcodec.decode(second)
    assert_same(decoded, expected)
    assert [float(p) for p in decoded.distribution.params] + [float(decoded.value)] == [-4.0, 5.0, 6.0]


def test_scalars_keep_their_bits() -> None:
    for bits in ("0100000000f0ff7f", "0000000000000080", "000000000000f87f", "0100000000000000"):
        value = np.array(struct.unpack("<d", bytes.fromhex(bits))[0])
        fastcodec.decode(codec.encode(m.SampleResult(np.array(1.0))))
        decoded = fastcodec.decode(codec.encode(m.SampleResult(value))).result
        assert decoded.shape == () and decoded.tobytes().hex() == bits


def test_decoded_tensors_are_writable_copies() -> None:
    frame = codec.encode(m.Sample("a", "x", m.WireDistribution(1, (np.zeros(3), np.ones(3)))))
    for _ in range(2):
        params = fastcodec.decode(frame).distribution.params
        assert all(p.flags.writeable for p in params)
        params[0][0] = 7.0  # not the frame's memory, nor a template's
    assert_same(fastcodec.decode(frame), codec.decode(frame))


@pytest.mark.parametrize("frame", CORPUS_FRAMES, ids=CORPUS_IDS)
def test_every_truncation_of_a_learned_frame_decodes_as_with_the_codec(frame: bytes) -> None:
    same_outcome(frame)
    for length in range(len(frame)):
        same_outcome(frame[:length])


@pytest.mark.parametrize("frame", CORPUS_FRAMES, ids=CORPUS_IDS)
def test_every_single_byte_mutation_of_a_learned_frame_decodes_as_with_the_codec(frame: bytes) -> None:
    """Mutations in the data go through the template; any other one must not."""
    same_outcome(frame)
    for mutated in mutations(frame):
        same_outcome(mutated)


def data_vector_shared_with_shape() -> tuple[bytes, int]:
    """A one-element SampleResult whose shape vector is its data vector, and where its data starts.

    The double 5e-324 is the bytes 01 00 00 00 00 00 00 00, which read as int32s are the
    shape [1], so the frame is valid; change the data and the shape changes with it.
    """
    frame = bytearray(codec.encode(m.SampleResult(np.array([5e-324]))))
    reader = Reader(bytes(frame))
    root = reader.root()
    body = reader.offset(root, reader.slots(root), 1)
    tensor = reader.offset(body, reader.slots(body), 0)
    slots = reader.slots(tensor)
    data_at, shape_field = reader.offset(tensor, slots, 0), tensor + slots[1]
    struct.pack_into("<I", frame, shape_field, data_at - shape_field)
    return bytes(frame), data_at + 4


def test_data_that_is_also_structure_gets_no_template() -> None:
    frame, data_at = data_vector_shared_with_shape()
    assert_same(fastcodec.decode(frame), m.SampleResult(np.array([5e-324])))
    changed = frame[:data_at] + struct.pack("<d", 1.0) + frame[data_at + 8:]  # now the shape is [0]
    with pytest.raises(ProtocolError, match="shape"):
        codec.decode(changed)
    with pytest.raises(ProtocolError, match="shape"):
        fastcodec.decode(changed)


def test_full_caches_fall_back_to_the_codec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fastcodec, "MAX_TEMPLATES", 3)
    normal = m.WireDistribution(1, (np.array(0.0), np.array(1.0)))
    for _ in range(2):
        for i in range(10):
            message = m.Sample(f"address{i}", "x", normal)
            frame = fastcodec.encode(message)
            assert frame == codec.encode(message)
            assert_same(fastcodec.decode(frame), message)


def test_big_frames_get_no_template() -> None:
    message = m.SampleResult(np.arange(fastcodec.MAX_TEMPLATE_BYTES / 8))
    for _ in range(2):
        assert fastcodec.encode(message) == codec.encode(message)
        assert_same(fastcodec.decode(codec.encode(message)), message)


# ---------------------------------------------------------------- frames by the caller's key


scalars = st.floats(allow_nan=True, allow_infinity=True, width=64) | st.sampled_from([-0.0, 5e-324])


@SETTINGS
@given(address=st.text(max_size=12), name=st.text(max_size=12), kind=st.sampled_from(KINDS),
       control=st.booleans(), observe=st.booleans(), with_value=st.booleans(),
       first=st.lists(scalars, min_size=3, max_size=3), second=st.lists(scalars, min_size=3, max_size=3))
def test_scalar_frames_are_the_codecs_frames(address: str, name: str, kind: DistributionKind, control: bool,
                                            observe: bool, with_value: bool, first: list[float],
                                            second: list[float]) -> None:
    count = len(kind.wire_params)

    def message(values: list[float]) -> m.Message:
        distribution = m.WireDistribution(kind.type_id, tuple(np.array(v) for v in values[:count]))
        if observe:
            return m.Observe(address, name, distribution, np.array(values[count]) if with_value else None)
        return m.Sample(address, name, distribution, control)

    count_sent = count + 1 if observe and with_value else count
    frames = fastcodec.ScalarFrames()
    key = (observe, address, name, kind.type_id, control, with_value)
    expected = codec.encode(message(first)), codec.encode(message(second))
    assert frames.frame(key, first[:count_sent], lambda: message(first)) == expected[0]
    with pytest.MonkeyPatch.context() as monkeypatch:
        from_template(monkeypatch)
        assert frames.frame(key, second[:count_sent], lambda: message(second)) == expected[1]


def test_scalar_frames_keep_no_template_for_other_shapes() -> None:
    frames = fastcodec.ScalarFrames()
    vector = m.SampleResult(np.zeros(1))
    assert frames.frame("key", [0.0], lambda: vector) == codec.encode(vector)
    scalar = m.SampleResult(np.array(2.0))
    assert frames.frame("key", [2.0], lambda: scalar) == codec.encode(scalar)


def test_sparse_observes_take_the_general_codec_both_ways():
    from ppx.sparse import SparseArray

    image = SparseArray(np.array([[0, 1, 2], [3, 3, 3]], dtype=np.int32), np.array([1.5, 2.5]), (4, 4, 4))
    mean = SparseArray(np.array([[0, 1, 2]], dtype=np.int32), np.array([1.0]), (4, 4, 4))
    message = m.Observe("image", "image", m.WireDistribution(12, (mean, np.array(0.5))), image)
    for _ in range(2):  # the second time a template would be used, if one had been kept
        frame = fastcodec.encode(message)
        assert frame == codec.encode(message)
        decoded = fastcodec.decode(frame)
        np.testing.assert_array_equal(decoded.value.values, image.values)
        np.testing.assert_array_equal(decoded.value.coordinates, image.coordinates)
