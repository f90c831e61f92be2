"""Whole traces packed into columns: the ``TraceBatch`` wire extension and the HDF5 layout.

A trace is a list of ``Record``s (one per sample, observe or tag) plus the
model's result. ``pack`` turns many traces into one ``TraceBatch`` of flat numpy
columns; ``unpack`` validates a batch from an untrusted peer or file and turns
it back into records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from ppx import limits
from ppx.distributions import BY_TYPE_ID, oversized_broadcast
from ppx.errors import ProtocolError
from ppx.messages import (RECORD_OBSERVE, RECORD_SAMPLE, RECORD_TAG, RaggedTensors,
                          TraceBatch, WireDistribution)
from ppx.sparse import SparseArray

_NO_RESULT = np.zeros((0,), dtype=np.float64)


@dataclass(frozen=True, eq=False)
class Record:
    """One random choice, observation or tag as the simulator made it."""

    kind: int
    address: str
    name: str
    distribution: Optional[WireDistribution]
    value: np.ndarray | SparseArray
    """A ``SparseArray`` only for observe records, under the ``sparse-tensor`` extension."""
    control: bool = True


def pack(traces: Sequence[Sequence[Record]], results: Sequence[Optional[np.ndarray]]) -> TraceBatch:
    """Columns for ``traces``; ``results[t]`` is trace t's model result (None for none)."""
    strings: dict[str, int] = {}
    records = [record for trace in traces for record in trace]
    lengths = np.fromiter((len(trace) for trace in traces), dtype=np.int64, count=len(traces))
    trace_offsets = np.zeros(len(traces) + 1, dtype=np.int64)
    np.cumsum(lengths, out=trace_offsets[1:])
    address = np.fromiter((strings.setdefault(r.address, len(strings)) for r in records),
                          dtype=np.int32, count=len(records))
    name = np.fromiter((strings.setdefault(r.name, len(strings)) if r.name else -1 for r in records),
                       dtype=np.int32, count=len(records))
    params = [p for r in records if r.distribution is not None for p in r.distribution.params]
    return TraceBatch(
        strings=tuple(strings),
        trace_offsets=trace_offsets,
        kind=np.fromiter((r.kind for r in records), dtype=np.uint8, count=len(records)),
        address=address,
        name=name,
        distribution_type=np.fromiter(
            (0 if r.distribution is None else r.distribution.type_id for r in records),
            dtype=np.uint8, count=len(records)),
        control=np.fromiter((r.control for r in records), dtype=np.uint8, count=len(records)),
        values=RaggedTensors.pack([r.value if isinstance(r.value, SparseArray)
                                   else np.asarray(r.value, dtype=np.float64) for r in records]),
        params=RaggedTensors.pack(params),
        results=RaggedTensors.pack([_NO_RESULT if r is None else np.asarray(r, dtype=np.float64)
                                    for r in results]),
    )


def _check_ragged(ragged: RaggedTensors, count: int, what: str) -> np.ndarray:
    """Raise ``ProtocolError`` unless the ragged columns describe ``count`` tensors within the
    size cap; return each tensor's size with zero extents counted as one."""
    offsets, shape_offsets = ragged.offsets, ragged.shape_offsets
    for name, column in (("offsets", offsets), ("shape_offsets", shape_offsets)):
        if len(column) != count + 1:
            raise ProtocolError(f"TraceBatch.{what}.{name} has {len(column)} entries, expected {count + 1} "
                                f"(one more than its {count} tensors)")
    for name, column, end in (("offsets", offsets, len(ragged.data)),
                              ("shape_offsets", shape_offsets, len(ragged.shapes))):
        if len(column) and (column[0] != 0 or column[-1] != end or (np.diff(column) < 0).any()):
            raise ProtocolError(f"TraceBatch.{what}.{name} do not partition its {end} entries")
    if (ragged.shapes < 0).any():
        raise ProtocolError(f"TraceBatch.{what} has a negative tensor dimension")
    if count and np.diff(shape_offsets).max() > limits.MAX_DIMENSIONS:
        raise ProtocolError(f"TraceBatch.{what} has a tensor of more than {limits.MAX_DIMENSIONS} dimensions")
    # reduceat over the shapes with a trailing 1 so that every start index is in range;
    # a scalar (no dimensions) has one element. Products are taken in float64, which
    # cannot wrap around: absurd shapes become huge (or inf) and fail the comparison.
    extents = np.append(ragged.shapes.astype(np.float64), 1.0)
    starts, scalar = shape_offsets[:-1], np.diff(shape_offsets) == 0
    sizes = np.where(scalar, 1, np.multiply.reduceat(extents, starts)) if count else np.zeros(0)
    # As in the codec, zero extents count as one: shape [0, 2**31 - 1] is absurd, not empty.
    # A sparse tensor's dense shape is held to the same cap: it is what densifying it allocates.
    nominal = np.where(scalar, 1, np.multiply.reduceat(np.maximum(extents, 1.0), starts)) if count else sizes
    if count and nominal.max() > limits.MAX_TENSOR_ELEMENTS:
        i = int(nominal.argmax())
        shape = ragged.shapes[shape_offsets[i]:shape_offsets[i + 1]].tolist()
        raise ProtocolError(limits.tensor_too_large(f"TraceBatch.{what}[{i}]", shape, nominal[i]))
    if len(ragged.sparse) or len(ragged.coordinates) or len(ragged.coordinate_offsets):
        _check_sparse_entries(ragged, count, sizes, what)
    elif not np.array_equal(sizes, np.diff(offsets)):
        raise ProtocolError(f"TraceBatch.{what}: tensor shapes do not match their data lengths")
    return nominal


