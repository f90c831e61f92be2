"""Relativistic kinematics on numpy four-vectors ``(E, px, py, pz)`` in GeV.

Two-body decays put the daughters back to back with the momentum fixed by the
masses; three-body decays are parametrised by the Dalitz variables
s12 = (p1 + p2)^2 and s23 = (p2 + p3)^2, in which flat phase space is uniform
inside the kinematic boundary. Daughters are built in the parent's rest frame
and boosted to the lab.
"""

from __future__ import annotations

import math

import numpy as np


def four_vector(mass: float, momentum: np.ndarray) -> np.ndarray:
    momentum = np.asarray(momentum, dtype=np.float64)
    return np.concatenate([[math.sqrt(mass ** 2 + float(momentum @ momentum))], momentum])


def invariant_mass(p4: np.ndarray) -> float:
    return math.sqrt(max(p4[0] ** 2 - float(p4[1:] @ p4[1:]), 0.0))


def two_body_momentum(parent_mass: float, mass1: float, mass2: float) -> float:
    """Momentum of either daughter in the parent's rest frame (0 at threshold)."""
    square = (parent_mass ** 2 - (mass1 + mass2) ** 2) * (parent_mass ** 2 - (mass1 - mass2) ** 2)
    return math.sqrt(max(square, 0.0)) / (2.0 * parent_mass)


def direction(cos_theta: float, phi: float) -> np.ndarray:
    sin_theta = math.sqrt(max(1.0 - cos_theta ** 2, 0.0))
    return np.array([sin_theta * math.cos(phi), sin_theta * math.sin(phi), cos_theta])


def angles(vector: np.ndarray) -> tuple[float, float]:
    """(cos theta, phi) of ``vector``'s direction: ``direction``'s inverse."""
    unit = vector / np.linalg.norm(vector)
    return float(unit[2]), math.atan2(unit[1], unit[0])


def rotation(cos_theta: float, phi: float, psi: float) -> np.ndarray:
    """The rotation R_z(phi) R_y(theta) R_z(psi): uniform over orientations for isotropic angles."""
    sin_theta = math.sqrt(max(1.0 - cos_theta ** 2, 0.0))

    def about_z(angle: float) -> np.ndarray:
        c, s = math.cos(angle), math.sin(angle)
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])

    about_y = np.array([[cos_theta, 0.0, sin_theta], [0.0, 1.0, 0.0], [-sin_theta, 0.0, cos_theta]])
    return about_z(phi) @ about_y @ about_z(psi)


def boost(p4: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """``p4`` given in the rest frame of ``parent`` (a lab four-vector), expressed in the lab."""
    mass = invariant_mass(parent)
    beta = parent[1:] / parent[0]
    gamma = parent[0] / mass
    beta_squared = float(beta @ beta)
    if beta_squared == 0.0:
        return p4.copy()
    projection = float(beta @ p4[1:])
    energy = gamma * (p4[0] + projection)
    momentum = p4[1:] + ((gamma - 1.0) * projection / beta_squared + gamma * p4[0]) * beta
    return np.concatenate([[energy], momentum])


def to_rest_frame(p4: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """``p4`` given in the lab, expressed in the rest frame of ``parent``: ``boost``'s inverse."""
    return boost(p4, np.concatenate([[parent[0]], -parent[1:]]))


def dalitz_limits(parent_mass: float, masses: tuple[float, float, float]) -> tuple[tuple[float, float], ...]:
    """The bounding ranges of s12 and s23."""
    m1, m2, m3 = masses
    return ((m1 + m2) ** 2, (parent_mass - m3) ** 2), ((m2 + m3) ** 2, (parent_mass - m1) ** 2)


def inside_dalitz(parent_mass: float, masses: tuple[float, float, float], s12: float, s23: float) -> bool:
    """Whether (s12, s23) is a physical configuration of the three-body decay."""
    m1, m2, m3 = masses
    if s12 <= (m1 + m2) ** 2 or s12 >= (parent_mass - m3) ** 2:
        return False
    # Energies of particles 2 and 3 in the rest frame of the (1, 2) system.
    root = math.sqrt(s12)
    energy2 = (s12 - m1 ** 2 + m2 ** 2) / (2.0 * root)
    energy3 = (parent_mass ** 2 - s12 - m3 ** 2) / (2.0 * root)
    momentum2 = math.sqrt(max(energy2 ** 2 - m2 ** 2, 0.0))
    momentum3 = math.sqrt(max(energy3 ** 2 - m3 ** 2, 0.0))
    low = (energy2 + energy3) ** 2 - (momentum2 + momentum3) ** 2
    high = (energy2 + energy3) ** 2 - (momentum2 - momentum3) ** 2
    return low < s23 < high


def third_invariant(parent_mass: float, masses: tuple[float, float, float], s12: float, s23: float) -> float:
    """s13, from s12 + s23 + s13 = M^2 + m1^2 + m2^2 + m3^2."""
    return parent_mass ** 2 + sum(mass ** 2 for mass in masses) - s12 - s23


def three_body_momenta(parent_mass: float, masses: tuple[float, float, float], s12: float, s23: float,
                       orientation: np.ndarray) -> list[np.ndarray]:
    """Daughter four-vectors in the parent's rest frame: particle 1 along the rotated z axis,
    particle 2 in the rotated xz plane, particle 3 balancing both."""
    m1, m2, m3 = masses
    s13 = third_invariant(parent_mass, masses, s12, s23)
    energies = ((parent_mass ** 2 + m1 ** 2 - s23) / (2.0 * parent_mass),
                (parent_mass ** 2 + m2 ** 2 - s13) / (2.0 * parent_mass))
    p1 = math.sqrt(max(energies[0] ** 2 - m1 ** 2, 0.0))
    p2 = math.sqrt(max(energies[1] ** 2 - m2 ** 2, 0.0))
    if p1 * p2 > 0.0:
        cos12 = (m1 ** 2 + m2 ** 2 + 2.0 * energies[0] * energies[1] - s12) / (2.0 * p1 * p2)
    else:
        cos12 = 1.0
    cos12 = min(max(cos12, -1.0), 1.0)
    momentum1 = orientation @ np.array([0.0, 0.0, p1])
    momentum2 = orientation @ np.array([p2 * math.sqrt(1.0 - cos12 ** 2), 0.0, p2 * cos12])
    first = four_vector(m1, momentum1)
    second = four_vector(m2, momentum2)
    third = four_vector(m3, -(momentum1 + momentum2))
    return [first, second, third]
