"""PPX messages as plain immutable records, one class per member of the wire union.

Tensors are float64 ``numpy`` arrays, or ``ppx.sparse.SparseArray`` records
where the ``sparse-tensor`` extension allows them; distributions are
``WireDistribution`` records (a union id and its parameter arrays), so this
layer needs no torch.
The classes are listed in ``MESSAGE_TYPES`` in wire order: the union id of a
message is its position there plus one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import numpy as np

from ppx.sparse import SparseArray

PROTOCOL_VERSION = 1
"""This project's version of the PPX extensions; plain PPX peers announce 0."""

CAPABILITY_TRACE_BATCH = "trace-batch"
CAPABILITY_ERROR = "error"
CAPABILITY_STAGE = "stage"
CAPABILITY_SPARSE = "sparse-tensor"
"""Observed values and distribution parameters may travel as ``SparseTensor`` tables."""
CAPABILITY_LOCAL_CHANNEL = "local-channel"
"""After the Handshake, requests travel over a Unix socket beside the ipc endpoint (``ppx.channel``)."""


@dataclass(frozen=True, eq=False)
class WireDistribution:
    """A distribution as it travels: the PPX union id and the parameters in schema order."""

    type_id: int
    params: tuple[np.ndarray | SparseArray, ...]


def _no_entries(dtype: type) -> np.ndarray:
    return np.zeros(0, dtype=dtype)


