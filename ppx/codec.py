"""Encode PPX messages to FlatBuffers frames and decode them back, driven by one field table.

``encode(message) -> bytes`` and ``decode(frame) -> message`` are pure functions,
testable without sockets. Each message class has one row in ``_SCHEMA`` listing
its fields with their FlatBuffers slots; the same row serves both directions.
Decoding never trusts the frame: anything malformed raises ``ProtocolError``.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from ppx import limits
from ppx import messages as m
from ppx.distributions import BY_TYPE_ID, oversized_broadcast
from ppx.errors import ProtocolError
from ppx.flatbuf import Reader, Writer
from ppx.sparse import SparseArray

_F8, _I4, _I8, _U1 = (np.dtype(code) for code in ("<f8", "<i4", "<i8", "u1"))
_EMPTY = np.zeros(0, dtype=_F8)

Fields = tuple[list, list, list]  # children, words, octets collected for Writer.table


def _write_tensor(writer: Writer, array: np.ndarray) -> int:
    data = np.asarray(array, dtype=_F8)
    shape = data.shape
    return writer.table(children=(
        (0, _write_tensor_data, data),
        (1, _write_tensor_shape, shape),
    ))


def _write_tensor_data(writer: Writer, data: np.ndarray) -> int:
    return writer.raw_vector(data.tobytes(), data.size, 8)


def _write_tensor_shape(writer: Writer, shape: tuple[int, ...]) -> int:
    return writer.raw_vector(struct.pack(f"<{len(shape)}i", *shape), len(shape), 4)


def _read_tensor(reader: Reader, table: int, what: str) -> np.ndarray:
    try:
        slots = reader.slots(table)
        data_at = reader.offset(table, slots, 0)
        shape_at = reader.offset(table, slots, 1)
        data = _EMPTY if data_at is None else reader.array_at(data_at, _F8)
        if shape_at is not None:
            first, ndim = reader.vector_at(shape_at, 4)
    except ProtocolError as err:
        raise ProtocolError(f"{what}: {err}") from None
    if shape_at is None:
        if data.size > limits.MAX_TENSOR_ELEMENTS:
            raise ProtocolError(limits.tensor_too_large(what, [data.size], data.size))
        return data.copy()
    if ndim > limits.MAX_DIMENSIONS:
        raise ProtocolError(f"{what}: tensor shape has {ndim} dimensions, more than the limit of "
                            f"{limits.MAX_DIMENSIONS}")
    shape = struct.unpack_from(f"<{ndim}i", reader.buf, first)
    count = nominal = 1  # nominal skips zero extents: shape [0, 2**31 - 1] is absurd, not empty
    for extent in shape:
        if extent < 0:
            raise ProtocolError(f"{what}: tensor shape {list(shape)} has a negative dimension")
        count *= extent
        nominal *= extent or 1
    if nominal > limits.MAX_TENSOR_ELEMENTS:
        raise ProtocolError(limits.tensor_too_large(what, list(shape), nominal))
    if count != data.size:
        raise ProtocolError(
            f"{what}: tensor shape {list(shape)} holds {count} elements but its data has {data.size}"
        )
    return data.reshape(shape).copy()


def _write_sparse(writer: Writer, array: SparseArray) -> int:
    """A SparseTensor table (extension ``sparse-tensor``): int32 coordinates, float64 values, shape."""
    coordinates = np.ascontiguousarray(array.coordinates.ravel(), dtype=_I4)
    return writer.table(children=(
        (0, Writer.vector, coordinates),
        (1, _write_tensor_data, array.values),
        (2, _write_tensor_shape, array.shape),
    ))


def _read_sparse(reader: Reader, table: int, what: str) -> SparseArray:
    """A SparseTensor table, checked: N values, N * ndim coordinates, each inside the shape, none repeated."""
    slots = reader.slots(table)
    coordinates_at, values_at, shape_at = (reader.offset(table, slots, slot) for slot in range(3))
    coordinates = np.zeros(0, _I4) if coordinates_at is None else reader.array_at(coordinates_at, _I4)
    values = _EMPTY if values_at is None else reader.array_at(values_at, _F8)
    shape = () if shape_at is None else tuple(reader.array_at(shape_at, _I4).tolist())
    if len(shape) > limits.MAX_DIMENSIONS:
        raise ProtocolError(f"{what}: sparse tensor shape has {len(shape)} dimensions, more than the limit of "
                            f"{limits.MAX_DIMENSIONS}")
    nominal = math.prod(max(extent, 1) for extent in shape)  # what densifying it would allocate
    if nominal > limits.MAX_TENSOR_ELEMENTS:
        raise ProtocolError(limits.tensor_too_large(what, list(shape), nominal))
    if coordinates.size != values.size * len(shape):
        raise ProtocolError(f"{what}: sparse tensor of shape {list(shape)} has {values.size} values, which "
                            f"need {values.size * len(shape)} coordinates, but it has {coordinates.size}")
    try:
        return SparseArray(coordinates.reshape(values.size, len(shape)), values.copy(), shape)
    except ValueError as err:
        raise ProtocolError(f"{what}: {err}") from None


class _Field:
    """One message attribute at one FlatBuffers slot."""

    def __init__(self, attribute: str, slot: int) -> None:
        self.attribute = attribute
        self.slot = slot

    def add(self, value: Any, fields: Fields) -> None:
        raise NotImplementedError

    def read(self, reader: Reader, table: int, slots: tuple[int, ...], message_name: str) -> Any:
        raise NotImplementedError


class _String(_Field):
    def add(self, value: str, fields: Fields) -> None:
        if value:
            fields[0].append((self.slot, Writer.string, value))

    def read(self, reader: Reader, table: int, slots: tuple[int, ...], message_name: str) -> str:
        at = reader.offset(table, slots, self.slot)
        return "" if at is None else reader.string_at(at)


class _Strings(_Field):
    def add(self, value: tuple[str, ...], fields: Fields) -> None:
        if value:
            fields[0].append((self.slot, Writer.strings, tuple(value)))

    def read(self, reader: Reader, table: int, slots: tuple[int, ...], message_name: str) -> tuple[str, ...]:
        at = reader.offset(table, slots, self.slot)
        return () if at is None else reader.strings_at(at)


class _Scalar(_Field):
    """A 1- or 4-byte unsigned (or bool) scalar, omitted when it equals its default."""

    def __init__(self, attribute: str, slot: int, width: int, default: int) -> None:
        super().__init__(attribute, slot)
        self.width = width
        self.default = default

    def add(self, value: int, fields: Fields) -> None:
        value = int(value)
        if value != self.default:
            fields[2 if self.width == 1 else 1].append((self.slot, value))

    def read(self, reader: Reader, table: int, slots: tuple[int, ...], message_name: str) -> Any:
        if self.width == 1:
            value = reader.u8(table, slots, self.slot, self.default)
        else:
            value = reader.u32(table, slots, self.slot, self.default)
        return bool(value) if isinstance(self.default, bool) else value


class _Tensor(_Field):
    def __init__(self, attribute: str, slot: int, required: bool) -> None:
        super().__init__(attribute, slot)
        self.required = required

    def add(self, value: np.ndarray | None, fields: Fields) -> None:
        if value is not None:
            fields[0].append((self.slot, _write_tensor, value))

    def read(self, reader: Reader, table: int, slots: tuple[int, ...], message_name: str) -> np.ndarray | None:
        child = reader.offset(table, slots, self.slot)
        if child is None:
            if self.required:
                raise ProtocolError(f"{message_name}.{self.attribute} is missing")
            return None
        return _read_tensor(reader, child, f"{message_name}.{self.attribute}")


class _MaybeSparseTensor(_Tensor):
    """An optional Tensor at ``slot`` or, extension ``sparse-tensor``, a SparseTensor at ``sparse_slot``."""

    def __init__(self, attribute: str, slot: int, sparse_slot: int) -> None:
        super().__init__(attribute, slot, required=False)
        self.sparse_slot = sparse_slot

    def add(self, value: np.ndarray | SparseArray | None, fields: Fields) -> None:
        if isinstance(value, SparseArray):
            fields[0].append((self.sparse_slot, _write_sparse, value))
        else:
            super().add(value, fields)

    def read(self, reader: Reader, table: int, slots: tuple[int, ...],
             message_name: str) -> np.ndarray | SparseArray | None:
        sparse = reader.offset(table, slots, self.sparse_slot)
        if sparse is None:
            return super().read(reader, table, slots, message_name)
        if reader.offset(table, slots, self.slot) is not None:
            raise ProtocolError(f"{message_name}.{self.attribute} is sent both dense and sparse")
        return _read_sparse(reader, sparse, f"{message_name}.{self.attribute}")


_SPARSE_SLOTS: dict[int, frozenset[int]] = {
    kind.type_id: frozenset(kind.wire_params.index(name) for name in kind.sparse_params)
    for kind in BY_TYPE_ID.values() if kind.sparse_params
}
"""Parameter slots that hold SparseTensor tables, by distribution union id (extension kinds)."""


def _write_distribution(writer: Writer, distribution: m.WireDistribution) -> int:
    params = distribution.params
    sparse_slots = _SPARSE_SLOTS.get(distribution.type_id, frozenset())
    if not sparse_slots and not any(isinstance(p, SparseArray) for p in params):
        return writer.table(children=tuple((slot, _write_tensor, p) for slot, p in enumerate(params)))
    # Each parameter in the table type the schema gives its slot, whatever form it came in.
    children = tuple(
        (slot, _write_sparse, p if isinstance(p, SparseArray) else SparseArray.from_dense(p)) if slot in sparse_slots
        else (slot, _write_tensor, p.to_dense() if isinstance(p, SparseArray) else p)
        for slot, p in enumerate(params))
    return writer.table(children=children)


class _Distribution(_Field):
    """The Distribution union: its type id at ``slot``, its table at ``slot + 1``."""

    def add(self, value: m.WireDistribution, fields: Fields) -> None:
        fields[2].append((self.slot, value.type_id))
        fields[0].append((self.slot + 1, _write_distribution, value))

    def read(self, reader: Reader, table: int, slots: tuple[int, ...], message_name: str) -> m.WireDistribution:
        type_id = reader.u8(table, slots, self.slot)
        kind = BY_TYPE_ID.get(type_id)
        if kind is None:
            raise ProtocolError(f"{message_name}.distribution has unknown type id {type_id}")
        child = reader.offset(table, slots, self.slot + 1)
        if child is None:
            raise ProtocolError(f"{message_name}.distribution ({kind.name}) has no parameter table")
        child_slots = reader.slots(child)
        params = []
        for slot, name in enumerate(kind.wire_params):
            tensor = reader.offset(child, child_slots, slot)
            what = f"{message_name}.distribution {kind.name}.{name}"
            if tensor is None:
                raise ProtocolError(f"{what} is missing")
            read = _read_sparse if name in kind.sparse_params else _read_tensor
            params.append(read(reader, tensor, what))
        if len(params) > 1:
            try:
                too_large = oversized_broadcast(type_id, [p.shape for p in params])
            except ValueError as err:  # only asked when the sizes are suspect: absurd shapes that do not broadcast
                raise ProtocolError(f"{message_name}.distribution: {err}") from None
            if too_large:
                raise ProtocolError(f"{message_name}.distribution: {too_large}")
        return m.WireDistribution(type_id, tuple(params))


class _Tensors(_Field):
    """A vector of Tensor tables (stage inputs and outputs)."""

    def add(self, value: tuple[np.ndarray, ...], fields: Fields) -> None:
        if value:
            fields[0].append((self.slot, _write_tensors, tuple(value)))

    def read(self, reader: Reader, table: int, slots: tuple[int, ...], message_name: str) -> tuple[np.ndarray, ...]:
        at = reader.offset(table, slots, self.slot)
        if at is None:
            return ()
        what = f"{message_name}.{self.attribute}"
        return tuple(_read_tensor(reader, tensor, f"{what}[{i}]") for i, tensor in enumerate(reader.tables_at(at)))


def _write_tensors(writer: Writer, tensors: tuple[np.ndarray, ...]) -> int:
    return writer.tables(tensors, _write_tensor)


class _Vector(_Field):
    """A column of numeric values (TraceBatch), read as a numpy view."""

    def __init__(self, attribute: str, slot: int, dtype: np.dtype) -> None:
        super().__init__(attribute, slot)
        self.dtype = dtype

    def add(self, value: np.ndarray, fields: Fields) -> None:
        fields[0].append((self.slot, Writer.vector, np.ascontiguousarray(value, dtype=self.dtype)))

    def read(self, reader: Reader, table: int, slots: tuple[int, ...], message_name: str) -> np.ndarray:
        at = reader.offset(table, slots, self.slot)
        return np.zeros(0, self.dtype) if at is None else reader.array_at(at, self.dtype).copy()


class _OptionalVector(_Vector):
    """A column written only when it has entries (extension columns absent in plain batches)."""

    def add(self, value: np.ndarray, fields: Fields) -> None:
        if len(value):
            super().add(value, fields)


class _Table(_Field):
    """A nested table with its own field list (RaggedTensors)."""

    def __init__(self, attribute: str, slot: int, cls: type, fields: tuple[_Field, ...]) -> None:
        super().__init__(attribute, slot)
        self.cls = cls
        self.fields = fields

    def add(self, value: Any, fields: Fields) -> None:
        fields[0].append((self.slot, self._write, value))

    def _write(self, writer: Writer, value: Any) -> int:
        return _write_fields(writer, self.fields, value)

    def read(self, reader: Reader, table: int, slots: tuple[int, ...], message_name: str) -> Any:
        child = reader.offset(table, slots, self.slot)
        if child is None:
            raise ProtocolError(f"{message_name}.{self.attribute} is missing")
        return _read_fields(reader, child, self.cls, self.fields)


_RAGGED = (
    _Vector("data", 0, _F8), _Vector("offsets", 1, _I8),
    _Vector("shapes", 2, _I4), _Vector("shape_offsets", 3, _I8),
    _OptionalVector("sparse", 4, _U1), _OptionalVector("coordinates", 5, _I4),
    _OptionalVector("coordinate_offsets", 6, _I8),
)

_SCHEMA: dict[type, tuple[_Field, ...]] = {
    m.Handshake: (
        _String("system_name", 0), _Scalar("protocol_version", 1, 4, 0), _Strings("capabilities", 2),
    ),
    m.HandshakeResult: (
        _String("system_name", 0), _String("model_name", 1),
        _Scalar("protocol_version", 2, 4, 0), _Strings("capabilities", 3),
    ),
    m.Run: (_Scalar("num_traces", 0, 4, 0), _Scalar("seed", 1, 4, 0)),
    m.RunResult: (_Tensor("result", 0, required=False),),
    m.Sample: (
        _String("address", 0), _String("name", 1), _Distribution("distribution", 2),
        _Scalar("control", 4, 1, True),
    ),
    m.SampleResult: (_Tensor("result", 0, required=True),),
    m.Observe: (
        _String("address", 0), _String("name", 1), _Distribution("distribution", 2),
        _MaybeSparseTensor("value", 4, sparse_slot=5),
    ),
    m.ObserveResult: (),
    m.Tag: (_String("address", 0), _String("name", 1), _Tensor("value", 2, required=True)),
    m.TagResult: (),
    m.Reset: (),
    m.TraceBatch: (
        _Strings("strings", 0), _Vector("trace_offsets", 1, _I8), _Vector("kind", 2, _U1),
        _Vector("address", 3, _I4), _Vector("name", 4, _I4), _Vector("distribution_type", 5, _U1),
        _Vector("control", 6, _U1),
        _Table("values", 7, m.RaggedTensors, _RAGGED), _Table("params", 8, m.RaggedTensors, _RAGGED),
        _Table("results", 9, m.RaggedTensors, _RAGGED),
    ),
    m.Error: (_String("message", 0),),
    m.StageRequest: (_String("name", 0), _Tensors("inputs", 1)),
    m.StageResult: (_Scalar("run_locally", 0, 1, True), _Tensors("outputs", 1)),
    m.StageOutput: (_String("name", 0), _Tensors("outputs", 1)),
    m.StageOutputResult: (),
}

_TYPE_ID: dict[type, int] = {cls: i + 1 for i, cls in enumerate(m.MESSAGE_TYPES)}


def _write_fields(writer: Writer, fields: tuple[_Field, ...], value: Any) -> int:
    collected: Fields = ([], [], [])
    for field in fields:
        field.add(getattr(value, field.attribute), collected)
    return writer.table(tuple(collected[0]), tuple(collected[1]), tuple(collected[2]))


def _read_fields(reader: Reader, table: int, cls: type, fields: tuple[_Field, ...]) -> Any:
    name = cls.__name__
    slots = reader.slots(table)
    return cls(**{field.attribute: field.read(reader, table, slots, name) for field in fields})


def _write_body(writer: Writer, message: m.Message) -> int:
    return _write_fields(writer, _SCHEMA[type(message)], message)


def encode(message: m.Message) -> bytes:
    """One FlatBuffers frame holding ``message`` as the body of a PPX ``Message``."""
    type_id = _TYPE_ID.get(type(message))
    if type_id is None:
        raise TypeError(f"expected a PPX message, got {type(message).__name__}")
    writer = Writer()
    root = writer.table(children=((1, _write_body, message),), octets=((0, type_id),))
    return writer.finish(root)


def decode(frame: bytes) -> m.Message:
    """The message in ``frame``; raises ``ProtocolError`` naming what is malformed."""
    reader = Reader(frame)
    root = reader.root()
    root_slots = reader.slots(root)
    type_id = reader.u8(root, root_slots, 0)
    if not 1 <= type_id <= len(m.MESSAGE_TYPES):
        raise ProtocolError(f"unknown message type id {type_id}")
    cls = m.MESSAGE_TYPES[type_id - 1]
    fields = _SCHEMA[cls]
    body = reader.offset(root, root_slots, 1)
    if body is None:
        if fields:
            raise ProtocolError(f"{cls.__name__} message has no body table")
        return cls()
    try:
        return _read_fields(reader, body, cls, fields)
    except ProtocolError:
        raise
    except (ValueError, TypeError, OverflowError, MemoryError) as err:
        raise ProtocolError(f"malformed {cls.__name__}: {err}") from err


def message_name(type_id_or_message: Any) -> str:
    """A readable name for logging and errors."""
    if isinstance(type_id_or_message, int):
        if 1 <= type_id_or_message <= len(m.MESSAGE_TYPES):
            return m.MESSAGE_TYPES[type_id_or_message - 1].__name__
        return f"unknown({type_id_or_message})"
    return type(type_id_or_message).__name__

