"""ppx.codec: lossless round trips, and wire compatibility with flatc-generated plain PPX code.

The generated classes (``ppx.schema.generated``, used through ``plain_ppx``) are an
independent implementation of the schema, the one a plain PPX peer is built on:
what we encode they must read field by field, and what they build we must decode.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path
from typing import Any, Optional

import flatbuffers
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ppx import batch, codec
from ppx import messages as m
from ppx.distributions import BY_TYPE_ID, KINDS
from ppx.errors import ProtocolError
from ppx.schema import regenerate
from ppx.schema.generated import Handshake as GeneratedHandshake
from ppx.schema.generated import Message as GeneratedMessage
from ppx.schema.generated import Sample as GeneratedSample
from ppx.schema.generated.MessageBody import MessageBody

from . import plain_ppx

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------- strategies

texts = st.text(max_size=12)
uint32 = st.integers(min_value=0, max_value=2**32 - 1)
floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
special_floats = st.sampled_from([0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -1.7976931348623157e308])


def arrays(max_dims: int = 3) -> st.SearchStrategy[np.ndarray]:
    """float64 tensors of up to ``max_dims`` dimensions: 0-d scalars and empty tensors included."""
    shapes = hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=3)
    return hnp.arrays(np.float64, shapes, elements=floats | special_floats)


def distributions(kinds=KINDS) -> st.SearchStrategy[m.WireDistribution]:
    return st.sampled_from(kinds).flatmap(
        lambda kind: st.tuples(*(arrays() for _ in kind.wire_params)).map(
            lambda params: m.WireDistribution(kind.type_id, params)))


def records() -> st.SearchStrategy[batch.Record]:
    with_distribution = st.builds(
        batch.Record, kind=st.sampled_from([m.RECORD_SAMPLE, m.RECORD_OBSERVE]), address=texts,
        name=texts, distribution=distributions(), value=arrays(), control=st.booleans())
    tag = st.builds(batch.Record, kind=st.just(m.RECORD_TAG), address=texts, name=texts,
                    distribution=st.none(), value=arrays(), control=st.booleans())
    return with_distribution | tag


# A result of shape (0,) travels as "no result" in a TraceBatch, so results avoid that shape.
batch_results = st.none() | arrays().filter(lambda a: a.shape != (0,))


@st.composite
def trace_batches(draw: st.DrawFn) -> m.TraceBatch:
    traces = draw(st.lists(st.lists(records(), max_size=4), max_size=3))
    results = draw(st.lists(batch_results, min_size=len(traces), max_size=len(traces)))
    return batch.pack(traces, results)


MESSAGES: dict[type, st.SearchStrategy] = {
    m.Handshake: st.builds(m.Handshake, texts, uint32, st.lists(texts, max_size=3).map(tuple)),
    m.HandshakeResult: st.builds(m.HandshakeResult, texts, texts, uint32, st.lists(texts, max_size=3).map(tuple)),
    m.Run: st.builds(m.Run, uint32, uint32),
    m.RunResult: st.builds(m.RunResult, st.none() | arrays()),
    m.Sample: st.builds(m.Sample, texts, texts, distributions(), st.booleans()),
    m.SampleResult: st.builds(m.SampleResult, arrays()),
    m.Observe: st.builds(m.Observe, texts, texts, distributions(), st.none() | arrays()),
    m.ObserveResult: st.just(m.ObserveResult()),
    m.Tag: st.builds(m.Tag, texts, texts, arrays()),
    m.TagResult: st.just(m.TagResult()),
    m.Reset: st.just(m.Reset()),
    m.TraceBatch: trace_batches(),
    m.Error: st.builds(m.Error, texts),
}

any_message = st.one_of(*MESSAGES.values())

# ---------------------------------------------------------------- structural comparison


def assert_tensor_equal(actual: Any, expected: Any, where: str = "tensor") -> None:
    """Same shape and values, nan equal to nan, and negative zero kept negative."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{where}: shape {actual.shape} != {expected.shape}"
    np.testing.assert_array_equal(actual, expected, err_msg=where, strict=True)
    if expected.dtype.kind == "f":
        np.testing.assert_array_equal(np.signbit(actual), np.signbit(expected), err_msg=f"{where} sign")


