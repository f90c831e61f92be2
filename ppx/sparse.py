"""``SparseArray``: a mostly empty array kept as its nonzero entries (the ``sparse-tensor`` extension).

A 512^3 detector image with a few thousand hit voxels travels, is stored and is
embedded as those hits: (N, ndim) integer coordinates, N float64 values and the
dense shape. Entries not listed are zero. Like the rest of the message layer
this module needs only numpy; ``ppx.distributions.as_wire_value`` converts
torch sparse COO tensors.

Example:
    >>> image = SparseArray.from_dense(np.array([[0.0, 2.0], [0.0, 0.0]]))
    >>> image.coordinates.tolist(), image.values.tolist(), image.shape
    ([[0, 1]], [2.0], (2, 2))
    >>> image.to_dense().tolist()
    [[0.0, 2.0], [0.0, 0.0]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from ppx.limits import MAX_DIMENSIONS


def _as_shape(shape: Sequence[int]) -> tuple[int, ...]:
    try:
        extents = tuple(int(extent) for extent in shape)
    except (TypeError, ValueError) as err:
        raise ValueError(f"shape must be a sequence of integers, got {shape!r}") from err
    if len(extents) > MAX_DIMENSIONS:
        raise ValueError(f"shape {list(extents)} has more than {MAX_DIMENSIONS} dimensions")
    if any(extent < 0 for extent in extents):
        raise ValueError(f"shape {list(extents)} has a negative extent")
    return extents


def _as_coordinates(coordinates: Any, count: int, ndim: int) -> np.ndarray:
    array = np.asarray(coordinates)
    if array.size == 0 and count == 0:
        return np.zeros((0, ndim), dtype=np.int64)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"coordinates must be integers, got {array.dtype}")
    if array.shape != (count, ndim):
        raise ValueError(f"coordinates must have shape (N, ndim) = ({count}, {ndim}) for {count} values "
                         f"of a {ndim}-dimensional array, got {array.shape}")
    return array.astype(np.int64, copy=False)


def linear_keys(coordinates: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """One int64 per row of ``coordinates``: its row-major position in a dense array of ``shape``."""
    if not len(coordinates) or not shape:
        return np.zeros(len(coordinates), dtype=np.int64)
    strides = np.cumprod((shape[1:] + (1,))[::-1], dtype=np.int64)[::-1]
    return coordinates @ strides


@dataclass(frozen=True, eq=False)
class SparseArray:
    """The nonzero entries of a float64 array of ``shape``: ``values[n]`` sits at ``coordinates[n]``.

    Construction checks everything, so an instance read from a peer or a file is
    known to be consistent.

    Args:
        coordinates: (N, ndim) integers, each row inside ``shape``, no row twice.
        values: N numbers (stored as float64).
        shape: the dense extents.

    Raises:
        ValueError: naming what is inconsistent: N, a coordinate outside the
            shape, a repeated coordinate, a negative extent.
    """

    coordinates: np.ndarray
    values: np.ndarray
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        shape = _as_shape(self.shape)
        values = np.asarray(self.values, dtype=np.float64)
        if values.ndim != 1:
            raise ValueError(f"values must be one-dimensional (N,), got shape {values.shape}")
        coordinates = _as_coordinates(self.coordinates, len(values), len(shape))
        if len(coordinates):
            outside = ((coordinates < 0) | (coordinates >= np.asarray(shape, dtype=np.int64))).any(axis=1)
            if outside.any():
                row = int(np.flatnonzero(outside)[0])
                raise ValueError(f"coordinates {coordinates[row].tolist()} (entry {row}) lie outside the "
                                 f"shape {list(shape)}")
        if not shape and len(values) > 1:
            raise ValueError(f"a scalar (shape []) holds at most one value, got {len(values)}")
        if len(coordinates) > 1 and shape:
            if float(np.prod(shape, dtype=np.float64)) >= 2.0 ** 63:
                raise ValueError(f"shape {list(shape)} has too many elements to index")
            keys = linear_keys(coordinates, shape)
            if len(np.unique(keys)) != len(keys):
                raise ValueError(f"coordinates repeat an entry ({len(keys) - len(np.unique(keys))} duplicates)")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "coordinates", coordinates)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nnz(self) -> int:
        """The number of entries stored (N)."""
        return len(self.values)

    @property
    def size(self) -> int:
        """The number of elements of the dense array."""
        return int(np.prod(self.shape, dtype=np.int64))

    def keys(self) -> np.ndarray:
        """The row-major dense position of each entry (int64)."""
        return linear_keys(self.coordinates, self.shape)

    def to_dense(self) -> np.ndarray:
        """The dense float64 array, zero where no entry is stored."""
        dense = np.zeros(self.shape, dtype=np.float64)
        dense[tuple(self.coordinates.T)] = self.values
        return dense

    @classmethod
    def from_dense(cls, array: Any) -> "SparseArray":
        """The nonzero elements of ``array`` in row-major order."""
        dense = np.asarray(array, dtype=np.float64)
        coordinates = np.argwhere(dense != 0)
        return cls(coordinates, dense[tuple(coordinates.T)], dense.shape)

    def __repr__(self) -> str:
        return f"SparseArray(nnz={self.nnz}, shape={list(self.shape)})"


def as_sparse_array(value: Any) -> Optional[SparseArray]:
    """``value`` as a ``SparseArray`` when it is sparse (a ``SparseArray`` or a torch sparse COO
    tensor), else None. Duplicate entries of a torch tensor are summed, as torch does."""
    if isinstance(value, SparseArray):
        return value
    if getattr(value, "is_sparse", False) is True:  # torch.sparse_coo, recognised without importing torch
        coalesced = value.detach().cpu().coalesce()
        return SparseArray(coalesced.indices().T.numpy(), coalesced.values().double().numpy(),
                           tuple(coalesced.shape))
    return None


def is_sparse(value: Any) -> bool:
    """Whether ``value`` is a ``SparseArray`` or a torch sparse COO tensor."""
    return isinstance(value, SparseArray) or getattr(value, "is_sparse", False) is True


def value_shape(value: Any) -> tuple[int, ...]:
    """The dense shape of a value: a ``SparseArray``, a torch sparse tensor or anything numpy takes."""
    return tuple(value.shape) if is_sparse(value) else tuple(np.shape(value))


def densified(value: Any) -> Any:
    """``value`` with a ``SparseArray`` replaced by its dense array (anything else unchanged)."""
    return value.to_dense() if isinstance(value, SparseArray) else value


__all__ = ["SparseArray", "as_sparse_array", "densified", "is_sparse", "linear_keys", "value_shape"]
