"""Template fast paths for the messages of step-by-step traces, frame for frame what ``ppx.codec`` does.

A simulator sends the same few messages again and again: the Sample at one address
with the same distribution kind and shapes, the same empty ObserveResult; only the
numbers change. Two frames of one layout differ only in the float64 data of their
tensors, so both directions work from templates:

- ``encode`` writes the first message of each layout with ``codec.encode`` and keeps
  the frame; later messages of that layout copy it and overwrite the tensor data.
  The bytes are exactly those ``codec.encode`` writes.
- ``decode`` remembers, for a frame ``codec.decode`` accepted, which of its bytes the
  decoder read as structure (offsets, vtables, strings, shapes) and which as tensor
  data. A later frame whose bytes outside the data equal the template's has the same,
  already validated, structure, so only its data is read. Every other frame goes to
  ``codec.decode``: malformed frames raise the same ``ProtocolError`` as there, and
  frames from any writer (flatc's C++ builder included) get templates the same way.

Only the per-choice messages of small frames get templates, and the caches are
bounded, so a simulator whose addresses never repeat pays for one extra pass over
each frame and nothing more.
"""

from __future__ import annotations

import struct
from typing import Any, Callable, Optional

import numpy as np

from ppx import codec
from ppx import messages as m
from ppx.sparse import SparseArray
from ppx.errors import ProtocolError
from ppx.flatbuf import Reader

MAX_TEMPLATE_BYTES = 4096
"""Frames up to this size get templates; bigger ones are dominated by their data anyway."""
MAX_TEMPLATES = 1024
"""Templates kept per direction; once full, new layouts go through ``ppx.codec`` every time."""
_MAX_PER_LENGTH = 16
_F8 = np.dtype("<f8")
_DOUBLE = struct.Struct("<d")

Tensors = tuple[np.ndarray, ...]


# ---------------------------------------------------------------- the per-choice messages


class _Layout:
    """How one message class lists its tensors, names its layout and is rebuilt with new data."""

    def __init__(self, tensors: Callable[[Any], Tensors], key: Callable[[Any, Tensors], Any],
                 rebuild: Callable[[Any, Tensors], Any]) -> None:
        self.tensors = tensors
        self.key = key
        self.rebuild = rebuild


def _f8(value: Any) -> np.ndarray:
    return np.asarray(value, dtype=_F8)


def _shapes(tensors: Tensors) -> tuple[tuple[int, ...], ...]:
    return tuple(tensor.shape for tensor in tensors)


def _sample_tensors(message: m.Sample) -> Tensors:
    return tuple(_f8(p) for p in message.distribution.params)


def _observe_tensors(message: m.Observe) -> Tensors:
    params = tuple(_f8(p) for p in message.distribution.params)
    return params if message.value is None else params + (_f8(message.value),)


def _rebuild_observe(message: m.Observe, tensors: Tensors) -> m.Observe:
    count = len(message.distribution.params)
    value = None if message.value is None else tensors[count]
    distribution = m.WireDistribution(message.distribution.type_id, tensors[:count])
    return m.Observe(message.address, message.name, distribution, value)


def _constant(message: Any, tensors: Tensors) -> Any:
    return message


_LAYOUTS: dict[type, _Layout] = {
    m.Sample: _Layout(
        _sample_tensors,
        lambda message, tensors: (m.Sample, message.address, message.name, message.distribution.type_id,
                                  message.control, _shapes(tensors)),
        lambda message, tensors: m.Sample(message.address, message.name,
                                          m.WireDistribution(message.distribution.type_id, tensors),
                                          message.control)),
    m.Observe: _Layout(
        _observe_tensors,
        lambda message, tensors: (m.Observe, message.address, message.name, message.distribution.type_id,
                                  len(message.distribution.params), message.value is None, _shapes(tensors)),
        _rebuild_observe),
    m.SampleResult: _Layout(
        lambda message: (_f8(message.result),),
        lambda message, tensors: (m.SampleResult, tensors[0].shape),
        lambda message, tensors: m.SampleResult(tensors[0])),
    m.RunResult: _Layout(
        lambda message: () if message.result is None else (_f8(message.result),),
        lambda message, tensors: (m.RunResult, _shapes(tensors)),
        lambda message, tensors: m.RunResult(tensors[0] if tensors else None)),
    m.Tag: _Layout(
        lambda message: (_f8(message.value),),
        lambda message, tensors: (m.Tag, message.address, message.name, tensors[0].shape),
        lambda message, tensors: m.Tag(message.address, message.name, tensors[0])),
    # Messages without tensors are their own layout (frozen, hashable records).
    **{cls: _Layout(lambda message: (), lambda message, tensors: message, _constant)
       for cls in (m.Run, m.ObserveResult, m.TagResult, m.Reset)},
}


# ---------------------------------------------------------------- learning a frame's layout