def assert_same(actual: Any, expected: Any, where: str = "message") -> None:
    """Compare messages (and what they hold) field by field; numpy arrays by value."""
    if isinstance(expected, (np.ndarray, np.generic)):
        assert_tensor_equal(actual, expected, where)
    elif dataclasses.is_dataclass(expected):
        assert type(actual) is type(expected), f"{where}: {type(actual).__name__} != {type(expected).__name__}"
        for field in dataclasses.fields(expected):
            assert_same(getattr(actual, field.name), getattr(expected, field.name), f"{where}.{field.name}")
    elif isinstance(expected, (tuple, list)):
        assert isinstance(actual, type(expected)), f"{where}: {type(actual).__name__} != {type(expected).__name__}"
        assert len(actual) == len(expected), f"{where}: {len(actual)} items != {len(expected)}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, f"{where}[{i}]")
    else:
        assert actual == expected and type(actual) is type(expected), f"{where}: {actual!r} != {expected!r}"


def round_trip(message: m.Message) -> m.Message:
    return codec.decode(codec.encode(message))


# ---------------------------------------------------------------- our codec, both ways


@pytest.mark.parametrize("cls", list(MESSAGES), ids=lambda cls: cls.__name__)
@SETTINGS
@given(data=st.data())
def test_every_message_survives_a_round_trip(cls: type, data: st.DataObject) -> None:
    message = data.draw(MESSAGES[cls])
    assert_same(round_trip(message), message)


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.name)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_every_distribution_survives_a_round_trip(kind, data: st.DataObject) -> None:
    distribution = data.draw(distributions([kind]))
    sample = m.Sample("[forward()+0x96]", "x", distribution, control=data.draw(st.booleans()))
    observe = m.Observe("[forward()+0x1c2]", "y", distribution, value=data.draw(st.none() | arrays()))
    assert_same(round_trip(sample), sample)
    assert_same(round_trip(observe), observe)


def test_special_values_keep_their_bits() -> None:
    values = np.array([-0.0, 0.0, np.inf, -np.inf, np.nan, 5e-324])
    decoded = round_trip(m.SampleResult(values)).result
    assert decoded.tobytes() == values.tobytes()


@pytest.mark.parametrize("shape", [(), (0,), (2, 0), (0, 3, 1), (1, 1, 1, 1)])
def test_scalar_and_empty_shapes_survive(shape: tuple[int, ...]) -> None:
    tensor = np.full(shape, 2.5)
    assert round_trip(m.Tag("a", "b", tensor)).value.shape == shape


def test_non_float64_input_is_sent_as_float64() -> None:
    decoded = round_trip(m.SampleResult(np.arange(6, dtype=np.int32).reshape(2, 3)[:, ::2])).result
    assert_tensor_equal(decoded, np.array([[0.0, 2.0], [3.0, 5.0]]))


def test_encode_rejects_what_is_not_a_message() -> None:
    with pytest.raises(TypeError, match="expected a PPX message"):
        codec.encode("Run")  # type: ignore[arg-type]


def test_missing_required_tensor_is_a_protocol_error() -> None:
    builder = flatbuffers.Builder(64)
    plain_ppx.SampleResult.SampleResultStart(builder)
    frame = plain_ppx.finish(builder, MessageBody.SampleResult, plain_ppx.SampleResult.SampleResultEnd(builder))
    with pytest.raises(ProtocolError, match="SampleResult.result is missing"):
        codec.decode(frame)


# ---------------------------------------------------------------- what we encode, flatc code reads


def generated_body(message: m.Message) -> Any:
    body_type, body = plain_ppx.parse(codec.encode(message))
    assert body_type == m.MESSAGE_TYPES.index(type(message)) + 1
    return body


@SETTINGS
@given(message=MESSAGES[m.Sample])
def test_generated_code_reads_our_sample(message: m.Sample) -> None:
    body = generated_body(message)
    assert plain_ppx.text(body.Address()) == message.address
    assert plain_ppx.text(body.Name()) == message.name
    assert body.Control() is message.control
    type_id, params = plain_ppx.read_distribution(body)
    assert_same(m.WireDistribution(type_id, params), message.distribution)


def test_generated_code_reads_control_default_true_and_explicit_false() -> None:
    normal = m.WireDistribution(1, (np.array(0.0), np.array(1.0)))
    assert generated_body(m.Sample("a", "n", normal)).Control() is True
    assert generated_body(m.Sample("a", "n", normal, control=False)).Control() is False


@SETTINGS
@given(message=MESSAGES[m.Observe])
def test_generated_code_reads_our_observe(message: m.Observe) -> None:
    body = generated_body(message)
    assert (plain_ppx.text(body.Address()), plain_ppx.text(body.Name())) == (message.address, message.name)
    type_id, params = plain_ppx.read_distribution(body)
    assert_same(m.WireDistribution(type_id, params), message.distribution)
    if message.value is None:
        assert body.Value() is None
    else:
        assert_tensor_equal(plain_ppx.read_tensor(body.Value()), message.value)


