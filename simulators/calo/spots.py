"""The shower stage itself: energy deposited as many spots drawn from the profiles, histogrammed into cells.

This is how spot-based fast simulations (GFLASH and its successors) work, and
what makes the stage expensive: ``SPOTS_PER_GEV`` = 500 spots per GeV of
cascade energy (GFLASH's rule, 93 ln(Z) E^0.876, gives about 400 for our
medium; the stage is meant to be the costly part of a simulator, as it is in
a real detector simulation), each with a sampled depth, radius and azimuth.

Spot energies carry the sampling fluctuations: each is its share of the
component energy times a gamma variate of mean 1 and shape
1 / (a^2 SPOTS_PER_GEV), so that the visible sum of a component of energy E
fluctuates by a / sqrt(E), with a = 10% sqrt(GeV) for electromagnetic and 30%
for hadronic cascades. A charged pion's ionisation track before its first
interaction is laid down in 5 mm steps with Landau-like (Moyal) fluctuations.
Cells then get Gaussian electronic noise.

Every random number comes from the ``numpy.random.Generator`` passed in, so
the same generator state and the same inputs give the same showers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulators.calo import em, hadronic
from simulators.calo.geometry import (DEPTH_MM, INTERACTION_LENGTH_MM, MIP_LOSS_GEV_PER_MM,
                                      MIP_VISIBLE_GEV_PER_MM, MOLIERE_RADIUS_MM, NUM_CELLS,
                                      RADIATION_LENGTH_MM, SAMPLING_FRACTION, cell_index)
from simulators.calo.kinds import ELECTRON, PHOTON, PION

SPOTS_PER_GEV = 500.0
EM_STOCHASTIC = 0.10
HADRONIC_STOCHASTIC = 0.30
CELL_NOISE_GEV = 0.0005
"""Electronic noise per cell, in visible (argon) GeV: about 3 MeV at the electromagnetic scale."""
PHOTON_MEAN_FREE_PATH_X0 = 9.0 / 7.0
MIP_STEP_MM = 5.0
CHUNK_GEV = 2000.0
MOYAL_SCALE = 0.15
_EULER_GAMMA = 0.5772156649015329
_MOYAL_LOCATION = 1.0 - MOYAL_SCALE * (_EULER_GAMMA + np.log(2.0))
"""Puts the mean of the Moyal fluctuation at 1."""


@dataclass
class Spots:
    """Energy deposits: the shower each belongs to, its position (mm) and visible energy (GeV)."""

    shower: np.ndarray
    depth: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    energy: np.ndarray

    @staticmethod
    def concatenate(parts: list["Spots"]) -> "Spots":
        return Spots(*(np.concatenate([getattr(part, name) for part in parts])
                       for name in ("shower", "depth", "eta", "phi", "energy")))


def _spot_counts(energy: np.ndarray) -> np.ndarray:
    return np.where(energy > 0.0, np.maximum(np.rint(SPOTS_PER_GEV * energy), 1), 0).astype(np.int64)


def _spot_energies(energy: np.ndarray, counts: np.ndarray, owner: np.ndarray, stochastic: float,
                   rng: np.random.Generator) -> np.ndarray:
    shape = 1.0 / (stochastic ** 2 * SPOTS_PER_GEV)
    share = energy / np.maximum(counts, 1)
    return share[owner] * rng.gamma(shape, 1.0 / shape, size=owner.size) * SAMPLING_FRACTION


def _lateral(radius_mm: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    azimuth = rng.uniform(0.0, 2.0 * np.pi, size=radius_mm.size)
    return radius_mm * np.cos(azimuth), radius_mm * np.sin(azimuth)


def em_spots(shower: np.ndarray, energy: np.ndarray, fit_energy: np.ndarray, start_mm: np.ndarray,
             rng: np.random.Generator) -> Spots:
    """Spots of electromagnetic showers of ``energy`` starting at depth ``start_mm``; the
    Grindhammer-Peters fits are evaluated at ``fit_energy``."""
    counts = _spot_counts(energy)
    owner = np.repeat(np.arange(energy.size), counts)
    alpha, beta = em.sample_longitudinal(fit_energy, rng)
    depth_x0 = rng.gamma(alpha[owner], 1.0 / beta[owner])
    tau = depth_x0 * beta[owner] / (alpha[owner] - 1.0)
    radius = em.sample_radius(fit_energy[owner], tau, rng) * MOLIERE_RADIUS_MM
    eta, phi = _lateral(radius, rng)
    energies = _spot_energies(energy, counts, owner, EM_STOCHASTIC, rng)
    return Spots(shower[owner], start_mm[owner] + depth_x0 * RADIATION_LENGTH_MM, eta, phi, energies)


def hadronic_spots(shower: np.ndarray, energy: np.ndarray, fit_energy: np.ndarray, start_mm: np.ndarray,
                   rng: np.random.Generator) -> Spots:
    """Spots of the hadronic (non-electromagnetic, visible) part of pion showers."""
    counts = _spot_counts(energy)
    owner = np.repeat(np.arange(energy.size), counts)
    alpha, beta = hadronic.sample_longitudinal(fit_energy, rng)
    depth_lambda = rng.gamma(alpha[owner], 1.0 / beta[owner])
    radius = hadronic.sample_radius(owner.size, rng) * INTERACTION_LENGTH_MM
    eta, phi = _lateral(radius, rng)
    energies = _spot_energies(energy, counts, owner, HADRONIC_STOCHASTIC, rng)
    return Spots(shower[owner], start_mm[owner] + depth_lambda * INTERACTION_LENGTH_MM, eta, phi, energies)


def landau_fluctuations(size: int, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative ionisation fluctuations of mean 1: a Moyal variate, the Landau
    distribution's closed-form stand-in, with its long tail of delta rays."""
    return _MOYAL_LOCATION - MOYAL_SCALE * np.log(rng.standard_normal(size) ** 2)


