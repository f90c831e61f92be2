"""Calorimeter geometry as the surrogate sees it: layers of cells flattened into one shower vector.

The default is the CaloGAN layout: three longitudinal layers of 3x96, 12x12 and
12x6 cells (504 in all) that each cover the same transverse area. Cell positions
are given in that common frame, so widths and centroids compare across layers.
Shapes are (rows, columns); columns run along the finer direction of the first
layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

CALOGAN_LAYER_SHAPES: tuple[tuple[int, int], ...] = ((3, 96), (12, 12), (12, 6))
CALOGAN_EXTENT_MM: tuple[float, float] = (480.0, 480.0)


@dataclass(frozen=True)
class Geometry:
    """Layer shapes and the transverse extent (rows, columns) every layer covers, in mm.

    Args:
        layer_shapes: (rows, columns) of each layer, front to back.
        extent_mm: the size of the area each layer covers, (along rows, along columns).
    """

    layer_shapes: tuple[tuple[int, int], ...] = CALOGAN_LAYER_SHAPES
    extent_mm: tuple[float, float] = CALOGAN_EXTENT_MM

    def __post_init__(self) -> None:
        shapes = tuple(tuple(int(n) for n in shape) for shape in self.layer_shapes)
        if not shapes or any(len(shape) != 2 or min(shape) < 1 for shape in shapes):
            raise ValueError(f"layer_shapes must be (rows, columns) pairs of positive sizes, "
                             f"got {self.layer_shapes!r}")
        extent = tuple(float(x) for x in self.extent_mm)
        if len(extent) != 2 or min(extent) <= 0:
            raise ValueError(f"extent_mm must be two positive lengths, got {self.extent_mm!r}")
        object.__setattr__(self, "layer_shapes", shapes)
        object.__setattr__(self, "extent_mm", extent)

    @property
    def num_layers(self) -> int:
        return len(self.layer_shapes)

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        return tuple(rows * columns for rows, columns in self.layer_shapes)

    @property
    def num_cells(self) -> int:
        return sum(self.layer_sizes)

    @property
    def layer_slices(self) -> tuple[slice, ...]:
        """Where each layer sits in a flattened shower."""
        bounds = np.cumsum((0,) + self.layer_sizes)
        return tuple(slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]))

    def cell_centers(self, layer: int) -> tuple[np.ndarray, np.ndarray]:
        """Row and column coordinates (mm, centred on the axis) of a layer's cells, flattened."""
        rows, columns = self.layer_shapes[layer]
        y = (np.arange(rows) + 0.5) / rows * self.extent_mm[0] - self.extent_mm[0] / 2
        x = (np.arange(columns) + 0.5) / columns * self.extent_mm[1] - self.extent_mm[1] / 2
        yy, xx = np.meshgrid(y, x, indexing="ij")
        return yy.ravel(), xx.ravel()

    def split(self, showers: np.ndarray) -> list[np.ndarray]:
        """Flattened showers (N, cells) -> one (N, rows, columns) array per layer."""
        showers = np.asarray(showers)
        self.check(showers)
        return [showers[:, part].reshape((-1, *shape))
                for part, shape in zip(self.layer_slices, self.layer_shapes)]

    def flatten(self, layers: Sequence[np.ndarray]) -> np.ndarray:
        """One (N, rows, columns) array per layer -> flattened showers (N, cells)."""
        if len(layers) != self.num_layers:
            raise ValueError(f"expected {self.num_layers} layers, got {len(layers)}")
        parts = []
        for index, (layer, shape) in enumerate(zip(layers, self.layer_shapes)):
            layer = np.asarray(layer)
            if layer.shape[-2:] != shape:
                raise ValueError(f"layer {index}: expected cells of shape {shape}, got {layer.shape[-2:]}")
            parts.append(layer.reshape(-1, shape[0] * shape[1]))
        return np.concatenate(parts, axis=1)

    def check(self, showers: np.ndarray) -> None:
        """Raise ValueError unless ``showers`` is (N, num_cells)."""
        if np.ndim(showers) != 2 or np.shape(showers)[1] != self.num_cells:
            raise ValueError(f"expected showers of shape (N, {self.num_cells}) for layers "
                             f"{self.layer_shapes}, got {np.shape(showers)}")


CALOGAN = Geometry()