def _check_sparse_entries(ragged: RaggedTensors, count: int, sizes: np.ndarray, what: str) -> None:
    """The ``sparse-tensor`` columns: flags, coordinate ranges, and each sparse tensor itself."""
    flags, coordinate_offsets = ragged.sparse, ragged.coordinate_offsets
    if len(flags) != count or len(coordinate_offsets) != count + 1:
        raise ProtocolError(f"TraceBatch.{what}: sparse has {len(flags)} flags and coordinate_offsets "
                            f"{len(coordinate_offsets)} entries, expected {count} and {count + 1}")
    if (flags > 1).any():
        raise ProtocolError(f"TraceBatch.{what}.sparse holds a flag other than 0 or 1")
    if (coordinate_offsets[0] != 0 or coordinate_offsets[-1] != len(ragged.coordinates)
            or (np.diff(coordinate_offsets) < 0).any()):
        raise ProtocolError(f"TraceBatch.{what}.coordinate_offsets do not partition its "
                            f"{len(ragged.coordinates)} coordinates")
    sparse = flags.astype(bool)
    lengths, ndims = np.diff(ragged.offsets), np.diff(ragged.shape_offsets)
    coordinate_counts = np.diff(coordinate_offsets)
    if not np.array_equal(sizes[~sparse], lengths[~sparse]):
        raise ProtocolError(f"TraceBatch.{what}: tensor shapes do not match their data lengths")
    if coordinate_counts[~sparse].any():
        raise ProtocolError(f"TraceBatch.{what}: a dense tensor has coordinates")
    if not np.array_equal(coordinate_counts[sparse], lengths[sparse] * ndims[sparse]):
        raise ProtocolError(f"TraceBatch.{what}: a sparse tensor's coordinates are not N * ndim for its "
                            f"N values")
    for i in np.flatnonzero(sparse).tolist():
        shape = tuple(ragged.shapes[ragged.shape_offsets[i]:ragged.shape_offsets[i + 1]].tolist())
        coordinates = ragged.coordinates[coordinate_offsets[i]:coordinate_offsets[i + 1]]
        values = ragged.data[ragged.offsets[i]:ragged.offsets[i + 1]]
        try:
            SparseArray(coordinates.reshape(lengths[i], len(shape)), values, shape)
        except ValueError as err:
            raise ProtocolError(f"TraceBatch.{what}[{i}]: {err}") from None


def _sparse_flags(ragged: RaggedTensors) -> np.ndarray:
    return ragged.sparse.astype(bool) if len(ragged.sparse) else np.zeros(len(ragged), dtype=bool)


def validate(batch: TraceBatch) -> None:
    """Raise ``ProtocolError`` unless every index and offset in ``batch`` is consistent."""
    num_records = len(batch.kind)
    offsets = batch.trace_offsets
    if len(offsets) == 0 or offsets[0] != 0 or offsets[-1] != num_records or (np.diff(offsets) < 0).any():
        raise ProtocolError("TraceBatch.trace_offsets do not partition its records")
    for column in ("address", "name", "distribution_type", "control"):
        if len(getattr(batch, column)) != num_records:
            raise ProtocolError(f"TraceBatch.{column} has {len(getattr(batch, column))} entries, "
                                f"expected {num_records}")
    if num_records and (batch.kind.max() > RECORD_TAG):
        raise ProtocolError(f"TraceBatch.kind holds unknown record kind {int(batch.kind.max())}")
    num_strings = len(batch.strings)
    if num_records and (batch.address.min() < 0 or batch.address.max() >= num_strings
                        or batch.name.min() < -1 or batch.name.max() >= num_strings):
        raise ProtocolError(f"TraceBatch string index outside its {num_strings} strings")
    param_counts = np.zeros(num_records, dtype=np.int64)
    sparse_kinds = False
    for i, (kind, type_id) in enumerate(zip(batch.kind.tolist(), batch.distribution_type.tolist())):
        if kind == RECORD_TAG:
            continue
        spec = BY_TYPE_ID.get(type_id)
        if spec is None:
            raise ProtocolError(f"TraceBatch record has unknown distribution type {type_id}")
        param_counts[i] = len(spec.wire_params)
        sparse_kinds = sparse_kinds or bool(spec.sparse_params)
    _check_ragged(batch.values, num_records, "values")
    param_sizes = _check_ragged(batch.params, int(param_counts.sum()), "params")
    _check_ragged(batch.results, len(offsets) - 1, "results")
    if len(batch.values.sparse) and (_sparse_flags(batch.values) & (batch.kind != RECORD_OBSERVE)).any():
        raise ProtocolError("TraceBatch.values: only observe records may have sparse values")
    if len(batch.results.sparse) and batch.results.sparse.any():
        raise ProtocolError("TraceBatch.results: model results cannot be sparse")
    if sparse_kinds or len(batch.params.sparse):
        _check_sparse_params(batch)
    _check_broadcasts(batch, param_counts, param_sizes)


