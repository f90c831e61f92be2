"""Charged-pion showers: a MIP track, a first interaction, then an EM core in a wider hadronic cascade.

A pion ionises like a minimum-ionising particle until its first nuclear
interaction, at an exponentially distributed depth (mean one interaction
length, so 30% cross the 1.2 lambda calorimeter without interacting). There it
splits its energy: a fraction f_em goes into neutral pions, which shower
electromagnetically (narrow, in radiation lengths); the rest cascades
hadronically (deeper, in interaction lengths, and wider), and part of that
part is invisible (nuclear binding, slow neutrons), which makes the response
to pions lower than to electrons and fluctuate more. Per shower:

* f_em ~ Beta with mean 1 - (E / 1 GeV)^(m - 1), m = 0.82 (Groom's power law for
  the electromagnetic fraction) and concentration 8 (a spread of about 0.17 at 50 GeV);
* the invisible share of the hadronic part ~ Beta with mean 0.35 (an e/h near 1.5,
  typical of lead/argon) and concentration 30;
* the hadronic profile after the first interaction is a gamma distribution in
  interaction lengths with maximum at 0.2 ln(E / GeV) + 0.3 lambda and shape
  1.5 + 0.3 ln(E / GeV), both with 25% log-normal fluctuations;
* laterally the hadronic part is a core of radius 0.1 lambda and a halo of
  radius 0.35 lambda, mixed 60/40; its electromagnetic part follows the
  electromagnetic fits at a third of its energy (several neutral pions share it).

The numbers are our own choices, set to reproduce the textbook trends rather
than any particular test-beam.
"""

from __future__ import annotations

import numpy as np

from simulators.calo import em

EM_FRACTION_EXPONENT = 0.82
EM_FRACTION_CONCENTRATION = 8.0
INVISIBLE_FRACTION = 0.35
INVISIBLE_CONCENTRATION = 30.0
HADRONIC_CORE_LAMBDA = 0.10
HADRONIC_HALO_LAMBDA = 0.35
HADRONIC_CORE_PROBABILITY = 0.6
LOG_FLUCTUATION = 0.25
NEUTRAL_PIONS_SHARING = 3.0
MIN_FRACTION = 0.02


def mean_em_fraction(energy: np.ndarray) -> np.ndarray:
    """Average share of a pion's energy that ends in electromagnetic sub-showers."""
    fraction = 1.0 - np.power(np.maximum(energy, 1e-3), EM_FRACTION_EXPONENT - 1.0)
    return np.clip(fraction, MIN_FRACTION, 1.0 - MIN_FRACTION)


def _beta(mean: np.ndarray, concentration: float, rng: np.random.Generator) -> np.ndarray:
    return rng.beta(mean * concentration, (1.0 - mean) * concentration)


def sample_em_fraction(energy: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _beta(mean_em_fraction(energy), EM_FRACTION_CONCENTRATION, rng)


def sample_invisible_fraction(size: int, rng: np.random.Generator) -> np.ndarray:
    return _beta(np.full(size, INVISIBLE_FRACTION), INVISIBLE_CONCENTRATION, rng)


def em_part_energy(em_energy: np.ndarray) -> np.ndarray:
    """The energy whose electromagnetic fits describe the sub-showers sharing ``em_energy``."""
    return em_energy / NEUTRAL_PIONS_SHARING


def mean_longitudinal(energy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shape ``alpha`` and rate ``beta`` (per interaction length) of the average hadronic profile."""
    log_e = np.log(np.maximum(np.asarray(energy, dtype=np.float64), 0.1))
    alpha = np.maximum(1.5 + 0.3 * log_e, em.MIN_ALPHA)
    depth_max = np.maximum(0.2 * log_e + 0.3, 0.05)
    return alpha, (alpha - 1.0) / depth_max


def sample_longitudinal(energy: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Each shower's hadronic ``alpha`` and ``beta``, fluctuating log-normally about the average."""
    alpha, beta = mean_longitudinal(energy)
    depth_max = (alpha - 1.0) / beta
    alpha_factor, depth_factor = np.exp(LOG_FLUCTUATION * rng.standard_normal((2,) + alpha.shape))
    alpha = np.maximum(alpha * alpha_factor, em.MIN_ALPHA)
    return alpha, (alpha - 1.0) / (depth_max * depth_factor)


def sample_radius(size: int, rng: np.random.Generator) -> np.ndarray:
    """Radial distances (interaction lengths) of hadronic spots: core plus halo."""
    uniform_pick, uniform_radius = rng.random((2, size))
    scale = np.where(uniform_pick < HADRONIC_CORE_PROBABILITY, HADRONIC_CORE_LAMBDA, HADRONIC_HALO_LAMBDA)
    return scale * np.sqrt(uniform_radius / (1.0 - uniform_radius))