def mip_spots(shower: np.ndarray, length_mm: np.ndarray, rng: np.random.Generator) -> Spots:
    """Ionisation along the shower axis from the front face to ``length_mm``."""
    counts = np.ceil(length_mm / MIP_STEP_MM).astype(np.int64)
    owner = np.repeat(np.arange(length_mm.size), counts)
    depth = rng.uniform(0.0, 1.0, size=owner.size) * length_mm[owner]
    energies = (MIP_VISIBLE_GEV_PER_MM * (length_mm / np.maximum(counts, 1))[owner]
                * landau_fluctuations(owner.size, rng))
    zeros = np.zeros(owner.size)
    return Spots(shower[owner], depth, zeros, zeros, energies)


def shower_spots(kinds: np.ndarray, energies: np.ndarray, rng: np.random.Generator) -> Spots:
    """All spots of a batch of showers, tagged with the index of their shower."""
    index = np.arange(kinds.size)
    electromagnetic = (kinds == ELECTRON) | (kinds == PHOTON)
    conversion = rng.exponential(PHOTON_MEAN_FREE_PATH_X0 * RADIATION_LENGTH_MM, size=kinds.size)
    start = np.where(kinds == PHOTON, conversion, 0.0)

    pion = kinds == PION
    first_interaction = rng.exponential(INTERACTION_LENGTH_MM, size=kinds.size)
    interacts = pion & (first_interaction < DEPTH_MM)
    track = np.where(pion, np.minimum(first_interaction, DEPTH_MM), 0.0)
    remaining = np.where(interacts, np.maximum(energies - MIP_LOSS_GEV_PER_MM * track, 0.0), 0.0)
    em_fraction = hadronic.sample_em_fraction(np.maximum(remaining, 1e-3), rng)
    invisible = hadronic.sample_invisible_fraction(kinds.size, rng)
    pion_em = em_fraction * remaining
    pion_hadronic = (1.0 - em_fraction) * (1.0 - invisible) * remaining

    em_energy = np.where(electromagnetic, energies, pion_em)
    fit_energy = np.where(electromagnetic, energies, hadronic.em_part_energy(pion_em))
    em_start = np.where(electromagnetic, start, first_interaction)
    return Spots.concatenate([
        em_spots(index, em_energy, fit_energy, em_start, rng),
        hadronic_spots(index[interacts], pion_hadronic[interacts], remaining[interacts],
                       first_interaction[interacts], rng),
        mip_spots(index[pion], track[pion], rng),
    ])


def deposit(spots: Spots, num_showers: int) -> np.ndarray:
    """Histogram spots into cells: ``(num_showers, 504)`` visible energies; spots outside are lost."""
    cell = cell_index(spots.depth, spots.eta, spots.phi)
    inside = cell >= 0
    flat = spots.shower[inside] * NUM_CELLS + cell[inside]
    cells = np.bincount(flat, weights=spots.energy[inside], minlength=num_showers * NUM_CELLS)
    return cells.reshape(num_showers, NUM_CELLS)


def _chunks(energies: np.ndarray) -> list[slice]:
    """Consecutive runs of showers holding at most about ``CHUNK_GEV`` in all (at least one shower)."""
    bounds, total, start = [], 0.0, 0
    for index, energy in enumerate(energies):
        if index > start and total + energy > CHUNK_GEV:
            bounds.append(slice(start, index))
            start, total = index, 0.0
        total += energy
    bounds.append(slice(start, energies.size))
    return bounds


def simulate(kinds: np.ndarray, energies: np.ndarray, rng: np.random.Generator,
             cell_noise: float = CELL_NOISE_GEV) -> np.ndarray:
    """Visible cell energies ``(N, 504)`` of N showers, noise included.

    Showers are simulated together in chunks of about ``CHUNK_GEV``, which bounds the memory the
    spots take (some 100 MB) however many showers are asked for.
    """
    cells = np.zeros((kinds.size, NUM_CELLS))
    for chunk in _chunks(energies):
        cells[chunk] = deposit(shower_spots(kinds[chunk], energies[chunk], rng), chunk.stop - chunk.start)
    if cell_noise > 0.0:
        cells += cell_noise * rng.standard_normal(cells.shape)
    return cells