class _RecordingReader(Reader):
    """A ``Reader`` that notes which byte ranges the decoder read as structure and which as
    float64 tensor data."""

    __slots__ = ("structure", "data")

    def __init__(self, buf: bytes) -> None:
        super().__init__(buf)
        self.structure: list[tuple[int, int]] = []
        self.data: list[tuple[int, int]] = []

    def root(self) -> int:
        self.structure.append((0, 4))
        return super().root()

    def slots(self, table: int) -> tuple[int, ...]:
        offsets = super().slots(table)
        vtable = table - int.from_bytes(self.buf[table:table + 4], "little", signed=True)
        self.structure.append((table, table + 4))
        self.structure.append((vtable, vtable + 4 + 2 * len(offsets)))
        return offsets

    def u8(self, table: int, slots: tuple[int, ...], slot: int, default: int = 0) -> int:
        offset = slots[slot] if slot < len(slots) else 0
        if offset:
            self.structure.append((table + offset, table + offset + 1))
        return super().u8(table, slots, slot, default)

    def u32(self, table: int, slots: tuple[int, ...], slot: int, default: int = 0) -> int:
        offset = slots[slot] if slot < len(slots) else 0
        if offset:
            self.structure.append((table + offset, table + offset + 4))
        return super().u32(table, slots, slot, default)

    def offset(self, table: int, slots: tuple[int, ...], slot: int) -> Optional[int]:
        offset = slots[slot] if slot < len(slots) else 0
        if offset:
            self.structure.append((table + offset, table + offset + 4))
        return super().offset(table, slots, slot)

    def vector_at(self, start: int, itemsize: int) -> tuple[int, int]:
        # The caller may read the elements straight from the buffer (tensor shapes do).
        first, length = super().vector_at(start, itemsize)
        self.structure.append((start, first + length * itemsize))
        return first, length

    def array_at(self, start: int, dtype: np.dtype) -> np.ndarray:
        first, length = Reader.vector_at(self, start, dtype.itemsize)
        self.structure.append((start, first))
        end = first + length * dtype.itemsize
        (self.data if dtype == _F8 else self.structure).append((first, end))
        return np.frombuffer(self.buf, dtype=dtype, count=length, offset=first)


def _data_ranges(frame: bytes) -> Optional[list[tuple[int, int]]]:
    """Where ``codec.decode`` reads tensor data in ``frame``, in the order it reads the tensors;
    None unless those ranges share no byte with what it reads as structure."""
    reader = _RecordingReader(frame)
    root = reader.root()
    root_slots = reader.slots(root)
    type_id = reader.u8(root, root_slots, 0)
    cls = m.MESSAGE_TYPES[type_id - 1]
    body = reader.offset(root, root_slots, 1)
    if body is not None:
        codec._read_fields(reader, body, cls, codec._SCHEMA[cls])
    for start, end in reader.data:
        if start < end and any(start < s_end and s_start < end for s_start, s_end in reader.structure):
            return None
    return reader.data


class _Template:
    """A frame that ``codec`` accepted, with the ranges of its tensor data and its message."""

    __slots__ = ("frame", "message", "layout", "data", "shapes", "segments", "scalars", "order")

    def __init__(self, frame: bytes, message: Any, layout: _Layout, tensors: Tensors,
                 data: list[tuple[int, int]]) -> None:
        self.frame = frame
        self.message = message
        self.layout = layout
        self.data = tuple(data)
        self.shapes = _shapes(tensors)
        segments, at = [], 0
        for start, end in sorted(data):
            if start > at:
                segments.append((at, start, frame[at:start]))
            at = max(at, end)
        if at < len(frame):
            segments.append((at, len(frame), frame[at:]))
        self.segments = tuple(segments)
        """The bytes outside the data, which any frame of this layout repeats exactly."""
        self.scalars: Optional[struct.Struct] = None
        """When every tensor is a scalar: one struct reading them all, in the frame's order."""
        self.order: tuple[int, ...] = ()
        if data and all(shape == () for shape in self.shapes):
            by_position = sorted(range(len(data)), key=lambda i: data[i][0])
            starts = [data[i][0] for i in by_position]
            if all(later >= earlier + 8 for earlier, later in zip(starts, starts[1:])):
                gaps = [starts[0]] + [later - earlier - 8 for earlier, later in zip(starts, starts[1:])]
                self.scalars = struct.Struct("<" + "".join(f"{gap}xd" for gap in gaps))
                self.order = tuple(by_position.index(i) for i in range(len(data)))

    def fill(self, tensors: Tensors) -> bytes:
        """This frame with ``tensors`` (of this template's shapes) as its data."""
        buf = bytearray(self.frame)
        for (start, end), tensor in zip(self.data, tensors):
            buf[start:end] = tensor.tobytes()
        return bytes(buf)

    def fill_scalars(self, values: list[float]) -> bytes:
        """This frame with ``values`` as its data, for a template whose tensors are all scalars."""
        buf = bytearray(self.frame)
        for (start, _), value in zip(self.data, values):
            _DOUBLE.pack_into(buf, start, value)
        return bytes(buf)

    def matches(self, frame: bytes) -> bool:
        for start, end, expected in self.segments:
            if frame[start:end] != expected:
                return False
        return True

    def read(self, frame: bytes) -> Any:
        """The message in ``frame``, a frame that ``matches`` this template."""
        if self.scalars is not None:
            values = self.scalars.unpack_from(frame)
            tensors = tuple([np.array(values[i]) for i in self.order])
        elif self.data:
            tensors = tuple([_read_data(frame, start, end, shape)
                             for (start, end), shape in zip(self.data, self.shapes)])
        else:
            tensors = ()
        return self.layout.rebuild(self.message, tensors)