@SETTINGS
@given(message=MESSAGES[m.Tag])
def test_generated_code_reads_our_tag(message: m.Tag) -> None:
    body = generated_body(message)
    assert (plain_ppx.text(body.Address()), plain_ppx.text(body.Name())) == (message.address, message.name)
    tensor = body.Value()
    assert tensor.ShapeLength() == message.value.ndim
    assert [tensor.Shape(i) for i in range(tensor.ShapeLength())] == list(message.value.shape)
    assert_tensor_equal(tensor.DataAsNumpy() if not tensor.DataIsNone() else np.zeros(0), message.value.ravel())


@SETTINGS
@given(value=arrays())
def test_generated_code_reads_our_results(value: np.ndarray) -> None:
    assert_tensor_equal(plain_ppx.read_tensor(generated_body(m.SampleResult(value)).Result()), value)
    assert_tensor_equal(plain_ppx.read_tensor(generated_body(m.RunResult(value)).Result()), value)


def test_generated_code_reads_run_result_without_result() -> None:
    assert generated_body(m.RunResult()).Result() is None


@SETTINGS
@given(message=MESSAGES[m.HandshakeResult])
def test_generated_code_reads_our_handshakes(message: m.HandshakeResult) -> None:
    body = generated_body(message)
    assert plain_ppx.text(body.SystemName()) == message.system_name
    assert plain_ppx.text(body.ModelName()) == message.model_name
    assert body.ProtocolVersion() == message.protocol_version
    assert tuple(body.Capabilities(i).decode() for i in range(body.CapabilitiesLength())) == message.capabilities
    request = generated_body(m.Handshake(message.system_name, message.protocol_version, message.capabilities))
    assert plain_ppx.text(request.SystemName()) == message.system_name
    assert request.ProtocolVersion() == message.protocol_version
    assert request.CapabilitiesLength() == len(message.capabilities)


def test_plain_handshake_carries_no_extension_fields() -> None:
    body = generated_body(m.Handshake("engine"))
    assert plain_ppx.text(body.SystemName()) == "engine"
    assert body._tab.Offset(6) == 0 and body.CapabilitiesIsNone()


@pytest.mark.parametrize("message", [m.Run(), m.ObserveResult(), m.TagResult(), m.Reset()],
                         ids=lambda message: type(message).__name__)
def test_generated_code_reads_our_empty_messages(message: m.Message) -> None:
    frame = codec.encode(message)
    root = GeneratedMessage.Message.GetRootAs(frame, 0)
    assert root.BodyType() == m.MESSAGE_TYPES.index(type(message)) + 1
    if isinstance(message, m.Run):
        assert generated_body(message).NumTraces() == 0 and generated_body(message).Seed() == 0


def test_generated_code_reads_a_seeded_batch_run() -> None:
    body = generated_body(m.Run(num_traces=64, seed=2**32 - 1))
    assert (body.NumTraces(), body.Seed()) == (64, 2**32 - 1)


# ---------------------------------------------------------------- what flatc code builds, we decode


@SETTINGS
@given(address=texts, name=texts, distribution=distributions(), control=st.none() | st.booleans())
def test_we_decode_a_plain_sample(address: str, name: str, distribution: m.WireDistribution,
                                  control: Optional[bool]) -> None:
    frame = plain_ppx.sample_frame(address, name, distribution.type_id, distribution.params, control)
    expected = m.Sample(address, name, distribution, control=True if control is None else control)
    assert_same(codec.decode(frame), expected)


@SETTINGS
@given(address=texts, name=texts, distribution=distributions(), value=st.none() | arrays())
def test_we_decode_a_plain_observe(address: str, name: str, distribution: m.WireDistribution,
                                   value: Optional[np.ndarray]) -> None:
    frame = plain_ppx.observe_frame(address, name, distribution.type_id, distribution.params, value)
    assert_same(codec.decode(frame), m.Observe(address, name, distribution, value))


@SETTINGS
@given(address=texts, name=texts, value=arrays())
def test_we_decode_plain_tags_and_results(address: str, name: str, value: np.ndarray) -> None:
    assert_same(codec.decode(plain_ppx.tag_frame(address, name, value)), m.Tag(address, name, value))
    assert_same(codec.decode(plain_ppx.result_frame(MessageBody.SampleResult, value)), m.SampleResult(value))
    assert_same(codec.decode(plain_ppx.result_frame(MessageBody.RunResult, value)), m.RunResult(value))


def test_we_decode_a_plain_run_result_without_result() -> None:
    assert_same(codec.decode(plain_ppx.result_frame(MessageBody.RunResult, None)), m.RunResult())


