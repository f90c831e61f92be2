"""Cheap showers with the calorimeter's layout, for tests that need many and fast."""

from __future__ import annotations

import numpy as np

from inference.surrogate.geometry import CALOGAN
from inference.surrogate.showers_file import ShowerData

KIND_NAMES = ("electron", "photon", "pion")


def blob_showers(count: int, seed: int = 0, response_shift: float = 0.0) -> ShowerData:
    """Gaussian blobs in every layer, wider for higher kinds, with cell noise: fast stand-ins for showers."""
    rng = np.random.default_rng(seed)
    kinds = rng.integers(0, len(KIND_NAMES), count)
    energies = rng.uniform(1.0, 100.0, count)
    response = (0.18 - 0.1 * (kinds == 2)) * rng.normal(1.0, 0.05, count) + response_shift
    shares = rng.dirichlet([1.0, 8.0, 1.0], count)
    layers = []
    for layer in range(CALOGAN.num_layers):
        y, x = CALOGAN.cell_centers(layer)
        width = 20.0 + 10.0 * kinds[:, None] + rng.normal(0.0, 2.0, (count, 1))
        density = np.exp(-(x ** 2 + y ** 2)[None, :] / (2 * width ** 2))
        density /= density.sum(axis=1, keepdims=True)
        layers.append(density * (energies * response * shares[:, layer])[:, None])
    showers = np.concatenate(layers, axis=1) + rng.normal(0.0, 5e-4, (count, CALOGAN.num_cells))
    return ShowerData(kinds, energies, showers, CALOGAN, KIND_NAMES, source="blobs")
