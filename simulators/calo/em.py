"""Electromagnetic showers after Grindhammer and Peters (hep-ex/0001020), for a homogeneous medium.

Longitudinally the energy follows a gamma distribution in depth t (radiation
lengths), dE/dt ~ t^(alpha - 1) exp(-beta t), with the depth of the maximum
T = (alpha - 1) / beta. Both grow with log(y), y = E / E_c. Showers fluctuate:
ln T and ln alpha are drawn, shower by shower, from a correlated normal whose
means and widths depend on log(y).

Laterally, at depth t the radial density is a core plus a halo,
f(r) = p f_C(r) + (1 - p) f_T(r) with f_R(r) = 2 r R^2 / (r^2 + R^2)^2 (r in
Moliere radii), whose radii and mixing vary with tau = t / T: narrow early,
broadening past the maximum. The numbers are the published fits; the medium
enters through its effective Z and critical energy.
"""

from __future__ import annotations

import numpy as np

from simulators.calo.geometry import CRITICAL_ENERGY_GEV, EFFECTIVE_Z

MIN_ENERGY_GEV = 0.05
"""Below this the fits are extrapolated too far; lower energies use its parameters."""
MIN_ALPHA = 1.05
MAX_RELATIVE_DEPTH = 50.0
"""Spots deeper than this many shower maxima (rare, in showers with a tiny T) take the halo
radius at this depth, which is already far beyond the calorimeter's face."""


def _log_y(energy: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(energy, MIN_ENERGY_GEV) / CRITICAL_ENERGY_GEV)


def mean_longitudinal(energy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The average shower's gamma shape ``alpha`` and rate ``beta`` (per X0)."""
    log_y = _log_y(np.asarray(energy, dtype=np.float64))
    depth_max = log_y - 0.858
    alpha = 0.21 + (0.492 + 2.38 / EFFECTIVE_Z) * log_y
    alpha = np.maximum(alpha, MIN_ALPHA)
    return alpha, (alpha - 1.0) / np.maximum(depth_max, 0.1)


def sample_longitudinal(energy: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Each shower's own ``alpha`` and ``beta``: correlated fluctuations of ln T and ln alpha."""
    log_y = _log_y(np.asarray(energy, dtype=np.float64))
    mean_log_t = np.log(log_y - 0.812)
    mean_log_alpha = np.log(0.81 + (0.458 + 2.26 / EFFECTIVE_Z) * log_y)
    sigma_log_t = np.minimum(1.0 / (-1.4 + 1.26 * log_y), 1.0)
    sigma_log_alpha = np.minimum(1.0 / (-0.58 + 0.86 * log_y), 1.0)
    correlation = 0.705 - 0.023 * log_y
    first, second = rng.standard_normal((2,) + log_y.shape)
    log_t = mean_log_t + sigma_log_t * first
    log_alpha = mean_log_alpha + sigma_log_alpha * (
        correlation * first + np.sqrt(1.0 - correlation ** 2) * second)
    alpha = np.maximum(np.exp(log_alpha), MIN_ALPHA)
    return alpha, (alpha - 1.0) / np.exp(log_t)


def sample_radius(energy: np.ndarray, tau: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Radial distances (Moliere radii) of spots at relative depths ``tau = t / T``.

    ``energy`` and ``tau`` are per spot; the core or the halo is picked with
    probability p(tau), and the radius drawn by inverting r^2 / (r^2 + R^2).
    """
    log_e = np.log(np.maximum(energy, MIN_ENERGY_GEV))
    tau = np.minimum(tau, MAX_RELATIVE_DEPTH)
    z = EFFECTIVE_Z
    core = (0.0251 + 0.00319 * log_e) + (0.1162 - 0.000381 * z) * tau
    k4 = 0.3585 + 0.0421 * log_e
    halo = (0.659 - 0.00309 * z) * (np.exp(-2.59 * (tau - 0.645)) + np.exp(k4 * (tau - 0.645)))
    shifted = ((0.401 + 0.00187 * z) - tau) / (1.313 - 0.0686 * log_e)
    core_probability = np.clip((2.632 - 0.00094 * z) * np.exp(shifted - np.exp(shifted)), 0.0, 1.0)
    uniform_pick, uniform_radius = rng.random((2,) + np.shape(tau))
    scale = np.where(uniform_pick < core_probability, core, halo)
    return scale * np.sqrt(uniform_radius / (1.0 - uniform_radius))