@SETTINGS
@given(system_name=texts, model_name=texts)
def test_we_decode_plain_handshakes_as_protocol_version_zero(system_name: str, model_name: str) -> None:
    assert_same(codec.decode(plain_ppx.handshake_frame(system_name)), m.Handshake(system_name, 0, ()))
    assert_same(codec.decode(plain_ppx.handshake_result_frame(system_name, model_name)),
                m.HandshakeResult(system_name, model_name, 0, ()))


@pytest.mark.parametrize("expected", [m.Run(), m.ObserveResult(), m.TagResult(), m.Reset()],
                         ids=lambda message: type(message).__name__)
def test_we_decode_plain_empty_messages(expected: m.Message) -> None:
    frame = plain_ppx.empty_frame(m.MESSAGE_TYPES.index(type(expected)) + 1)
    assert_same(codec.decode(frame), expected)


def test_plain_frames_have_no_file_identifier_and_one_with_it_also_decodes() -> None:
    frame = plain_ppx.handshake_frame("engine")
    assert not GeneratedMessage.Message.MessageBufferHasIdentifier(frame, 0)
    builder = flatbuffers.Builder(64)
    name = builder.CreateString("engine")
    GeneratedHandshake.HandshakeStart(builder)
    GeneratedHandshake.HandshakeAddSystemName(builder, name)
    body = GeneratedHandshake.HandshakeEnd(builder)
    GeneratedMessage.MessageStart(builder)
    GeneratedMessage.MessageAddBodyType(builder, MessageBody.Handshake)
    GeneratedMessage.MessageAddBody(builder, body)
    builder.Finish(GeneratedMessage.MessageEnd(builder), file_identifier=b"PPXF")
    identified = bytes(builder.Output())
    assert GeneratedMessage.Message.MessageBufferHasIdentifier(identified, 0)
    assert_same(codec.decode(identified), m.Handshake("engine"))


def test_tensor_without_shape_decodes_as_a_vector() -> None:
    builder = flatbuffers.Builder(64)
    data = builder.CreateNumpyVector(np.array([1.0, 2.0, 3.0]))
    plain_ppx.Tensor.TensorStart(builder)
    plain_ppx.Tensor.TensorAddData(builder, data)
    tensor = plain_ppx.Tensor.TensorEnd(builder)
    plain_ppx.SampleResult.SampleResultStart(builder)
    plain_ppx.SampleResult.SampleResultAddResult(builder, tensor)
    frame = plain_ppx.finish(builder, MessageBody.SampleResult, plain_ppx.SampleResult.SampleResultEnd(builder))
    assert_same(codec.decode(frame), m.SampleResult(np.array([1.0, 2.0, 3.0])))


# ---------------------------------------------------------------- forward compatibility


def sample_from_a_newer_peer(extra_slot_value: int) -> bytes:
    """A plain Sample whose Sample and Message tables carry one field appended after the known ones."""
    builder = flatbuffers.Builder(128)
    address, name = builder.CreateString("[forward()+0x96]"), builder.CreateString("mu")
    unknown_text = builder.CreateString("from the future")
    distribution = plain_ppx.build_distribution(builder, 1, (1.0, 2.0))
    builder.StartObject(7)  # Sample's five slots, one unknown string and one unknown uint32
    GeneratedSample.SampleAddAddress(builder, address)
    GeneratedSample.SampleAddName(builder, name)
    GeneratedSample.SampleAddDistributionType(builder, 1)
    GeneratedSample.SampleAddDistribution(builder, distribution)
    GeneratedSample.SampleAddControl(builder, False)
    builder.PrependUOffsetTRelativeSlot(5, unknown_text, 0)
    builder.PrependUint32Slot(6, extra_slot_value, 0)
    body = builder.EndObject()
    builder.StartObject(3)
    GeneratedMessage.MessageAddBodyType(builder, MessageBody.Sample)
    GeneratedMessage.MessageAddBody(builder, body)
    builder.PrependUint32Slot(2, extra_slot_value, 0)
    builder.Finish(builder.EndObject())
    return bytes(builder.Output())


def test_unknown_appended_fields_are_ignored() -> None:
    decoded = codec.decode(sample_from_a_newer_peer(extra_slot_value=7))
    expected = m.Sample("[forward()+0x96]", "mu", m.WireDistribution(1, (np.array(1.0), np.array(2.0))),
                        control=False)
    assert_same(decoded, expected)


