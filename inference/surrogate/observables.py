"""Shower-shape observables: the physics quantities a surrogate's fidelity is judged on.

For layers indexed ``i = 0, 1, ...`` front to back, with ``E_i`` the energy in
layer *i*, ``E = sum_i E_i`` and ``E_inc`` the incident energy:

- ``energy_i``: ``E_i``; ``fraction_i``: ``E_i / E``;
- ``total_energy``: ``E``; ``response``: ``E / E_inc``;
- ``depth``: the energy-weighted mean layer index ``sum_i i E_i / E``, and
  ``depth_width``: the energy-weighted standard deviation of the layer index;
- ``width_x_i`` and ``width_y_i``: the energy-weighted standard deviation of the
  cell centres of layer *i* along columns and along rows (mm, in the common
  transverse frame of ``Geometry.cell_centers``);
- ``sparsity_i``: the fraction of cells of layer *i* with energy above
  ``threshold`` (CaloGAN's definition: higher means a denser layer).

Cells may be negative (electronic noise): energies, fractions and the
response use the cells as they are, while depth, widths and their weights use
only the positive part of each cell and of each layer's energy, so spreads
stay real. Ratios with an empty denominator (a shower or layer with no
energy) are 0.
"""

from __future__ import annotations

import numpy as np

from inference.surrogate.geometry import CALOGAN, Geometry


def observable_names(geometry: Geometry = CALOGAN) -> list[str]:
    """The names ``shower_observables`` returns, in table order."""
    layers = range(geometry.num_layers)
    return ([f"energy_{i}" for i in layers] + [f"fraction_{i}" for i in layers]
            + ["total_energy", "response", "depth", "depth_width"]
            + [f"width_x_{i}" for i in layers] + [f"width_y_{i}" for i in layers]
            + [f"sparsity_{i}" for i in layers])


def shower_observables(showers: np.ndarray, energies: np.ndarray, geometry: Geometry = CALOGAN, *,
                       threshold: float = 0.0) -> dict[str, np.ndarray]:
    """Every observable of the module docstring for each shower.

    Args:
        showers: (N, cells) cell energies.
        energies: (N,) incident energies, in the unit of the cells.
        geometry: the layout of the cells.
        threshold: cell energy a cell must exceed to count towards sparsity.

    Returns:
        name -> (N,) float64 array, in the order of ``observable_names``.
    """
    showers = np.asarray(showers, dtype=np.float64)
    geometry.check(showers)
    energies = np.asarray(energies, dtype=np.float64).reshape(-1)
    if len(energies) != len(showers):
        raise ValueError(f"expected one incident energy per shower ({len(showers)}), got {len(energies)}")
    layers = [showers[:, part] for part in geometry.layer_slices]
    layer_energy = np.stack([layer.sum(axis=1) for layer in layers], axis=1)
    total = layer_energy.sum(axis=1)
    out: dict[str, np.ndarray] = {}
    for i in range(geometry.num_layers):
        out[f"energy_{i}"] = layer_energy[:, i]
    for i in range(geometry.num_layers):
        out[f"fraction_{i}"] = _ratio(layer_energy[:, i], total)
    index = np.arange(geometry.num_layers, dtype=np.float64)
    positive_layers = np.clip(layer_energy, 0.0, None)
    positive_total = positive_layers.sum(axis=1)
    out.update(total_energy=total, response=_ratio(total, energies),
               depth=_ratio(positive_layers @ index, positive_total),
               depth_width=_weighted_std(positive_layers, index, positive_total))
    widths_y = []
    for i, layer in enumerate(layers):
        y, x = geometry.cell_centers(i)
        weights = np.clip(layer, 0.0, None)
        weight = weights.sum(axis=1)
        out[f"width_x_{i}"] = _weighted_std(weights, x, weight)
        widths_y.append(_weighted_std(weights, y, weight))
    for i, width in enumerate(widths_y):
        out[f"width_y_{i}"] = width
    for i, layer in enumerate(layers):
        out[f"sparsity_{i}"] = (layer > threshold).mean(axis=1)
    return out


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, numerator / safe, 0.0)


def _weighted_std(weights: np.ndarray, position: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Standard deviation of ``position`` under each row of ``weights`` (centred, so exact for one cell)."""
    mean = _ratio(weights @ position, total)
    squares = (weights * (position[None, :] - mean[:, None]) ** 2).sum(axis=1)
    return np.sqrt(_ratio(squares, total))
