"""What the classifier two-sample test reads: showers as cells, or as observables, with their conditions."""

from __future__ import annotations

import numpy as np

from inference.surrogate.observables import shower_observables
from inference.surrogate.showers_file import ShowerData


def conditions(data: ShowerData) -> np.ndarray:
    """(N, kinds + 1): the one-hot particle kind and log10 of the incident energy."""
    one_hot = np.eye(len(data.kind_names))[data.kinds]
    return np.concatenate([one_hot, np.log10(data.energies)[:, None]], axis=1)


def cell_features(data: ShowerData) -> np.ndarray:
    """Low-level features: every cell's energy over the incident energy, plus the conditions
    (the calorimeter challenge's low-level classifier input)."""
    return np.concatenate([data.showers / data.energies[:, None], conditions(data)], axis=1)


def observable_features(data: ShowerData, threshold: float = 0.0) -> np.ndarray:
    """High-level features: the shower-shape observables, energies on a log scale, plus the conditions."""
    observables = shower_observables(data.showers, data.energies, data.geometry, threshold=threshold)
    columns = []
    for name, values in observables.items():
        if name.startswith("energy_") or name == "total_energy":
            values = np.sign(values) * np.log1p(np.abs(values) / np.mean(data.energies) * 1e3)
        columns.append(values)
    return np.concatenate([np.stack(columns, axis=1), conditions(data)], axis=1)
