"""The few FlatBuffers primitives PPX needs: a front-to-back writer and a bounds-checked reader.

The writer lays out each table before its children, so every offset points
forward as the format requires, and writes numeric vectors straight from numpy
buffers. The reader trusts nothing: every offset, length and vtable entry is
checked against the buffer, and any violation raises ``ProtocolError``. Both
sit on the hot path of every round trip, hence the inlined bounds checks.
"""

from __future__ import annotations

import struct
from typing import Any, Callable, Optional

import numpy as np

from ppx.errors import ProtocolError

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_ZEROS = bytes(64)
_VTABLE_FORMATS = [struct.Struct(f"<{n}H") for n in range(2, 40)]

Child = tuple[int, Callable[["Writer", Any], int], Any]


class Writer:
    """Builds one FlatBuffers buffer; call ``finish(root_table_position)`` last."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray(4)  # root offset, patched by finish()

    def finish(self, root: int) -> bytes:
        _U32.pack_into(self.buf, 0, root)
        return bytes(self.buf)

    def table(
        self,
        children: tuple[Child, ...] | list[Child] = (),
        words: tuple[tuple[int, int], ...] | list[tuple[int, int]] = (),
        octets: tuple[tuple[int, int], ...] | list[tuple[int, int]] = (),
    ) -> int:
        """Write a table and then its children; return the table's position.

        ``children`` are ``(slot, write, value)``: ``write(self, value)`` writes the
        child and returns its position. ``words`` and ``octets`` are ``(slot, value)``
        for 4-byte unsigned and 1-byte scalars.
        """
        buf = self.buf
        num_slots = 0
        for group in (children, words, octets):
            for item in group:
                if item[0] >= num_slots:
                    num_slots = item[0] + 1
        field_offsets = [0] * num_slots
        size = 4
        for item in children:
            field_offsets[item[0]] = size
            size += 4
        for slot, _ in words:
            field_offsets[slot] = size
            size += 4
        for slot, _ in octets:
            field_offsets[slot] = size
            size += 1
        if len(buf) & 1:
            buf.append(0)
        vtable = len(buf)
        buf += _VTABLE_FORMATS[num_slots].pack(4 + 2 * num_slots, size, *field_offsets)
        pad = -len(buf) & 3
        if pad:
            buf += _ZEROS[:pad]
        table = len(buf)
        buf += _I32.pack(table - vtable)
        buf += _ZEROS[:size - 4] if size <= 68 else bytes(size - 4)
        for slot, value in words:
            _U32.pack_into(buf, table + field_offsets[slot], value)
        for slot, value in octets:
            buf[table + field_offsets[slot]] = value
        for slot, write, value in children:
            at = table + field_offsets[slot]
            _U32.pack_into(buf, at, write(self, value) - at)
        return table

    def vector(self, array: np.ndarray) -> int:
        """A vector of little-endian scalars taken from ``array`` (already of the wire dtype)."""
        buf = self.buf
        alignment = 8 if array.itemsize == 8 else 4
        pad = -(len(buf) + 4) % alignment
        if pad:
            buf += _ZEROS[:pad]
        at = len(buf)
        buf += _U32.pack(array.size)
        buf += array.tobytes()
        return at

    def raw_vector(self, raw: bytes, count: int, itemsize: int) -> int:
        """A vector of ``count`` little-endian scalars already packed into ``raw``."""
        buf = self.buf
        pad = -(len(buf) + 4) % (8 if itemsize == 8 else 4)
        if pad:
            buf += _ZEROS[:pad]
        at = len(buf)
        buf += _U32.pack(count)
        buf += raw
        return at

    def string(self, text: str) -> int:
        buf = self.buf
        encoded = text.encode()
        pad = -len(buf) & 3
        if pad:
            buf += _ZEROS[:pad]
        at = len(buf)
        buf += _U32.pack(len(encoded))
        buf += encoded
        buf.append(0)
        return at

    def tables(self, items: tuple[Any, ...], write: Callable[["Writer", Any], int]) -> int:
        """A vector of tables, each written by ``write(self, item)`` after the vector."""
        buf = self.buf
        pad = -len(buf) & 3
        if pad:
            buf += _ZEROS[:pad]
        at = len(buf)
        buf += _U32.pack(len(items))
        buf += bytes(4 * len(items))
        for i, item in enumerate(items):
            slot = at + 4 + 4 * i
            _U32.pack_into(self.buf, slot, write(self, item) - slot)
        return at

    def strings(self, texts: tuple[str, ...]) -> int:
        buf = self.buf
        pad = -len(buf) & 3
        if pad:
            buf += _ZEROS[:pad]
        at = len(buf)
        buf += _U32.pack(len(texts))
        buf += bytes(4 * len(texts))
        for i, text in enumerate(texts):
            slot = at + 4 + 4 * i
            _U32.pack_into(buf, slot, self.string(text) - slot)
        return at


def _corrupt(what: str, at: int, length: int, size: int) -> ProtocolError:
    return ProtocolError(
        f"truncated or corrupt message: {what} at byte {at} (+{length}) lies outside the {size}-byte frame"
    )


class Reader:
    """Reads fields out of an untrusted FlatBuffers buffer, checking every bound.

    ``slots(table)`` parses a table's vtable once; the field readers take the
    table position and that tuple of field offsets.
    """

    __slots__ = ("buf", "size")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.size = len(buf)

    def root(self) -> int:
        if self.size < 8:
            raise ProtocolError(f"truncated message: a {self.size}-byte frame cannot hold a PPX Message")
        return _U32.unpack_from(self.buf, 0)[0]

    def slots(self, table: int) -> tuple[int, ...]:
        """Offsets of the table's fields within it (0 for an absent field), from its vtable."""
        size = self.size
        if table < 0 or table + 4 > size:
            raise _corrupt("table", table, 4, size)
        vtable = table - _I32.unpack_from(self.buf, table)[0]
        if vtable < 0 or vtable + 4 > size:
            raise _corrupt("vtable", vtable, 4, size)
        vtable_size, table_size = struct.unpack_from("<HH", self.buf, vtable)
        num_slots = (vtable_size - 4) // 2
        if vtable_size < 4 or vtable + vtable_size > size or num_slots >= len(_VTABLE_FORMATS):
            raise _corrupt("vtable", vtable, vtable_size, size)
        offsets = struct.unpack_from(f"<{num_slots}H", self.buf, vtable + 4) if num_slots else ()
        if table + table_size > size or any(offset >= table_size for offset in offsets):
            raise _corrupt("table fields", table, table_size, size)
        return offsets

    def u8(self, table: int, slots: tuple[int, ...], slot: int, default: int = 0) -> int:
        offset = slots[slot] if slot < len(slots) else 0
        return self.buf[table + offset] if offset else default

    def u32(self, table: int, slots: tuple[int, ...], slot: int, default: int = 0) -> int:
        offset = slots[slot] if slot < len(slots) else 0
        if not offset:
            return default
        at = table + offset
        if at + 4 > self.size:
            raise _corrupt("field", at, 4, self.size)
        return _U32.unpack_from(self.buf, at)[0]

    def offset(self, table: int, slots: tuple[int, ...], slot: int) -> Optional[int]:
        """Where an offset field points (a table, vector or string), or None when absent."""
        offset = slots[slot] if slot < len(slots) else 0
        if not offset:
            return None
        at = table + offset
        if at + 4 > self.size:
            raise _corrupt("offset field", at, 4, self.size)
        return at + _U32.unpack_from(self.buf, at)[0]

    def vector_at(self, start: int, itemsize: int) -> tuple[int, int]:
        """``(first element position, length)`` of the vector at ``start``, bounds checked."""
        size = self.size
        if start + 4 > size:
            raise _corrupt("vector length", start, 4, size)
        length = _U32.unpack_from(self.buf, start)[0]
        if start + 4 + length * itemsize > size:
            raise _corrupt("vector", start + 4, length * itemsize, size)
        return start + 4, length

    def string_at(self, start: int) -> str:
        first, length = self.vector_at(start, 1)
        try:
            return self.buf[first:first + length].decode()
        except UnicodeDecodeError as err:
            raise ProtocolError(f"string field is not valid UTF-8: {err}") from None

    def array_at(self, start: int, dtype: np.dtype) -> np.ndarray:
        first, length = self.vector_at(start, dtype.itemsize)
        return np.frombuffer(self.buf, dtype=dtype, count=length, offset=first)

    def tables_at(self, start: int) -> list[int]:
        """Positions of the tables a vector of tables points to."""
        first, length = self.vector_at(start, 4)
        buf = self.buf
        return [first + 4 * i + _U32.unpack_from(buf, first + 4 * i)[0] for i in range(length)]

    def strings_at(self, start: int) -> tuple[str, ...]:
        first, length = self.vector_at(start, 4)
        buf = self.buf
        return tuple(self.string_at(first + 4 * i + _U32.unpack_from(buf, first + 4 * i)[0])
                     for i in range(length))
