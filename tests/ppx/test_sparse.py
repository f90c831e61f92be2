"""The ``sparse-tensor`` extension: SparseArray, SparseNormal, and their codec and TraceBatch forms.

Round trips through our codec, frames read and built by flatc-generated code and
by flatc itself, and every inconsistency a peer could send refused with a
``ProtocolError`` naming the field.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import flatbuffers
import numpy as np
import pyro.distributions as dist
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ppx import batch, codec
from ppx import messages as m
from ppx.distributions import BY_TYPE_ID, from_wire, to_plain_wire, to_wire
from ppx.errors import ProtocolError
from ppx.schema import regenerate
from ppx.schema.generated import SparseNormal as GeneratedSparseNormal
from ppx.schema.generated import SparseTensor as GeneratedSparseTensor
from ppx.schema.generated.Distribution import Distribution
from ppx.schema.generated.MessageBody import MessageBody
from ppx.sparse import SparseArray, as_sparse_array
from ppx.sparse_normal import SparseNormal

from . import plain_ppx
from .test_codec import assert_same, run_flatc
from .test_codec import flatc  # noqa: F401  (fixture)

SPARSE_NORMAL = BY_TYPE_ID[Distribution.SparseNormal]


@st.composite
def sparse_arrays(draw: st.DrawFn, max_dims: int = 3) -> SparseArray:
    """Sparse arrays of up to ``max_dims`` dimensions, empty ones and scalars included."""
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=max_dims)))
    size = int(np.prod(shape, dtype=np.int64))
    positions = draw(st.lists(st.integers(0, max(size - 1, 0)), unique=True, max_size=min(size, 6)))
    values = draw(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64),
                           min_size=len(positions), max_size=len(positions)))
    chosen = np.zeros(size, dtype=bool)
    chosen[positions] = True
    coordinates = np.argwhere(chosen.reshape(shape))
    return SparseArray(coordinates, np.array(values, dtype=np.float64), shape)


def sparse_normals() -> st.SearchStrategy[m.WireDistribution]:
    stddevs = st.floats(min_value=1e-3, max_value=1e3).map(np.float64).map(np.asarray)
    return st.tuples(sparse_arrays(), stddevs).map(lambda params: m.WireDistribution(SPARSE_NORMAL.type_id, params))


def image(size: int = 8) -> SparseArray:
    return SparseArray(np.array([[0, 1, 2], [size - 1, 0, 3], [4, 4, 4]]), np.array([1.5, 0.25, 3.0]),
                       (size, size, size))


# ---------------------------------------------------------------- SparseArray


def test_sparse_array_round_trips_through_dense_and_torch() -> None:
    sparse = image()
    dense = sparse.to_dense()
    assert dense.shape == (8, 8, 8) and np.count_nonzero(dense) == 3 and dense[7, 0, 3] == 0.25
    again = SparseArray.from_dense(dense)
    np.testing.assert_array_equal(again.to_dense(), dense)
    coo = torch.sparse_coo_tensor(torch.from_numpy(sparse.coordinates.T), torch.from_numpy(sparse.values), (8, 8, 8),
                                  check_invariants=True)
    from_torch = as_sparse_array(coo)
    np.testing.assert_array_equal(from_torch.to_dense(), dense)
    assert as_sparse_array(np.zeros(3)) is None


@pytest.mark.parametrize("coordinates, values, shape, problem", [
    ([[0, 8, 0]], [1.0], (8, 8, 8), r"\[0, 8, 0\] \(entry 0\) lie outside the shape \[8, 8, 8\]"),
    ([[0, -1, 0]], [1.0], (8, 8, 8), "outside the shape"),
    ([[0, 0, 0], [0, 0, 0]], [1.0, 2.0], (8, 8, 8), "repeat an entry"),
    ([[0, 0, 0]], [1.0, 2.0], (8, 8, 8), r"shape \(N, ndim\) = \(2, 3\)"),
    ([[0, 0]], [1.0], (8, 8, 8), r"shape \(N, ndim\) = \(1, 3\)"),
    ([[0.5, 0, 0]], [1.0], (8, 8, 8), "must be integers"),
    ([[0, 0, 0]], [1.0], (8, -8, 8), "negative extent"),
    ([], [[1.0]], (8,), "one-dimensional"),
])
def test_inconsistent_sparse_arrays_are_refused_naming_the_problem(coordinates, values, shape, problem) -> None:
    with pytest.raises(ValueError, match=problem):
        SparseArray(np.array(coordinates), np.array(values), shape)


# ---------------------------------------------------------------- SparseNormal


def test_sparse_normal_density_is_the_dense_normals_over_every_element() -> None:
    generator = np.random.default_rng(0)
    mean = SparseArray.from_dense(np.where(generator.random((6, 5, 4)) < 0.2, generator.normal(size=(6, 5, 4)), 0))
    data = SparseArray.from_dense(np.where(generator.random((6, 5, 4)) < 0.2, generator.normal(size=(6, 5, 4)), 0))
    dense = dist.Normal(torch.from_numpy(mean.to_dense()), 0.7)
    expected = float(dense.log_prob(torch.from_numpy(data.to_dense())).sum())
    sparse = SparseNormal(mean, 0.7)
    assert float(sparse.log_prob(data)) == pytest.approx(expected, rel=1e-12)
    assert float(sparse.log_prob(torch.from_numpy(data.to_dense()))) == pytest.approx(expected, rel=1e-12)
    empty = SparseArray(np.zeros((0, 3), np.int64), np.zeros(0), (6, 5, 4))
    assert float(SparseNormal(empty, 0.7).log_prob(empty)) == pytest.approx(
        120 * (-math.log(0.7) - 0.5 * math.log(2 * math.pi)))


def test_sparse_normal_refuses_bad_parameters_and_values_and_cannot_sample() -> None:
    with pytest.raises(ValueError, match="scale must be one positive finite number"):
        SparseNormal(image(), -1.0)
    with pytest.raises(ValueError, match="loc must be a SparseArray"):
        SparseNormal(np.zeros(3), 1.0)
    with pytest.raises(ValueError, match=r"shape \[8, 8, 8\] cannot weigh a value of shape \[4, 4, 4\]"):
        SparseNormal(image(), 1.0).log_prob(np.ones((4, 4, 4)))
    with pytest.raises(NotImplementedError, match="pass the simulated value"):
        SparseNormal(image(), 1.0).sample()


def test_sparse_normal_goes_to_the_wire_and_back_and_to_plain_peers_as_a_normal() -> None:
    type_id, params = to_wire(SparseNormal(image(), 0.5))
    assert type_id == Distribution.SparseNormal and isinstance(params[0], SparseArray)
    rebuilt = from_wire(type_id, params)
    assert isinstance(rebuilt, SparseNormal) and float(rebuilt.scale) == 0.5
    plain_id, plain_params = to_plain_wire(type_id, params)
    assert plain_id == Distribution.Normal
    np.testing.assert_array_equal(plain_params[0], image().to_dense())
    normal = from_wire(plain_id, plain_params)
    value = torch.from_numpy(image().to_dense())
    assert float(normal.log_prob(value).sum()) == pytest.approx(float(rebuilt.log_prob(value)))


# ---------------------------------------------------------------- codec


@settings(max_examples=40, deadline=None)
@given(value=sparse_arrays(), distribution=sparse_normals())
def test_sparse_observe_survives_a_round_trip(value: SparseArray, distribution: m.WireDistribution) -> None:
    message = m.Observe("[forward()+0x1c2]", "image", distribution, value)
    assert_same(codec.decode(codec.encode(message)), message)


def test_dense_values_and_normals_are_unchanged_by_the_extension() -> None:
    message = m.Observe("a", "obs", m.WireDistribution(1, (np.zeros((2, 2)), np.array(1.0))), np.ones((2, 2)))
    assert_same(codec.decode(codec.encode(message)), message)


def test_distribution_parameters_are_written_in_the_table_type_their_slot_has() -> None:
    dense_mean = m.WireDistribution(SPARSE_NORMAL.type_id, (image().to_dense(), np.array(1.0)))
    decoded = codec.decode(codec.encode(m.Observe("a", "image", dense_mean))).distribution
    np.testing.assert_array_equal(decoded.params[0].to_dense(), image().to_dense())
    sparse_in_a_normal = m.WireDistribution(1, (image(), np.array(1.0)))
    decoded = codec.decode(codec.encode(m.Observe("a", "image", sparse_in_a_normal))).distribution
    np.testing.assert_array_equal(decoded.params[0], image().to_dense())


def test_generated_code_reads_our_sparse_observe() -> None:
    message = m.Observe("addr", "image", m.WireDistribution(SPARSE_NORMAL.type_id, (image(), np.array(0.5))),
                        image())
    body_type, body = plain_ppx.parse(codec.encode(message))
    assert body_type == MessageBody.Observe and body.Value() is None
    value = body.SparseValue()
    np.testing.assert_array_equal(value.CoordinatesAsNumpy().reshape(-1, 3), image().coordinates)
    np.testing.assert_array_equal(value.ValuesAsNumpy(), image().values)
    assert value.ShapeAsNumpy().tolist() == [8, 8, 8]
    assert body.DistributionType() == Distribution.SparseNormal
    table = GeneratedSparseNormal.SparseNormal()
    table.Init(body.Distribution().Bytes, body.Distribution().Pos)
    np.testing.assert_array_equal(table.Mean().ValuesAsNumpy(), image().values)
    assert plain_ppx.read_tensor(table.Stddev()) == 0.5


def test_flatc_reads_our_sparse_observe(flatc: str, tmp_path: Path) -> None:
    message = m.Observe("addr", "image", m.WireDistribution(SPARSE_NORMAL.type_id, (image(), np.array(0.5))),
                        image())
    (tmp_path / "observe.bin").write_bytes(codec.encode(message))
    run_flatc(flatc, "--json", "--strict-json", "--raw-binary", "-o", str(tmp_path), str(regenerate.SCHEMA), "--",
              str(tmp_path / "observe.bin"))
    body = json.loads((tmp_path / "observe.json").read_text())["body"]
    sparse = {"coordinates": image().coordinates.ravel().tolist(), "values": image().values.tolist(),
              "shape": [8, 8, 8]}
    assert body["sparse_value"] == sparse and "value" not in body
    assert body["distribution_type"] == "SparseNormal"
    assert body["distribution"] == {"mean": sparse, "stddev": {"data": [0.5], "shape": []}}


def sparse_observe_frame(coordinates: list[int], values: list[float], shape: list[int],
                         dense_too: bool = False) -> bytes:
    """An Observe with a SparseNormal and a sparse value built by flatc-generated code, unchecked."""
    builder = flatbuffers.Builder(256)

    def sparse_tensor() -> int:
        coordinates_at = builder.CreateNumpyVector(np.array(coordinates, dtype=np.int32))
        values_at = builder.CreateNumpyVector(np.array(values, dtype=np.float64))
        shape_at = builder.CreateNumpyVector(np.array(shape, dtype=np.int32))
        GeneratedSparseTensor.SparseTensorStart(builder)
        GeneratedSparseTensor.SparseTensorAddCoordinates(builder, coordinates_at)
        GeneratedSparseTensor.SparseTensorAddValues(builder, values_at)
        GeneratedSparseTensor.SparseTensorAddShape(builder, shape_at)
        return GeneratedSparseTensor.SparseTensorEnd(builder)

    value, mean, stddev = sparse_tensor(), sparse_tensor(), plain_ppx.build_tensor(builder, 1.0)
    dense = plain_ppx.build_tensor(builder, np.zeros(shape)) if dense_too else None
    GeneratedSparseNormal.SparseNormalStart(builder)
    GeneratedSparseNormal.SparseNormalAddMean(builder, mean)
    GeneratedSparseNormal.SparseNormalAddStddev(builder, stddev)
    distribution = GeneratedSparseNormal.SparseNormalEnd(builder)
    plain_ppx.Observe.ObserveStart(builder)
    plain_ppx.Observe.ObserveAddDistributionType(builder, Distribution.SparseNormal)
    plain_ppx.Observe.ObserveAddDistribution(builder, distribution)
    plain_ppx.Observe.ObserveAddSparseValue(builder, value)
    if dense is not None:
        plain_ppx.Observe.ObserveAddValue(builder, dense)
    return plain_ppx.finish(builder, MessageBody.Observe, plain_ppx.Observe.ObserveEnd(builder))


def test_we_decode_a_sparse_observe_built_by_generated_code() -> None:
    decoded = codec.decode(sparse_observe_frame([0, 1, 2, 3, 3, 3], [1.0, 2.0], [4, 4, 4]))
    assert decoded.value.coordinates.tolist() == [[0, 1, 2], [3, 3, 3]]
    assert decoded.distribution.params[0].values.tolist() == [1.0, 2.0]


@pytest.mark.parametrize("coordinates, values, shape, problem", [
    ([0, 1, 4], [1.0], [4, 4, 4], r"Observe.distribution SparseNormal.mean: coordinates \[0, 1, 4\] \(entry 0\) "
                                  r"lie outside the shape \[4, 4, 4\]"),
    ([0, -1, 2], [1.0], [4, 4, 4], "lie outside the shape"),
    ([0, 1, 2, 3], [1.0], [4, 4, 4], "has 1 values, which need 3 coordinates, but it has 4"),
    ([0, 1, 2], [1.0, 2.0], [4, 4, 4], "has 2 values, which need 6 coordinates, but it has 3"),
    ([1, 1, 1, 1, 1, 1], [1.0, 2.0], [4, 4, 4], "repeat an entry"),
    ([0, 0, 0], [1.0], [4, -4, 4], "negative extent"),
    ([0, 0, 0], [1.0], [2 ** 20, 2 ** 20, 1], "holds 1.1e\\+12 elements, more than the limit"),
    ([], [], [1] * 33, "33 dimensions, more than the limit of 32"),
])
def test_inconsistent_sparse_tensors_are_protocol_errors(coordinates, values, shape, problem) -> None:
    with pytest.raises(ProtocolError, match=problem):
        codec.decode(sparse_observe_frame(coordinates, values, shape))


def test_a_value_sent_both_dense_and_sparse_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="Observe.value is sent both dense and sparse"):
        codec.decode(sparse_observe_frame([0, 1, 2], [1.0], [4, 4, 4], dense_too=True))


# ---------------------------------------------------------------- TraceBatch

NORMAL = m.WireDistribution(1, (np.array(0.0), np.array(1.0)))


def sparse_traces() -> list[list[batch.Record]]:
    sparse_normal = m.WireDistribution(SPARSE_NORMAL.type_id, (image(), np.array(0.5)))
    return [
        [batch.Record(m.RECORD_SAMPLE, "mu", "mu", NORMAL, np.array(0.5)),
         batch.Record(m.RECORD_OBSERVE, "image", "image", sparse_normal, image()),
         batch.Record(m.RECORD_TAG, "n", "n", None, np.array(3.0))],
        [batch.Record(m.RECORD_OBSERVE, "image", "image", NORMAL, np.ones((2, 2)))],
    ]


def test_trace_batches_carry_sparse_values_and_parameters() -> None:
    packed = batch.pack(sparse_traces(), [np.array(1.0), None])
    assert packed.values.sparse.tolist() == [0, 1, 0, 0] and packed.params.sparse.tolist() == [0, 0, 1, 0, 0, 0]
    assert len(packed.values.data) == 1 + 3 + 1 + 4  # the image's 3 values, not its 512 elements
    decoded = codec.decode(codec.encode(packed))
    for (records, _), expected in zip(batch.unpack(decoded), sparse_traces()):
        assert_same(records, expected)


def test_plain_trace_batches_carry_no_sparse_columns() -> None:
    packed = batch.pack([[batch.Record(m.RECORD_SAMPLE, "mu", "mu", NORMAL, np.array(0.5))]], [None])
    assert len(packed.values.sparse) == 0 and len(packed.values.coordinates) == 0
    assert codec.encode(packed) == codec.encode(dataclasses.replace(packed))  # no columns written for them
    assert len(codec.decode(codec.encode(packed)).values.sparse) == 0


def edited(packed: m.TraceBatch, group: str, **columns: np.ndarray) -> m.TraceBatch:
    ragged = dataclasses.replace(getattr(packed, group), **columns)
    return dataclasses.replace(packed, **{group: ragged})


@pytest.mark.parametrize("group, columns, problem", [
    ("values", {"sparse": np.array([1, 1, 0, 0], np.uint8)}, "only observe records may have sparse values"),
    ("values", {"sparse": np.array([0, 1, 0, 1], np.uint8)}, "coordinates are not N"),
    ("values", {"sparse": np.array([0, 1, 0], np.uint8)}, "sparse has 3 flags"),
    ("values", {"coordinates": np.array([0, 1, 2, 7, 0, 3, 4, 4, 8], np.int32)},
     r"TraceBatch.values\[1\]: coordinates \[4, 4, 8\] \(entry 2\) lie outside"),
    ("values", {"coordinate_offsets": np.array([0, 0, 6, 9, 9])}, "a dense tensor has coordinates"),
    ("values", {"coordinate_offsets": np.array([0, 0, 9, 9, 10])}, "do not partition"),
    ("params", {"sparse": np.array([0, 0, 0, 0, 0, 0], np.uint8), "coordinates": np.zeros(0, np.int32),
                "coordinate_offsets": np.zeros(7, np.int64)}, "shapes do not match"),
])
def test_inconsistent_sparse_columns_are_protocol_errors(group: str, columns: dict, problem: str) -> None:
    packed = batch.pack(sparse_traces(), [None, None])
    with pytest.raises(ProtocolError, match=problem):
        batch.unpack(codec.decode(codec.encode(edited(packed, group, **columns))))


def test_sparse_values_only_for_observations_and_sparse_parameters_only_where_the_schema_says() -> None:
    traces = sparse_traces()
    sample = batch.Record(m.RECORD_SAMPLE, "x", "x", NORMAL, image())
    with pytest.raises(ProtocolError, match="only observe records may have sparse values"):
        batch.validate(batch.pack([[sample]], [None]))
    dense_mean = m.WireDistribution(SPARSE_NORMAL.type_id, (image().to_dense(), np.array(0.5)))
    observe = batch.Record(m.RECORD_OBSERVE, "image", "image", dense_mean, image())
    with pytest.raises(ProtocolError, match="SparseNormal's mean is sparse"):
        batch.validate(batch.pack([traces[0][:1] + [observe]], [None]))
