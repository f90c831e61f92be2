"""The mean shower shape per particle kind and energy, measured on recorded showers.

The generator starts from it (``ShowerGenerator.start_from_mean_shape``): its
layer and cell heads are set so that, before any adversarial training, every
shower already has the mean split over layers and the mean pattern within
each layer for its kind and energy, and the noise-driven part starts small.
Adversarial training then has to learn the fluctuations around the mean
rather than the mean itself (the core of an electron shower, four cells that
share the middle layer's energy almost equally, is what a classifier sees
first).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inference.surrogate.geometry import Geometry


@dataclass(frozen=True)
class MeanShapes:
    """Mean shapes in log-energy bins of equal counts, one row per (kind, bin).

    Attributes:
        kinds: (M,) particle kind of each row.
        energies: (M,) the median incident energy of the row's showers.
        layer_shares: (M, layers) each layer's share of the total visible energy.
        cell_shares: (M, cells) each cell's share of its layer's energy.
        counts: (M, layers) how many equal, independent deposits would make
            the core cells' shares fluctuate as much as they do.
    """

    kinds: np.ndarray
    energies: np.ndarray
    layer_shares: np.ndarray
    cell_shares: np.ndarray
    counts: np.ndarray


def mean_shapes(kinds: np.ndarray, energies: np.ndarray, showers: np.ndarray, geometry: Geometry,
                bins: int = 8) -> MeanShapes:
    """Mean layer and cell shares of the showers of each kind, in ``bins`` log-energy bins.

    Shares are ratios of means (mean cell energy over mean layer energy), which
    stay finite where single showers leave a layer almost empty; cell noise
    averages out of them. Kinds without showers get no rows. Counts come from
    ``fluctuation_count``.
    """
    kinds = np.asarray(kinds).reshape(-1)
    energies = np.asarray(energies, dtype=np.float64).reshape(-1)
    showers = np.asarray(showers)
    rows: dict[str, list] = {"kinds": [], "energies": [], "layer_shares": [], "cell_shares": [], "counts": []}
    for kind in np.unique(kinds):
        chosen = np.flatnonzero(kinds == kind)
        for part in np.array_split(chosen[np.argsort(energies[chosen], kind="stable")], min(bins, len(chosen))):
            mean = showers[part].mean(axis=0, dtype=np.float64)
            layer_energy = np.array([mean[part_].sum() for part_ in geometry.layer_slices])
            rows["kinds"].append(kind)
            rows["energies"].append(float(np.median(energies[part])))
            rows["layer_shares"].append(_shares(layer_energy))
            cell_shares = [_shares(mean[part_]) for part_ in geometry.layer_slices]
            rows["cell_shares"].append(np.concatenate(cell_shares))
            rows["counts"].append([fluctuation_count(showers[part][:, part_], shares)
                                   for part_, shares in zip(geometry.layer_slices, cell_shares)])
    return MeanShapes(*(np.asarray(rows[name], dtype=np.int64 if name == "kinds" else np.float64)
                        for name in ("kinds", "energies", "layer_shares", "cell_shares", "counts")))


def fluctuation_count(layer: np.ndarray, shares: np.ndarray, core: float = 0.5, default: float = 1000.0) -> float:
    """The count ``n`` for which multinomial shares, of variance ``p (1 - p) / n``, vary as the core cells do.

    Args:
        layer: (N, cells) one layer's cell energies in similar showers.
        shares: (cells,) the layer's mean cell shares.
        core: the cells with the largest shares that hold this much of the layer's energy are used
            (their shares are far above the cell noise).
        default: the count when the layer is too empty to measure one.

    Everything else that moves the shares (the shower's position, its shape)
    counts as fluctuation too, so this is a lower bound on the fluctuations'
    real count: the generator starts with shares that vary no less than the data's.
    """
    energy = layer.sum(axis=1, dtype=np.float64)
    full = energy > 0.5 * max(float(np.median(energy)), 0.0)
    order = np.argsort(shares)[::-1]
    cells = order[:int(np.searchsorted(np.cumsum(shares[order]), core)) + 1]
    if full.sum() < 10 or not shares[cells].sum() > 0:
        return default
    observed = (layer[full][:, cells] / energy[full, None]).var(axis=0).sum()
    expected = (shares[cells] * (1 - shares[cells])).sum()
    return float(expected / observed) if observed > 0 else default


def _shares(values: np.ndarray) -> np.ndarray:
    """Non-negative shares of ``values`` summing to one (uniform if nothing is positive)."""
    positive = np.clip(values, 0.0, None)
    total = positive.sum()
    return positive / total if total > 0 else np.full(len(values), 1.0 / len(values))