def _check_sparse_params(batch: TraceBatch) -> None:
    """Sparse parameters exactly where the distribution's schema puts SparseTensor tables."""
    expected = [name in BY_TYPE_ID[type_id].sparse_params
                for kind, type_id in zip(batch.kind.tolist(), batch.distribution_type.tolist()) if kind != RECORD_TAG
                for name in BY_TYPE_ID[type_id].wire_params]
    if not np.array_equal(_sparse_flags(batch.params), np.array(expected, dtype=bool)):
        raise ProtocolError("TraceBatch.params: sparse parameters do not match their distributions' schema "
                            "(SparseNormal's mean is sparse, every other parameter dense)")


def _check_broadcasts(batch: TraceBatch, param_counts: np.ndarray, param_sizes: np.ndarray) -> None:
    """Refuse a record whose distribution parameters broadcast beyond the size cap.

    The product of a record's parameter sizes bounds its broadcast size; only
    records over the cap by that bound have their shapes broadcast exactly.
    """
    with_params = np.flatnonzero(param_counts)
    if not len(with_params):
        return
    starts = (np.cumsum(param_counts) - param_counts)[with_params]
    bounds = np.multiply.reduceat(param_sizes, starts)
    params = batch.params
    for record in with_params[bounds > limits.MAX_TENSOR_ELEMENTS].tolist():
        first = int(np.sum(param_counts[:record]))
        shapes = [tuple(params.shapes[params.shape_offsets[j]:params.shape_offsets[j + 1]])
                  for j in range(first, first + int(param_counts[record]))]
        type_id = int(batch.distribution_type[record])
        try:
            too_large = oversized_broadcast(type_id, shapes)
        except ValueError as err:
            too_large = str(err)
        if too_large:
            address = batch.strings[batch.address[record]]
            raise ProtocolError(f"TraceBatch record {record} (address {address!r}): {too_large}")


def check_finite_params(batch: TraceBatch) -> None:
    """Raise ``ProtocolError`` naming the first record whose distribution parameters hold NaN or
    infinity; ``batch`` must have passed ``validate``.

    An engine calls this on batches from a simulator. Each parameter's support is
    checked where its distribution is built (``ppx.distributions.from_wire``); the
    simulator's own pyro distribution checked it before sending, but lets infinity through.
    """
    params = batch.params
    finite = np.isfinite(params.data)
    if finite.all():
        return
    element = int(np.argmin(finite))
    tensor = int(np.searchsorted(params.offsets, element, side="right")) - 1
    first = 0
    for record, (kind, type_id) in enumerate(zip(batch.kind.tolist(), batch.distribution_type.tolist())):
        count = 0 if kind == RECORD_TAG else len(BY_TYPE_ID[type_id].wire_params)
        if tensor < first + count:
            spec = BY_TYPE_ID[type_id]
            raise ProtocolError(f"TraceBatch record {record} (address {batch.strings[batch.address[record]]!r}): "
                                f"{spec.name}.{spec.wire_params[tensor - first]} must be finite, "
                                f"but holds {float(params.data[element])!r}")
        first += count


def unpack(batch: TraceBatch) -> list[tuple[list[Record], Optional[np.ndarray]]]:
    """``(records, result)`` per trace, after validating the batch."""
    validate(batch)
    strings = batch.strings
    values = batch.values.unpack()
    params = batch.params.unpack()
    results = batch.results.unpack()
    records: list[Record] = []
    next_param = 0
    for i, (kind, address, name, type_id, control) in enumerate(zip(
            batch.kind.tolist(), batch.address.tolist(), batch.name.tolist(),
            batch.distribution_type.tolist(), batch.control.tolist())):
        distribution = None
        if kind != RECORD_TAG:
            count = len(BY_TYPE_ID[type_id].wire_params)
            distribution = WireDistribution(type_id, tuple(params[next_param:next_param + count]))
            next_param += count
        records.append(Record(kind, strings[address], strings[name] if name >= 0 else "",
                              distribution, values[i], bool(control)))
    offsets = batch.trace_offsets.tolist()
    return [
        (records[offsets[t]:offsets[t + 1]], results[t] if results[t].size or results[t].ndim != 1 else None)
        for t in range(len(offsets) - 1)
    ]


__all__ = ["Record", "check_finite_params", "pack", "unpack", "validate",
           "RECORD_SAMPLE", "RECORD_OBSERVE", "RECORD_TAG"]
