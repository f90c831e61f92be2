"""ppx.batch: whole traces packed into TraceBatch columns and back, and validation of untrusted batches."""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ppx import batch, codec
from ppx import messages as m
from ppx.batch import Record
from ppx.errors import ProtocolError

from .test_codec import assert_same, batch_results, records

NORMAL = m.WireDistribution(1, (np.array(0.0), np.array(1.0)))
CATEGORICAL = m.WireDistribution(3, (np.array([0.25, 0.25, 0.5]),))
BINOMIAL = m.WireDistribution(10, (np.array([10.0, 20.0]), np.array([[0.5, 0.1], [0.2, 0.3]])))


def sample(address: str, name: str, distribution: m.WireDistribution, value, control: bool = True) -> Record:
    return Record(m.RECORD_SAMPLE, address, name, distribution, np.asarray(value, dtype=np.float64), control)


def observe(address: str, name: str, distribution: m.WireDistribution, value) -> Record:
    return Record(m.RECORD_OBSERVE, address, name, distribution, np.asarray(value, dtype=np.float64))


def tag(address: str, name: str, value) -> Record:
    return Record(m.RECORD_TAG, address, name, None, np.asarray(value, dtype=np.float64))


TRACES = [
    [sample("[forward()+0x96]", "mu", NORMAL, 0.3),
     sample("[forward()+0x96]", "", CATEGORICAL, 2.0, control=False),
     observe("[forward()+0x1c2]", "obs0", NORMAL, [1.0, 2.0]),
     tag("[forward()+0x200]", "energy", np.zeros((2, 0)))],
    [],
    [sample("[forward()+0x300]", "n", BINOMIAL, [[3.0, 4.0], [1.0, 0.0]]),
     tag("[forward()+0x200]", "", 7.0)],
]
RESULTS = [np.array(0.3), None, np.arange(6.0).reshape(2, 3)]


def assert_unpacked(actual: list, traces: list, results: list) -> None:
    assert len(actual) == len(traces)
    for t, ((records_out, result_out), records_in, result_in) in enumerate(zip(actual, traces, results)):
        assert_same(records_out, list(records_in), f"trace {t} records")
        if result_in is None:
            assert result_out is None, f"trace {t} result"
        else:
            assert_same(result_out, np.asarray(result_in, dtype=np.float64), f"trace {t} result")


def test_round_trip_of_mixed_traces() -> None:
    assert_unpacked(batch.unpack(batch.pack(TRACES, RESULTS)), TRACES, RESULTS)


def test_round_trip_through_the_wire() -> None:
    decoded = codec.decode(codec.encode(batch.pack(TRACES, RESULTS)))
    assert_unpacked(batch.unpack(decoded), TRACES, RESULTS)


def test_strings_are_shared_and_absent_names_are_minus_one() -> None:
    packed = batch.pack(TRACES, RESULTS)
    assert packed.strings.count("[forward()+0x96]") == 1 and "" not in packed.strings
    names = [packed.strings[i] if i >= 0 else None for i in packed.name.tolist()]
    assert names == ["mu", None, "obs0", "energy", "n", None]
    assert packed.trace_offsets.tolist() == [0, 4, 4, 6]


def test_vector_parameters_keep_their_shapes() -> None:
    (records_out, _), = batch.unpack(batch.pack([TRACES[2]], [None]))
    total_count, probs = records_out[0].distribution.params
    assert total_count.shape == (2,) and probs.shape == (2, 2)


def test_empty_batch() -> None:
    packed = batch.pack([], [])
    assert packed.trace_offsets.tolist() == [0]
    assert batch.unpack(packed) == []
    assert batch.unpack(codec.decode(codec.encode(packed))) == []


def test_empty_vector_result_reads_as_no_result() -> None:
    # The packing uses shape (0,) to mean "no result", so that one shape does not survive.
    ((_, result),) = batch.unpack(batch.pack([[]], [np.zeros(0)]))
    assert result is None


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_round_trip_of_random_traces(data: st.DataObject) -> None:
    traces = data.draw(st.lists(st.lists(records(), max_size=5), max_size=4))
    results = data.draw(st.lists(batch_results, min_size=len(traces), max_size=len(traces)))
    assert_unpacked(batch.unpack(codec.decode(codec.encode(batch.pack(traces, results)))), traces, results)