def test_unknown_appended_handshake_field_is_ignored() -> None:
    builder = flatbuffers.Builder(64)
    name = builder.CreateString("future-engine")
    builder.StartObject(4)
    GeneratedHandshake.HandshakeAddSystemName(builder, name)
    GeneratedHandshake.HandshakeAddProtocolVersion(builder, 9)
    builder.PrependUint64Slot(3, 2**40, 0)
    frame = plain_ppx.finish(builder, MessageBody.Handshake, builder.EndObject())
    assert_same(codec.decode(frame), m.Handshake("future-engine", 9, ()))


# ---------------------------------------------------------------- the C++ FlatBuffers library (flatc)
# flatc converts between JSON and binary with the same C++ library the C++ front end is built on;
# its builder lays buffers out differently (back to front, shared vtables, the file identifier).

def as_flatc_json(message: m.Message) -> dict:
    """``message`` in flatc's JSON form, without the fields our encoder omits (defaults, empty strings and lists)."""
    body: dict[str, Any] = {}
    for field in dataclasses.fields(message):
        value = getattr(message, field.name)
        if isinstance(value, m.WireDistribution):
            kind = BY_TYPE_ID[value.type_id]
            body["distribution_type"] = kind.name
            body["distribution"] = {name: tensor_json(p) for name, p in zip(kind.wire_params, value.params)}
        elif isinstance(value, np.ndarray):
            body[field.name] = tensor_json(value)
        elif value is not None and value != "" and value != () and value != field.default:
            body[field.name] = list(value) if isinstance(value, tuple) else value
    return {"body_type": type(message).__name__, "body": body}


def tensor_json(array: np.ndarray) -> dict:
    return {"data": array.ravel().tolist(), "shape": list(array.shape)}


def exact(*values: float) -> np.ndarray:
    """Values that print exactly in JSON, so that the comparison is not about float formatting."""
    return np.array(values, dtype=np.float64)


FLATC_MESSAGES: list[m.Message] = [
    m.Handshake("engine"),
    m.HandshakeResult("simulator", "gaussian"),
    m.Run(),
    m.RunResult(exact(1.5, -2.0).reshape(2, 1)),
    m.RunResult(),
    m.SampleResult(exact(0.25).reshape(())),
    m.Observe("[forward()+0x1c2]", "obs0", m.WireDistribution(1, (exact(1.0), exact(2.0))), exact(3.0, 4.0)),
    m.Observe("[forward()+0x2a8]", "obs1", m.WireDistribution(1, (exact(1.0), exact(2.0)))),
    m.ObserveResult(),
    m.Tag("[forward()+0x300]", "energy", np.zeros((2, 0))),
    m.TagResult(),
    m.Reset(),
    m.Sample("[forward()+0x96]", "", m.WireDistribution(1, (exact(0.5), exact(1.0))), control=False),
] + [
    m.Sample(f"[forward()+0x{kind.type_id:x}]", kind.name,
             m.WireDistribution(kind.type_id, tuple(exact(0.5 * i, 1.0).reshape(2, 1) for i, _ in
                                                    enumerate(kind.wire_params))))
    for kind in KINDS
]


@pytest.fixture(scope="module")
def flatc() -> str:
    # flatc comes with the test extras; a missing compiler is a broken set-up, not a reason to skip.
    return regenerate.find_flatc()


def run_flatc(flatc: str, *arguments: str) -> None:
    completed = subprocess.run([flatc, *arguments], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_flatc_reads_what_we_encode(flatc: str, tmp_path: Path) -> None:
    frames = []
    for i, message in enumerate(FLATC_MESSAGES):
        frames.append(tmp_path / f"message{i}.bin")
        frames[-1].write_bytes(codec.encode(message))
    run_flatc(flatc, "--json", "--strict-json", "--raw-binary", "-o", str(tmp_path / "json"),
              str(regenerate.SCHEMA), "--", *map(str, frames))
    for i, message in enumerate(FLATC_MESSAGES):
        read = json.loads((tmp_path / "json" / f"message{i}.json").read_text())
        assert read == as_flatc_json(message), f"message {i}: {type(message).__name__}"


def test_we_decode_what_flatc_builds(flatc: str, tmp_path: Path) -> None:
    sources = []
    for i, message in enumerate(FLATC_MESSAGES):
        sources.append(tmp_path / f"message{i}.json")
        sources[-1].write_text(json.dumps(as_flatc_json(message)))
    run_flatc(flatc, "--binary", "-o", str(tmp_path / "bin"), str(regenerate.SCHEMA), *map(str, sources))
    for i, message in enumerate(FLATC_MESSAGES):
        assert_same(codec.decode((tmp_path / "bin" / f"message{i}.bin").read_bytes()), message, f"message {i}")