def _read_data(frame: bytes, start: int, end: int, shape: tuple[int, ...]) -> np.ndarray:
    if not shape:
        return np.array(_DOUBLE.unpack_from(frame, start)[0])  # a scalar: a third of frombuffer's cost
    if end == start:
        return np.zeros(shape, _F8)
    return np.frombuffer(frame, _F8, (end - start) >> 3, start).reshape(shape).copy()


def _template(frame: bytes, message: Any, layout: _Layout) -> Optional[_Template]:
    """A template for ``frame``, which ``codec`` wrote or accepted as ``message``; None when the
    frame is too big or its data cannot be told apart from its structure."""
    if len(frame) > MAX_TEMPLATE_BYTES:
        return None
    tensors = layout.tensors(message)
    try:
        data = _data_ranges(frame)
    except (ProtocolError, ValueError, TypeError, OverflowError, IndexError):
        return None  # codec accepted the frame, so this is only a safeguard
    if data is None or len(data) != len(tensors):
        return None
    for (start, end), tensor in zip(data, tensors):
        if end - start != tensor.nbytes or frame[start:end] != tensor.tobytes():
            return None
    return _Template(frame, message, layout, tensors, data)


# ---------------------------------------------------------------- the codec interface

_by_layout: dict[Any, _Template] = {}
_by_length: dict[int, list[_Template]] = {}
_decode_templates = 0


def _one_off(message: m.Message) -> bool:
    """Whether the message's layout varies from one message to the next, so that a template would
    only fill the cache: an Observe with a sparse value or parameter, and a batch Run (its seed)."""
    if isinstance(message, m.Run):
        return message.num_traces > 0 or message.seed > 0
    if not isinstance(message, m.Observe):
        return False
    return isinstance(message.value, SparseArray) or any(isinstance(p, SparseArray)
                                                         for p in message.distribution.params)


def encode(message: m.Message) -> bytes:
    """Exactly ``codec.encode(message)``, from a template when one of this layout was written before."""
    layout = _LAYOUTS.get(type(message))
    if layout is None or _one_off(message):
        return codec.encode(message)
    tensors = layout.tensors(message)
    key = layout.key(message, tensors)
    template = _by_layout.get(key)
    if template is not None:
        return template.fill(tensors)
    frame = codec.encode(message)
    if len(_by_layout) < MAX_TEMPLATES:
        template = _template(frame, message, layout)
        if template is not None:
            _by_layout[key] = template
    return frame


def decode(frame: bytes) -> m.Message:
    """Exactly ``codec.decode(frame)`` (the message, or the same ``ProtocolError``), reading only the
    tensor data when the frame repeats the structure of one decoded before."""
    candidates = _by_length.get(len(frame))
    if candidates is not None:
        for template in candidates:
            if template.matches(frame):
                return template.read(frame)
    message = codec.decode(frame)
    layout = _LAYOUTS.get(type(message))
    if layout is not None and not _one_off(message):
        _remember(frame, message, layout, candidates)
    return message


def _remember(frame: bytes, message: Any, layout: _Layout, candidates: Optional[list[_Template]]) -> None:
    global _decode_templates
    if _decode_templates >= MAX_TEMPLATES or (candidates is not None and len(candidates) >= _MAX_PER_LENGTH):
        return
    template = _template(bytes(frame), message, layout)
    if template is not None:
        _by_length.setdefault(len(frame), []).append(template)
        _decode_templates += 1


def forget() -> None:
    """Drop every template (for tests, and to bound memory by hand)."""
    global _decode_templates
    _by_layout.clear()
    _by_length.clear()
    _decode_templates = 0


class ScalarFrames:
    """Frames of messages whose tensors are all scalars, kept under keys the caller chooses.

    For a caller that can name a message's layout before building it, such as the
    simulator for each of its sites: ``frame(key, values, build)`` fills the template
    kept under ``key`` with the float ``values``, and only the first time builds
    ``build()`` and encodes it. The key must tell apart everything but the values
    (message kind, address, name, distribution kind, flags); the message must carry
    exactly ``values`` as its 0-dimensional tensors, in its tensor order.
    """

    def __init__(self) -> None:
        self._templates: dict[Any, _Template] = {}

    def frame(self, key: Any, values: list[float], build: Callable[[], m.Message]) -> bytes:
        template = self._templates.get(key)
        if template is not None:
            return template.fill_scalars(values)
        message = build()
        frame = encode(message)
        layout = _LAYOUTS.get(type(message))
        if layout is not None and len(self._templates) < MAX_TEMPLATES:
            template = _template(frame, message, layout)
            if template is not None and template.shapes == ((),) * len(values):
                self._templates[key] = template
        return frame
