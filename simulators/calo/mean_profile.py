"""The average longitudinal profile of a shower, for spreading a layer's energy over finer depth bins."""

from __future__ import annotations

import math

import numpy as np

from simulators.calo import em, hadronic
from simulators.calo.geometry import (INTERACTION_LENGTH_MM, MIP_VISIBLE_GEV_PER_MM, RADIATION_LENGTH_MM,
                                      SAMPLING_FRACTION)
from simulators.calo.kinds import PHOTON, PION, Kind, kind_index
from simulators.calo.spots import PHOTON_MEAN_FREE_PATH_X0

STEP_MM = 1.0


def _gamma_density(depth: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """Gamma(alpha, rate beta) density at ``depth`` (same unit as 1 / beta)."""
    scaled = beta * depth
    return beta * np.exp((alpha - 1.0) * np.log(scaled) - scaled - math.lgamma(alpha))


def _exponential_convolution(density: np.ndarray, depth: np.ndarray, mean_mm: float) -> np.ndarray:
    """``density`` delayed by an exponentially distributed start depth of mean ``mean_mm``."""
    start = np.exp(-depth / mean_mm) * STEP_MM / mean_mm
    return np.convolve(density, start)[:depth.size]


def mean_depth_profile(kind: Kind, energy: float, edges_mm: np.ndarray) -> np.ndarray:
    """Average visible energy, as a fraction of ``energy``, between consecutive depth edges
    (mm from the front face, increasing).

    Electrons follow the average Grindhammer-Peters profile; photons the same,
    delayed by their conversion depth; charged pions an ionisation track that
    survives as exp(-z / lambda), then, from an exponentially distributed first
    interaction, their average electromagnetic and (partly invisible) hadronic parts.
    """
    kind = kind_index(kind)
    edges_mm = np.asarray(edges_mm, dtype=np.float64)
    depth = np.arange(0.0, edges_mm[-1], STEP_MM) + STEP_MM / 2
    if kind == PION:
        em_fraction = float(hadronic.mean_em_fraction(np.array(energy)))
        em_alpha, em_beta = em.mean_longitudinal(hadronic.em_part_energy(em_fraction * energy))
        had_alpha, had_beta = hadronic.mean_longitudinal(np.array(energy))
        showering = (em_fraction * _gamma_density(depth / RADIATION_LENGTH_MM, em_alpha, em_beta)
                     / RADIATION_LENGTH_MM
                     + (1 - em_fraction) * (1 - hadronic.INVISIBLE_FRACTION)
                     * _gamma_density(depth / INTERACTION_LENGTH_MM, had_alpha, had_beta) / INTERACTION_LENGTH_MM)
        density = SAMPLING_FRACTION * _exponential_convolution(showering, depth, INTERACTION_LENGTH_MM)
        density += MIP_VISIBLE_GEV_PER_MM * np.exp(-depth / INTERACTION_LENGTH_MM) / energy
    else:
        alpha, beta = em.mean_longitudinal(np.array(energy))
        density = SAMPLING_FRACTION * _gamma_density(depth / RADIATION_LENGTH_MM, alpha, beta) / RADIATION_LENGTH_MM
        if kind == PHOTON:
            density = _exponential_convolution(density, depth, PHOTON_MEAN_FREE_PATH_X0 * RADIATION_LENGTH_MM)
    cumulative = np.concatenate([[0.0], np.cumsum(density * STEP_MM)])
    positions = np.clip(np.round(edges_mm / STEP_MM).astype(np.int64), 0, depth.size)
    return np.diff(cumulative[positions])
