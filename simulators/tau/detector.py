"""The 3D calorimeter the tau's visible products hit: 35 x 35 x 20 voxels in (eta, phi, depth).

A barrel section at 1.5 m from the beam line, centred on eta = 0, phi = 0 (the
+x direction), with voxels of 0.025 x 0.025 in eta and phi (3.75 cm at its
face; the granularity of the ATLAS middle sampling) and 20 depth slices of
24 mm through the 480 mm of the CaloGAN-geometry stage's Pb/LAr. There is no
magnetic field, and showers develop along their particle's direction, which
is also the voxels' projective direction.

Each showering particle (electron, photon, charged pion or kaon) is passed to
the shower stage, ``shower_stage(kind, energy, rng) -> (layer0, layer1,
layer2)``, which simulates it entering the centre of the CaloGAN face. Its
cells are laid over the voxel grid around the particle's impact point, each
cell's energy shared among the voxels it overlaps in proportion to area (a
lateral displacement d at the face spans d / 1.5 m in both eta and phi);
layer 0 fills depth voxels 0-3, layer 1 voxels 4-17 and layer 2 voxels 18-19,
each layer's energy spread over its voxels following the particle's mean
longitudinal profile. Muons leave an ionisation track with Landau-like
fluctuations in their voxel column. Neutrinos leave nothing. Voxel energies
are calibrated to the electromagnetic scale (visible energy / sampling
fraction): an electron's voxels sum to about its energy.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Sequence

import numpy as np

import ppx
from simulators.calo.geometry import FACE_MM, LAYERS, MIP_VISIBLE_GEV_PER_MM, SAMPLING_FRACTION
from simulators.calo.kinds import KINDS, kind_index
from simulators.calo.mean_profile import mean_depth_profile
from simulators.calo.spots import landau_fluctuations
from simulators.tau.particles import Particle, Response

ShowerStage = Callable[[str, float, np.random.Generator], tuple[np.ndarray, np.ndarray, np.ndarray]]

VOXELS = (35, 35, 20)
"""(eta, phi, depth)."""
VOXEL_ANGLE = 0.025
INNER_RADIUS_MM = 1500.0
ETA_EDGES = (np.arange(VOXELS[0] + 1) - VOXELS[0] / 2) * VOXEL_ANGLE
PHI_EDGES = (np.arange(VOXELS[1] + 1) - VOXELS[1] / 2) * VOXEL_ANGLE
DEPTH_EDGES_MM = np.linspace(0.0, LAYERS[-1].back_mm, VOXELS[2] + 1)
LAYER_DEPTH_VOXELS = ((0, 4), (4, 18), (18, 20))
"""Depth voxels filled by each CaloGAN layer (90, 347 and 43 mm deep; the voxels are 24 mm)."""
PROFILE_LOG_ENERGY_STEP = 0.02


def impact_point(momentum: np.ndarray) -> tuple[float, float]:
    """Pseudorapidity and azimuth of a lab four-vector's direction."""
    transverse = math.hypot(momentum[1], momentum[2])
    return math.asinh(momentum[3] / transverse), math.atan2(momentum[2], momentum[1])


def overlap_fractions(cell_edges: np.ndarray, voxel_edges: np.ndarray) -> np.ndarray:
    """``(cells, voxels)``: the fraction of each cell's extent falling in each voxel."""
    low = np.maximum(cell_edges[:-1, None], voxel_edges[None, :-1])
    high = np.minimum(cell_edges[1:, None], voxel_edges[None, 1:])
    return np.clip(high - low, 0.0, None) / np.diff(cell_edges)[:, None]