@dataclass(frozen=True, eq=False)
class RaggedTensors:
    """Many tensors of any shapes packed into flat arrays (see ``ppx.fbs``).

    With the ``sparse-tensor`` extension some entries may be ``SparseArray``s:
    ``sparse`` flags them (empty when none is), their N values sit in ``data``,
    their dense shapes in ``shapes``, and their (N, ndim) coordinates in
    ``coordinates[coordinate_offsets[i]:coordinate_offsets[i + 1]]``.
    """

    data: np.ndarray
    offsets: np.ndarray
    shapes: np.ndarray
    shape_offsets: np.ndarray
    sparse: np.ndarray = field(default_factory=lambda: _no_entries(np.uint8))
    coordinates: np.ndarray = field(default_factory=lambda: _no_entries(np.int32))
    coordinate_offsets: np.ndarray = field(default_factory=lambda: _no_entries(np.int64))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @classmethod
    def pack(cls, tensors: Sequence[np.ndarray | SparseArray]) -> "RaggedTensors":
        if any(isinstance(t, SparseArray) for t in tensors):
            return cls._pack_with_sparse(tensors)
        sizes = np.fromiter((t.size for t in tensors), dtype=np.int64, count=len(tensors))
        ndims = np.fromiter((t.ndim for t in tensors), dtype=np.int64, count=len(tensors))
        offsets = np.zeros(len(tensors) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        shape_offsets = np.zeros(len(tensors) + 1, dtype=np.int64)
        np.cumsum(ndims, out=shape_offsets[1:])
        if tensors:
            data = np.concatenate([np.ravel(t) for t in tensors]).astype(np.float64, copy=False)
            shapes = np.fromiter((d for t in tensors for d in t.shape), dtype=np.int32,
                                 count=int(shape_offsets[-1]))
        else:
            data, shapes = np.zeros(0, np.float64), np.zeros(0, np.int32)
        return cls(data, offsets, shapes, shape_offsets)

    @classmethod
    def _pack_with_sparse(cls, tensors: Sequence[np.ndarray | SparseArray]) -> "RaggedTensors":
        tensors = [t if isinstance(t, SparseArray) else np.asarray(t, dtype=np.float64) for t in tensors]
        flags = np.fromiter((isinstance(t, SparseArray) for t in tensors), dtype=np.uint8, count=len(tensors))
        flat = [t.values if isinstance(t, SparseArray) else t.ravel() for t in tensors]
        coordinates = [t.coordinates.ravel() for t in tensors if isinstance(t, SparseArray)]

        def offsets_of(lengths: list[int]) -> np.ndarray:
            offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
            np.cumsum(lengths, out=offsets[1:])
            return offsets

        return cls(
            data=np.concatenate(flat),
            offsets=offsets_of([len(f) for f in flat]),
            shapes=np.array([d for t in tensors for d in t.shape], dtype=np.int32),
            shape_offsets=offsets_of([len(t.shape) for t in tensors]),
            sparse=flags,
            coordinates=np.concatenate(coordinates).astype(np.int32),
            coordinate_offsets=offsets_of([len(t.coordinates.ravel()) if isinstance(t, SparseArray) else 0
                                           for t in tensors]),
        )

    def unpack(self) -> list[np.ndarray | SparseArray]:
        data, offsets, shapes, shape_offsets = self.data, self.offsets, self.shapes, self.shape_offsets
        if len(self.sparse):
            return self._unpack_with_sparse()
        return [
            data[offsets[i]:offsets[i + 1]].reshape(shapes[shape_offsets[i]:shape_offsets[i + 1]])
            for i in range(len(offsets) - 1)
        ]

    def _unpack_with_sparse(self) -> list[np.ndarray | SparseArray]:
        tensors: list[np.ndarray | SparseArray] = []
        for i, flag in enumerate(self.sparse.tolist()):
            values = self.data[self.offsets[i]:self.offsets[i + 1]]
            shape = tuple(self.shapes[self.shape_offsets[i]:self.shape_offsets[i + 1]].tolist())
            if flag:
                coordinates = self.coordinates[self.coordinate_offsets[i]:self.coordinate_offsets[i + 1]]
                tensors.append(SparseArray(coordinates.reshape(len(values), len(shape)), values, shape))
            else:
                tensors.append(values.reshape(shape))
        return tensors


@dataclass(frozen=True)
class Handshake:
    system_name: str = ""
    protocol_version: int = 0
    capabilities: tuple[str, ...] = ()


@dataclass(frozen=True)
class HandshakeResult:
    system_name: str = ""
    model_name: str = ""
    protocol_version: int = 0
    capabilities: tuple[str, ...] = ()


@dataclass(frozen=True)
class Run:
    num_traces: int = 0
    """Zero for a plain engine-driven trace; positive asks for a ``TraceBatch`` of prior traces."""
    seed: int = 0
    """For a batch, nonzero seeds the simulator's generator first (uint32 on the wire)."""


@dataclass(frozen=True, eq=False)
class RunResult:
    result: Optional[np.ndarray] = None


@dataclass(frozen=True, eq=False)
class Sample:
    address: str
    name: str
    distribution: WireDistribution
    control: bool = True


@dataclass(frozen=True, eq=False)
class SampleResult:
    result: np.ndarray


@dataclass(frozen=True, eq=False)
class Observe:
    address: str
    name: str
    distribution: WireDistribution
    value: Optional[np.ndarray | SparseArray] = None
    """A ``SparseArray`` travels in the ``sparse_value`` field (extension ``sparse-tensor``)."""


@dataclass(frozen=True)
class ObserveResult:
    pass


@dataclass(frozen=True, eq=False)
class Tag:
    address: str
    name: str
    value: np.ndarray


@dataclass(frozen=True)
class TagResult:
    pass


@dataclass(frozen=True)
class Reset:
    pass


RECORD_SAMPLE, RECORD_OBSERVE, RECORD_TAG = 0, 1, 2
SITE_STAGE = 3
"""A stage call: a site kind of the simulator's handler stack, never a trace record."""


@dataclass(frozen=True, eq=False)
class TraceBatch:
    """Whole prior traces in columns; see ``ppx.batch`` for packing and unpacking."""

    strings: tuple[str, ...]
    trace_offsets: np.ndarray
    kind: np.ndarray
    address: np.ndarray
    name: np.ndarray
    distribution_type: np.ndarray
    control: np.ndarray
    values: RaggedTensors
    params: RaggedTensors
    results: RaggedTensors


@dataclass(frozen=True)
class Error:
    message: str = ""


@dataclass(frozen=True, eq=False)
class StageRequest:
    name: str
    inputs: tuple[np.ndarray, ...]


@dataclass(frozen=True, eq=False)
class StageResult:
    run_locally: bool = True
    outputs: tuple[np.ndarray, ...] = ()


@dataclass(frozen=True, eq=False)
class StageOutput:
    name: str
    outputs: tuple[np.ndarray, ...]


@dataclass(frozen=True)
class StageOutputResult:
    pass


Message = Union[
    Handshake, HandshakeResult, Run, RunResult, Sample, SampleResult, Observe,
    ObserveResult, Tag, TagResult, Reset, TraceBatch, Error, StageRequest, StageResult,
    StageOutput, StageOutputResult,
]

MESSAGE_TYPES: tuple[type, ...] = (
    Handshake, HandshakeResult, Run, RunResult, Sample, SampleResult, Observe,
    ObserveResult, Tag, TagResult, Reset, TraceBatch, Error, StageRequest, StageResult,
    StageOutput, StageOutputResult,
)
"""Members of the wire union in id order (id = index + 1)."""

PLAIN_PPX_TYPES: frozenset[type] = frozenset(MESSAGE_TYPES[:11])
