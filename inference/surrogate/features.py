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
    """High-level features: the shower-shape observables plus the conditions.

    Energies enter as fractions of the incident energy on a signed log scale
    (``asinh(1000 E / E_inc)``), so that no statistic of either sample sets their scale.
    """
    observables = shower_observables(data.showers, data.energies, data.geometry, threshold=threshold)
    columns = []
    for name, values in observables.items():
        if name.startswith("energy_") or name == "total_energy":
            values = np.arcsinh(1e3 * values / data.energies)
        columns.append(values)
    return np.concatenate([np.stack(columns, axis=1), conditions(data)], axis=1)