# ---------------------------------------------------------------- validation of untrusted batches

VALID = batch.pack(TRACES, RESULTS)


def corrupt(**changes) -> m.TraceBatch:
    return dataclasses.replace(VALID, **changes)


def ragged(data, offsets, shapes, shape_offsets) -> m.RaggedTensors:
    return m.RaggedTensors(np.asarray(data, dtype=np.float64), np.asarray(offsets, dtype=np.int64),
                           np.asarray(shapes, dtype=np.int32), np.asarray(shape_offsets, dtype=np.int64))


def tag_batch(values: m.RaggedTensors) -> m.TraceBatch:
    """One trace holding one tag whose value is ``values``' single tensor."""
    return dataclasses.replace(batch.pack([[tag("a", "", 0.0)]], [None]), values=values)


def replaced_value(records_array: np.ndarray, index: int, value) -> np.ndarray:
    changed = records_array.copy()
    changed[index] = value
    return changed


INVALID: dict[str, m.TraceBatch] = {
    "trace offsets missing": corrupt(trace_offsets=np.zeros(0, np.int64)),
    "trace offsets not starting at zero": corrupt(trace_offsets=np.array([1, 4, 4, 6])),
    "trace offsets past the records": corrupt(trace_offsets=np.array([0, 4, 4, 7])),
    "trace offsets short of the records": corrupt(trace_offsets=np.array([0, 4, 4, 5])),
    "trace offsets decreasing": corrupt(trace_offsets=np.array([0, 4, 3, 6])),
    "column shorter than kind": corrupt(address=VALID.address[:-1]),
    "control column longer than kind": corrupt(control=np.append(VALID.control, 1)),
    "address index past the strings": corrupt(address=replaced_value(VALID.address, 0, len(VALID.strings))),
    "negative address index": corrupt(address=replaced_value(VALID.address, 0, -1)),
    "name index past the strings": corrupt(name=replaced_value(VALID.name, 2, len(VALID.strings))),
    "name index below minus one": corrupt(name=replaced_value(VALID.name, 2, -2)),
    "unknown record kind": corrupt(kind=replaced_value(VALID.kind, 3, 3)),
    "sample without distribution type": corrupt(distribution_type=replaced_value(VALID.distribution_type, 0, 0)),
    "unknown distribution type": corrupt(distribution_type=replaced_value(VALID.distribution_type, 0, 12)),
    "distribution with other parameter count": corrupt(
        distribution_type=replaced_value(VALID.distribution_type, 0, 3)),
    "value count differs from records": corrupt(values=m.RaggedTensors.pack([np.zeros(1)] * 5)),
    "result count differs from traces": corrupt(results=m.RaggedTensors.pack([np.zeros(1)] * 2)),
    "shape says 2 elements, data has 3": tag_batch(ragged([1, 2, 3], [0, 3], [2], [0, 1])),
    "scalar with 2 elements": tag_batch(ragged([1, 2], [0, 2], [], [0, 0])),
    "negative dimension": tag_batch(ragged([], [0, 0], [-1, 0], [0, 2])),
    "data offsets not covering the data": tag_batch(ragged([1, 2], [0, 1], [1], [0, 1])),
    "data offsets decreasing": tag_batch(ragged([1, 2], [0, 3, 2], [1, 1], [0, 1, 2])),
    "shape offsets not covering the shapes": tag_batch(ragged([1], [0, 1], [1, 1], [0, 1])),
    "shape offsets not starting at zero": tag_batch(ragged([1], [0, 1], [1], [1, 1])),
}


@pytest.mark.parametrize("broken", INVALID.values(), ids=INVALID.keys())
def test_validate_rejects_inconsistent_batches(broken: m.TraceBatch) -> None:
    with pytest.raises(ProtocolError, match="TraceBatch"):
        batch.validate(broken)
    with pytest.raises(ProtocolError):
        batch.unpack(broken)