@functools.lru_cache(maxsize=4096)
def _depth_weights(kind: str, log_energy_step: int) -> tuple[np.ndarray, ...]:
    """Each layer's share of its energy per depth voxel, from the mean profile at the energy
    exp(step * PROFILE_LOG_ENERGY_STEP): profiles change little within 2% in energy, so they are cached."""
    profile = mean_depth_profile(kind, math.exp(log_energy_step * PROFILE_LOG_ENERGY_STEP), DEPTH_EDGES_MM)
    weights = []
    for first, last in LAYER_DEPTH_VOXELS:
        part = profile[first:last]
        total = part.sum()
        weights.append(part / total if total > 0 else np.full(last - first, 1.0 / (last - first)))
    return tuple(weights)


def _check_layers(layers: Sequence[np.ndarray]) -> list[np.ndarray]:
    arrays = [np.asarray(layer, dtype=np.float64) for layer in layers]
    shapes = [array.shape for array in arrays]
    expected = [layer.shape for layer in LAYERS]
    if shapes != expected:
        raise ValueError(f"the shower stage must return layers of shapes {expected}, got {shapes}")
    return arrays


def place_shower(layers: Sequence[np.ndarray], eta: float, phi: float, kind: str, energy: float) -> np.ndarray:
    """A shower's cells, given at the CaloGAN face, as electromagnetic-scale voxel energies."""
    image = np.zeros(VOXELS)
    weights_per_layer = _depth_weights(kind, round(math.log(max(energy, 1e-3)) / PROFILE_LOG_ENERGY_STEP))
    for layer, cells, weights, (first, last) in zip(LAYERS, _check_layers(layers), weights_per_layer,
                                                   LAYER_DEPTH_VOXELS):
        eta_cells = eta + (np.arange(layer.shape[1] + 1) * layer.cell_eta_mm - FACE_MM / 2) / INNER_RADIUS_MM
        phi_cells = phi + (np.arange(layer.shape[0] + 1) * layer.cell_phi_mm - FACE_MM / 2) / INNER_RADIUS_MM
        plane = overlap_fractions(eta_cells, ETA_EDGES).T @ cells.T @ overlap_fractions(phi_cells, PHI_EDGES)
        image[:, :, first:last] += plane[:, :, None] * weights[None, None, :]
    return image / SAMPLING_FRACTION


def place_track(eta: float, phi: float, fluctuations: np.ndarray | float = 1.0) -> np.ndarray:
    """A minimum-ionising track through the voxel column at (eta, phi), electromagnetic scale.

    ``fluctuations`` multiply each depth voxel's mean loss (1 gives the average track).
    """
    image = np.zeros(VOXELS)
    eta_index = np.searchsorted(ETA_EDGES, eta, side="right") - 1
    phi_index = np.searchsorted(PHI_EDGES, phi, side="right") - 1
    if 0 <= eta_index < VOXELS[0] and 0 <= phi_index < VOXELS[1]:
        image[eta_index, phi_index, :] = (MIP_VISIBLE_GEV_PER_MM * np.diff(DEPTH_EDGES_MM) * fluctuations
                                          / SAMPLING_FRACTION)
    return image


def staged_shower(kind: str, energy: float, shower_stage: ShowerStage, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One shower's layers from ``shower_stage``, offered to the engine as the named stage
    "shower", which a surrogate may replace."""
    return tuple(ppx.stage("shower", lambda k, e: shower_stage(KINDS[int(k)], float(e), rng), kind_index(kind),
                           energy))


def deposit(particles: Sequence[Particle], shower_stage: ShowerStage, rng: np.random.Generator) -> np.ndarray:
    """The (35, 35, 20) electromagnetic-scale energies (GeV) the visible particles leave."""
    image = np.zeros(VOXELS)
    for particle in particles:
        response = particle.species.response
        if response in (Response.INVISIBLE, Response.DECAYS):
            continue
        eta, phi = impact_point(particle.momentum)
        if response == Response.MIP:
            image += place_track(eta, phi, landau_fluctuations(VOXELS[2], rng))
        else:
            kind, energy = particle.species.shower_kind, float(particle.momentum[0])
            image += place_shower(staged_shower(kind, energy, shower_stage, rng), eta, phi, kind, energy)
    return image
