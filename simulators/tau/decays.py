"""The tau decay as ppx random choices: every angle, mass and rejection test is a named sample.

A decay happens in the rest frame of its parent and is boosted to the lab.
Each decaying particle P (``tau``, a resonance ``rho``/``a1``/``k_star``, a
neutral pion ``pi0``, ``pi0_0``, ...) draws its choices inside ``ppx.scope(P)``
under names that start with P, so addresses group by particle for the engine
and names, by which posteriors are read, stay unique (``tau/tau_cos_theta``):

* two daughters: their direction, ``P_cos_theta`` and ``P_phi``;
* three daughters (leptonic taus, the a1): Dalitz variables
  ``P_s12_candidate`` and ``P_s23_candidate`` drawn uniformly over their
  bounding box until they fall inside the kinematic boundary and, for leptonic
  decays, ``P_accept ~ Uniform(0, 1)`` passes the V-A weight
  (p_tau . p_antinu)(p_lepton . p_nu_tau); the accepted pair is tagged
  ``P_s12`` and ``P_s23``; then the orientation ``P_cos_theta``, ``P_phi`` and ``P_psi``;
* a resonance's mass: ``P_mass_candidate ~ Uniform`` over the allowed range,
  kept when ``P_accept`` passes the weight Breit-Wigner x phase space, and tagged ``P_mass``.

The rejection loops make the number of samples, and so the trace, vary from
run to run. Decays are isotropic in their parent's frame (unpolarised taus).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pyro.distributions as dist
import torch

import ppx
from simulators.tau import kinematics as kin
from simulators.tau.channels import Channel, Resonance
from simulators.tau.particles import NEUTRINO, PHOTON, TAU_MASS, Particle, Response, Species

MAX_TRIES = 10_000
"""A rejection loop that has not accepted after this many tries raises instead of hanging."""
_WEIGHT_GRID = 4_000
_WEIGHT_MARGIN = 1.02


def uniform(low: float, high: float, name: str) -> float:
    # The bounds are ours and valid by construction; skipping pyro's argument checks halves the
    # cost of the many samples a decay draws.
    distribution = dist.Uniform(torch.tensor(low, dtype=torch.float64), torch.tensor(high, dtype=torch.float64),
                                validate_args=False)
    return float(ppx.sample(distribution, name=name))


def _tag(value: float, name: str) -> None:
    ppx.tag(torch.tensor(value, dtype=torch.float64), name=name)


def _isotropic(parent: str) -> np.ndarray:
    return kin.direction(uniform(-1.0, 1.0, f"{parent}_cos_theta"), uniform(-math.pi, math.pi, f"{parent}_phi"))


def _orientation(parent: str) -> np.ndarray:
    return kin.rotation(uniform(-1.0, 1.0, f"{parent}_cos_theta"), uniform(-math.pi, math.pi, f"{parent}_phi"),
                        uniform(-math.pi, math.pi, f"{parent}_psi"))


def _too_many_tries(what: str) -> RuntimeError:
    return RuntimeError(f"{what}: no candidate accepted in {MAX_TRIES} tries; the proposals for its "
                        f"samples may be far outside the allowed region")


def two_body(parent_name: str, parent: np.ndarray, masses: tuple[float, float]) -> list[np.ndarray]:
    """Lab four-vectors of the two daughters, the first along an isotropic direction."""
    parent_mass = kin.invariant_mass(parent)
    momentum = kin.two_body_momentum(parent_mass, *masses) * _isotropic(parent_name)
    return [kin.boost(kin.four_vector(masses[0], momentum), parent),
            kin.boost(kin.four_vector(masses[1], -momentum), parent)]


def _v_minus_a_weight(parent_mass: float, masses: tuple[float, float, float], s12: float, s23: float) -> float:
    """(p_tau . p_2)(p_1 . p_3) for lepton 1, antineutrino 2 and nu_tau 3, divided by its maximum."""
    lepton_mass_squared = masses[0] ** 2
    s13 = kin.third_invariant(parent_mass, masses, s12, s23)
    ceiling = (parent_mass ** 2 - lepton_mass_squared) ** 2 / 4.0
    return (parent_mass ** 2 - s13) * (s13 - lepton_mass_squared) / ceiling


def three_body(parent_name: str, parent: np.ndarray, masses: tuple[float, float, float],
               v_minus_a: bool = False) -> list[np.ndarray]:
    """Lab four-vectors of three daughters from flat (or V-A weighted) phase space, by rejection."""
    parent_mass = kin.invariant_mass(parent)
    (low12, high12), (low23, high23) = kin.dalitz_limits(parent_mass, masses)
    for _ in range(MAX_TRIES):
        s12 = uniform(low12, high12, f"{parent_name}_s12_candidate")
        s23 = uniform(low23, high23, f"{parent_name}_s23_candidate")
        if not kin.inside_dalitz(parent_mass, masses, s12, s23):
            continue
        if v_minus_a and (uniform(0.0, 1.0, f"{parent_name}_accept")
                          >= _v_minus_a_weight(parent_mass, masses, s12, s23)):
            continue
        _tag(s12, f"{parent_name}_s12")
        _tag(s23, f"{parent_name}_s23")
        rest_frame = kin.three_body_momenta(parent_mass, masses, s12, s23, _orientation(parent_name))
        return [kin.boost(p4, parent) for p4 in rest_frame]
    raise _too_many_tries(f"{parent_name} three-body phase space")


def mass_weight(resonance: Resonance, daughter_masses: tuple[float, ...], mass: float) -> float:
    """Relativistic Breit-Wigner times the tau -> resonance nu_tau momentum and, for two
    daughters, their momentum in the resonance frame."""
    m0, width = resonance.mass, resonance.width
    breit_wigner = (m0 * width) ** 2 / ((mass ** 2 - m0 ** 2) ** 2 + (m0 * width) ** 2)
    phase_space = kin.two_body_momentum(TAU_MASS, mass, NEUTRINO.mass)
    if len(daughter_masses) == 2:
        phase_space *= kin.two_body_momentum(mass, *daughter_masses)
    return breit_wigner * phase_space


def _mass_range(daughter_masses: tuple[float, ...]) -> tuple[float, float]:
    return sum(daughter_masses), TAU_MASS - NEUTRINO.mass


@functools.lru_cache(maxsize=None)
def _mass_ceiling(resonance: Resonance, daughter_masses: tuple[float, ...]) -> float:
    """An upper bound of ``mass_weight`` over the allowed masses: its maximum on a fine grid,
    plus a margin (the weight is smooth on the grid's scale)."""
    grid = np.linspace(*_mass_range(daughter_masses), _WEIGHT_GRID)
    return _WEIGHT_MARGIN * max(mass_weight(resonance, daughter_masses, float(mass)) for mass in grid)


def resonance_mass(resonance: Resonance, daughter_masses: tuple[float, ...]) -> float:
    """The mass of a resonance produced in tau -> resonance nu_tau, by rejection."""
    low, high = _mass_range(daughter_masses)
    ceiling = _mass_ceiling(resonance, daughter_masses)
    for _ in range(MAX_TRIES):
        mass = uniform(low, high, f"{resonance.name}_mass_candidate")
        if uniform(0.0, 1.0, f"{resonance.name}_accept") * ceiling < mass_weight(resonance, daughter_masses, mass):
            _tag(mass, f"{resonance.name}_mass")
            return mass
    raise _too_many_tries(f"{resonance.name} mass")


def decay_neutral_pion(label: str, momentum: np.ndarray) -> list[Particle]:
    """pi0 -> gamma gamma, the photons labelled ``LABEL_gamma_0`` and ``LABEL_gamma_1``."""
    with ppx.scope(label):
        photons = two_body(label, momentum, (0.0, 0.0))
    return [Particle(f"{label}_gamma_{index}", PHOTON, p4) for index, p4 in enumerate(photons)]


def _daughters(labelled: tuple[tuple[str, Species], ...], momenta: list[np.ndarray]) -> list[Particle]:
    particles = []
    for (label, species), p4 in zip(labelled, momenta):
        particles.append(Particle(label, species, p4))
        if species.response == Response.DECAYS:
            particles.extend(decay_neutral_pion(label, p4))
    return particles


def decay_tau(channel: Channel, tau: np.ndarray) -> list[Particle]:
    """Every particle of the decay with its lab four-momentum.

    The list holds the final state (leptons, neutrinos, charged hadrons,
    photons) and also each pi0 before its decay; the final state alone,
    ``[p for p in particles if p.species.response != Response.DECAYS]``, sums to ``tau``.
    """
    masses = tuple(species.mass for _, species in channel.daughters)
    if channel.resonance is None:
        with ppx.scope("tau"):
            momenta = (three_body("tau", tau, masses, channel.v_minus_a) if len(masses) == 3
                       else two_body("tau", tau, masses))
        return _daughters(channel.daughters, momenta)
    name = channel.resonance.name
    with ppx.scope(name):
        mass = resonance_mass(channel.resonance, masses)
    with ppx.scope("tau"):
        resonance_p4, nu_tau = two_body("tau", tau, (mass, NEUTRINO.mass))
    with ppx.scope(name):
        momenta = (three_body(name, resonance_p4, masses) if len(masses) == 3
                   else two_body(name, resonance_p4, masses))
    return _daughters(channel.daughters, momenta) + [Particle("nu_tau", NEUTRINO, nu_tau)]
