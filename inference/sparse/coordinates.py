"""The active sites of a batch of sparse 3D images, and the kernel maps computed for them.

A ``CoordinateSet`` is shared by every ``SparseTensor`` whose features live on
the same sites: a submanifold convolution returns a tensor on its input's set,
so a stack of them builds each kernel map once and finds it in ``cache`` after.
"""

from __future__ import annotations

from typing import Any, Hashable, Sequence

import torch


def as_shape(spatial_shape: Sequence[int]) -> tuple[int, int, int]:
    """``spatial_shape`` as a tuple of three positive ints, or a ValueError naming it."""
    shape = tuple(int(extent) for extent in spatial_shape)
    if len(shape) != 3 or any(extent <= 0 for extent in shape):
        raise ValueError(f"expected a spatial shape of three positive extents, got {tuple(spatial_shape)}")
    return shape


def linearise(coordinates: torch.Tensor, spatial_shape: tuple[int, int, int]) -> torch.Tensor:
    """One int64 key per row of (batch, i, j, k) coordinates, ordered like the rows of a dense tensor."""
    depth, height, width = spatial_shape
    batch, i, j, k = coordinates.unbind(1)
    return ((batch * depth + i) * height + j) * width + k


def delinearise(keys: torch.Tensor, spatial_shape: tuple[int, int, int]) -> torch.Tensor:
    """The (N, 4) coordinates whose ``linearise`` keys are ``keys``."""
    depth, height, width = spatial_shape
    k = keys % width
    rest = keys // width
    j = rest % height
    rest = rest // height
    i = rest % depth
    return torch.stack((rest // depth, i, j, k), dim=1)


class CoordinateSet:
    """Active sites: (N, 4) int64 rows of (batch index, i, j, k) inside ``spatial_shape``.

    Args:
        coordinates: (N, 4) integer tensor with distinct rows.
        spatial_shape: the extents (D, H, W) of the dense images.
        batch_size: the number of images; by default one more than the largest
            batch index (images with no active site at the end need it given).
        validate: check that coordinates lie inside the shape and batch and
            that no site repeats.

    Raises:
        ValueError: for coordinates of the wrong shape, outside the images, or repeated.
    """

    def __init__(self, coordinates: torch.Tensor, spatial_shape: Sequence[int],
                 batch_size: int | None = None, *, validate: bool = True) -> None:
        self.spatial_shape = as_shape(spatial_shape)
        if coordinates.dim() != 2 or coordinates.shape[1] != 4:
            raise ValueError(f"expected coordinates of shape (N, 4) holding (batch, i, j, k), "
                             f"got {tuple(coordinates.shape)}")
        if coordinates.dtype.is_floating_point or coordinates.dtype == torch.bool:
            raise ValueError(f"expected integer coordinates, got {coordinates.dtype}")
        self.coordinates = coordinates.long()
        if batch_size is None:
            batch_size = int(self.coordinates[:, 0].max()) + 1 if len(self.coordinates) else 0
        self.batch_size = int(batch_size)
        self.cache: dict[Hashable, Any] = {}
        """Kernel maps and the coordinate sets they lead to, keyed by how they were built."""
        self._keys: torch.Tensor | None = None
        self._sorted: tuple[torch.Tensor, torch.Tensor] | None = None
        if validate:
            self._check_bounds()
            self.sorted_keys()

    @classmethod
    def from_sorted_keys(cls, keys: torch.Tensor, spatial_shape: tuple[int, int, int],
                         batch_size: int) -> "CoordinateSet":
        """The sites with strictly increasing linearised ``keys``, in that order."""
        sites = cls(delinearise(keys, spatial_shape), spatial_shape, batch_size, validate=False)
        sites._keys = keys
        sites._sorted = keys, torch.arange(len(keys), device=keys.device)
        return sites

    def _check_bounds(self) -> None:
        if len(self.coordinates) == 0:
            return
        low = self.coordinates.min(0).values.tolist()
        high = self.coordinates.max(0).values.tolist()
        limits = (self.batch_size, *self.spatial_shape)
        for axis, name in enumerate(("batch index", "i", "j", "k")):
            if low[axis] < 0 or high[axis] >= limits[axis]:
                raise ValueError(f"coordinate column {axis} ({name}) spans [{low[axis]}, {high[axis]}], "
                                 f"outside [0, {limits[axis]}) for batch size {self.batch_size} "
                                 f"and spatial shape {self.spatial_shape}")

    def __len__(self) -> int:
        return len(self.coordinates)

    @property
    def device(self) -> torch.device:
        return self.coordinates.device

    @property
    def keys(self) -> torch.Tensor:
        """The (N,) linearised coordinates (see ``linearise``)."""
        if self._keys is None:
            self._keys = linearise(self.coordinates, self.spatial_shape)
        return self._keys

    def sorted_keys(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys in increasing order and the rows they came from (computed once).

        Raises:
            ValueError: if two rows hold the same coordinates.
        """
        if self._sorted is None:
            keys, order = torch.sort(self.keys)
            if len(keys) > 1 and bool((keys[1:] == keys[:-1]).any()):
                raise ValueError("coordinates hold repeated sites; sum or drop duplicates before "
                                 "building a sparse tensor")
            self._sorted = keys, order
        return self._sorted