def test_validate_accepts_what_pack_makes() -> None:
    batch.validate(VALID)


@pytest.mark.parametrize("values", [
    # 2**30 * 2**30 * 16 wraps the int64 element count to 0, which matches the empty data.
    ragged([], [0, 0], [2**30, 2**30, 16], [0, 3]),
    # numpy arrays have at most 64 dimensions.
    ragged([1.0], [0, 1], [1] * 65, [0, 65]),
], ids=["element count overflows int64", "more dimensions than numpy allows"])
def test_unpack_rejects_shapes_numpy_cannot_build(values: m.RaggedTensors) -> None:
    broken = tag_batch(values)
    with pytest.raises(ProtocolError):
        batch.unpack(codec.decode(codec.encode(broken)))


def result_of(shape: Optional[tuple[int, ...]]) -> Optional[np.ndarray]:
    return None if shape is None else np.ones(shape)


@pytest.mark.parametrize("shape", [None, (), (1,), (2, 3), (0, 2), (1, 1, 1)], ids=str)
def test_result_shapes_round_trip(shape: Optional[tuple[int, ...]]) -> None:
    ((_, result),) = batch.unpack(batch.pack([[tag("a", "", 1.0)]], [result_of(shape)]))
    if shape is None:
        assert result is None
    else:
        assert result.shape == shape


# ---------------------------------------------------------------- sizes and values a batch may claim


def test_tensor_above_the_element_cap_names_the_column(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ppx.limits.MAX_TENSOR_ELEMENTS", 10)
    batch.validate(tag_batch(ragged(np.zeros(10), [0, 10], [2, 5], [0, 2])))
    with pytest.raises(ProtocolError, match=r"TraceBatch\.values\[0\]: tensor shape \[3, 4\] holds 12 elements, "
                                            r"more than the limit of 10"):
        batch.validate(tag_batch(ragged(np.zeros(12), [0, 12], [3, 4], [0, 2])))


def test_empty_tensor_with_absurd_extents_names_the_column() -> None:
    with pytest.raises(ProtocolError, match=r"TraceBatch\.values\[0\]: tensor shape \[0, 2147483647, 2147483647\]"):
        batch.validate(tag_batch(ragged([], [0, 0], [0, 2**31 - 1, 2**31 - 1], [0, 3])))


def test_parameters_broadcasting_beyond_the_cap_name_the_record(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ppx.limits.MAX_TENSOR_ELEMENTS", 100)
    small = m.WireDistribution(1, (np.zeros((10, 1)), np.ones((1, 10))))
    wide = m.WireDistribution(1, (np.zeros((11, 1)), np.ones((1, 10))))
    batch.validate(batch.pack([[tag("t", "", 0.0), sample("a", "", small, np.zeros((10, 10)))]], [None]))
    broken = batch.pack([[tag("t", "", 0.0), sample("[f()+0x8]", "x", wide, np.zeros(1))]], [None])
    with pytest.raises(ProtocolError, match=r"TraceBatch record 1 \(address '\[f\(\)\+0x8\]'\): Normal parameters "
                                            r"\(mean, stddev\) broadcast: tensor shape \[11, 10\]"):
        batch.unpack(codec.decode(codec.encode(broken)))


def test_non_finite_parameters_name_the_record_and_parameter() -> None:
    bad = m.WireDistribution(1, (np.array([0.0, 1.0]), np.array([1.0, np.inf])))
    traced = [[sample("a", "mu", NORMAL, 0.1), tag("t", "", 1.0), observe("[g()+0x4]", "obs", bad, [0.0, 0.0])]]
    checked = batch.pack(traced, [None])
    batch.validate(checked)  # the layout is sound; the values are the engine's concern
    with pytest.raises(ProtocolError, match=r"TraceBatch record 2 \(address '\[g\(\)\+0x4\]'\): "
                                            r"Normal\.stddev must be finite, but holds inf"):
        batch.check_finite_params(checked)
    batch.check_finite_params(VALID)
