"""A move along a charged hadron's momentum: its energy changes while the photons and every direction stay put.

The calorimeter measures a photon's energy to a per cent or so but a charged
hadron's only through its deposit, which fluctuates by 75% from shower to
shower (``simulators.tau.observation``). Once the image has pinned the hadron's
direction and deposit, its energy is still loose, and with it the visible
system's four-momentum, on which the neutrino's mass shell, and so the tau's
momentum, hangs. A step in the hadron's energy alone changes the resonance's
mass, its decay angles, the tau's direction in the decay and the tau's momentum
all at once; single-site and joint Gaussian steps would have to find that
curved line by chance.

The move works in the physical coordinates y of a one-neutrino decay: the lab
momenta of the visible system's daughters (the hadron of pi nu or K nu alone;
the resonance's two or three daughters otherwise) and omega, the tau's
direction in the visible system's rest frame (``simulators.tau.mass_shell``).
It scales one charged hadron's momentum by lambda (log lambda symmetric about
0), everything else in y kept, so photons, every particle's direction, the
deposits and so most of the image stay as they were. In the three-prong decay
half the steps (by default) scale all three pions together: one pion alone is
held by the other two, which fix much of the visible system between them.
From y it solves for the simulator's own choices x: the tau's momentum, the
visible system's angles in the tau frame, the resonance's mass, and its
daughters' angles or Dalitz variables and orientation. The engine weighs every
site's density itself; what the map adds to the acceptance ratio is its
Jacobian: that of x -> y at both ends (taken by central differences) and
lambda^3 for each momentum scaled. The resonance's mass is accepted by
rejection against a weight w(m) with a uniform draw u; the move keeps u / w(m),
which keeps the candidate accepted and adds w(m') / w(m) to the ratio.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Mapping, Optional, Sequence

import numpy as np

from simulators.tau import kinematics as kin
from simulators.tau.channels import CHANNELS, Channel
from simulators.tau.decays import mass_weight
from simulators.tau.mass_shell import direction_on_shell, tau_on_shell, visible_angles
from simulators.tau.particles import NEUTRINO, TAU_MASS, Response
from simulators.tau_decay import MOMENTUM_PRIOR

if TYPE_CHECKING:  # the simulator's process never loads the engine
    from inference.trace import Choice, Trace

SMALLEST_STEP = 0.003
LARGEST_STEP = 1.0
"""The standard deviation of log lambda is log-uniform between these: the energy's posterior is
about 75% wide where only the deposit measures it and a few per cent where the MET adds a lot."""
DIFFERENCE_STEP = 1e-6
"""Step of the central differences in y (GeV, or unit-free for omega's cos theta and phi)."""


def _orientation_angles(first: np.ndarray, second: np.ndarray) -> tuple[float, float, float]:
    """(cos theta, phi, psi) of the rotation ``kin.rotation`` that ``kin.three_body_momenta`` used:
    the first daughter along its z axis, the second in its xz plane."""
    z_axis = first / np.linalg.norm(first)
    x_axis = second - (second @ z_axis) * z_axis
    x_axis /= np.linalg.norm(x_axis)
    rotation = np.column_stack([x_axis, np.cross(z_axis, x_axis), z_axis])
    return (float(rotation[2, 2]), math.atan2(rotation[1, 2], rotation[0, 2]),
            math.atan2(rotation[2, 1], -rotation[2, 0]))


class DecayCoordinates:
    """The map from a one-neutrino channel's physical coordinates y to the simulator's choices x.

    y is the visible daughters' lab momenta (3 each) followed by omega's (cos theta, phi); x is
    ``names`` in order: px, py, pz, tau_cos_theta, tau_phi, then for a resonance R its
    ``R_mass_candidate`` and either ``R_cos_theta``, ``R_phi`` (two daughters) or
    ``R_s12_candidate``, ``R_s23_candidate``, ``R_cos_theta``, ``R_phi``, ``R_psi`` (three).
    """

    def __init__(self, channel: Channel) -> None:
        visible = [species for _, species in channel.daughters if species.response != Response.INVISIBLE]
        self.masses = tuple(species.mass for species in visible)
        self.charged_hadrons = tuple(index for index, species in enumerate(visible)
                                     if species.response == Response.HADRONIC)
        self.resonance = channel.resonance
        names = ["px", "py", "pz", "tau_cos_theta", "tau_phi"]
        if self.resonance is not None:
            decay = (("s12_candidate", "s23_candidate", "cos_theta", "phi", "psi") if len(visible) == 3
                     else ("cos_theta", "phi"))
            names += [f"{self.resonance.name}_{name}" for name in ("mass_candidate", *decay)]
        self.names = tuple(names)
        self.angle_indices = tuple(index for index, name in enumerate(names) if name.endswith(("_phi", "_psi")))
        """Entries of x that are azimuths, whose differences wrap at pi."""

    def physical(self, x: np.ndarray) -> np.ndarray:
        """y for the simulator's choices x: the decay as ``simulators.tau.decays`` builds it."""
        tau = kin.four_vector(TAU_MASS, x[:3])
        mass = self.masses[0] if self.resonance is None else float(x[5])
        rest = kin.four_vector(mass, kin.two_body_momentum(TAU_MASS, mass, NEUTRINO.mass)
                               * kin.direction(float(x[3]), float(x[4])))
        visible = kin.boost(rest, tau)
        if self.resonance is None:
            daughters = [visible]
        elif len(self.masses) == 2:
            momentum = kin.two_body_momentum(mass, *self.masses) * kin.direction(float(x[6]), float(x[7]))
            daughters = [kin.boost(kin.four_vector(self.masses[0], momentum), visible),
                         kin.boost(kin.four_vector(self.masses[1], -momentum), visible)]
        else:
            orientation = kin.rotation(float(x[8]), float(x[9]), float(x[10]))
            daughters = [kin.boost(p4, visible) for p4 in
                         kin.three_body_momenta(mass, self.masses, float(x[6]), float(x[7]), orientation)]
        omega = kin.angles(direction_on_shell(tau, visible))
        return np.concatenate([p4[1:] for p4 in daughters] + [np.array(omega)])

    def _daughters(self, y: np.ndarray) -> list[np.ndarray]:
        return [kin.four_vector(mass, y[3 * index:3 * index + 3]) for index, mass in enumerate(self.masses)]

    def choices(self, y: np.ndarray) -> Optional[np.ndarray]:
        """x for the physical coordinates y; None where no tau decays into them (a visible mass
        above the tau's)."""
        daughters = self._daughters(y)
        visible = np.sum(daughters, axis=0)
        visible_mass = kin.invariant_mass(visible)
        if visible_mass >= TAU_MASS - NEUTRINO.mass:
            return None
        omega = kin.direction(float(y[-2]), float(y[-1]))
        tau = tau_on_shell(visible, omega)
        x = [*tau[1:], *visible_angles(tau, visible)]
        if self.resonance is None:
            return np.array(x)
        x.append(visible_mass)
        rest = [kin.to_rest_frame(p4, visible) for p4 in daughters]
        if len(rest) == 2:
            x += kin.angles(rest[0][1:])
        else:
            x += [kin.invariant_mass(rest[0] + rest[1]) ** 2, kin.invariant_mass(rest[1] + rest[2]) ** 2]
            x += _orientation_angles(rest[0][1:], rest[1][1:])
        return np.array(x)

    def log_volume(self, y: np.ndarray) -> float:
        """log |det dx/dy| at y, by central differences."""
        columns = []
        for index in range(len(y)):
            step = np.zeros(len(y))
            step[index] = DIFFERENCE_STEP
            ahead, behind = self.choices(y + step), self.choices(y - step)
            if ahead is None or behind is None:
                return -math.inf
            difference = ahead - behind
            for angle in self.angle_indices:
                difference[angle] = math.remainder(difference[angle], 2.0 * math.pi)
            columns.append(difference / (2.0 * DIFFERENCE_STEP))
        return float(np.linalg.slogdet(np.column_stack(columns))[1])

    def log_weight(self, x: np.ndarray) -> float:
        """log w(m) of the resonance's mass in x, its rejection loop's weight (0 without a resonance)."""
        if self.resonance is None:
            return 0.0
        return math.log(mass_weight(self.resonance, self.masses, float(x[5])))

    def scale_hadrons(self, x: np.ndarray, hadrons: Sequence[int],
                      log_scale: float) -> Optional[tuple[np.ndarray, float]]:
        """The choices after the momenta of the visible daughters numbered ``hadrons`` are scaled
        by e^log_scale with the rest of y kept, and the log of what the acceptance needs besides
        the targets' ratio over x: lambda^3 per daughter, the Jacobians at both ends and
        w(m') / w(m). None where no tau decays into the scaled daughters (or, within the
        differences' step, nearly none)."""
        y = self.physical(x)
        moved = y.copy()
        for hadron in hadrons:
            moved[3 * hadron:3 * hadron + 3] *= math.exp(log_scale)
        new_x = self.choices(moved)
        if new_x is None:
            return None
        volumes = self.log_volume(moved), self.log_volume(y)
        if not all(map(math.isfinite, volumes)):
            return None
        log_ratio = (3.0 * len(hadrons) * log_scale + volumes[0] - volumes[1]
                     + self.log_weight(new_x) - self.log_weight(x))
        return new_x, log_ratio


def _last_named(trace: "Trace", name: str) -> Optional["Choice"]:
    """The last choice carrying ``name``: a rejection loop's accepted candidate."""
    found = None
    for choice in trace.choices:
        if choice.name == name:
            found = choice
    return found


def log_scale_step(rng: np.random.Generator) -> float:
    """log lambda: Normal about 0 with a standard deviation drawn log-uniformly, so symmetric."""
    return math.exp(rng.uniform(math.log(SMALLEST_STEP), math.log(LARGEST_STEP))) * float(rng.normal())


class HadronEnergyMove:
    """The charged-hadron energy step for ``simulators.tau_decay`` traces, as a model move of the
    SMC and joint-RMH engines (``tempered_smc(..., model_moves=[HadronEnergyMove()])``).

    It applies to the one-neutrino channels, picking one of their charged hadrons at random, or
    all of them where there are several; for leptonic traces it proposes nothing and the engine
    takes another step instead.

    Args:
        momentum_prior: the uniform ranges of px, py and pz, as the simulator draws them;
            a step outside them is rejected without a run.
        together: the probability that a step of a three-prong decay scales all its charged
            hadrons at once. It does not depend on the trace, so the step stays its own reverse.
    """

    def __init__(self, momentum_prior: Optional[Mapping[str, tuple[float, float]]] = None,
                 together: float = 0.5) -> None:
        if not 0.0 <= together <= 1.0:
            raise ValueError(f"together must be a probability in [0, 1], got {together}")
        self.momentum_prior = dict(MOMENTUM_PRIOR if momentum_prior is None else momentum_prior)
        self.together = together
        self._coordinates = {index: DecayCoordinates(channel) for index, channel in enumerate(CHANNELS.channels)
                             if not channel.v_minus_a}

    def propose(self, trace: "Trace", rng: np.random.Generator) -> Optional[tuple[dict[str, np.ndarray], float]]:
        """New values by site key and the log ratio the acceptance needs besides the targets';
        None where the trace has no one-neutrino decay to step."""
        channel = trace.named("channel")
        if channel is None or int(channel.value) not in self._coordinates:
            return None
        coordinates = self._coordinates[int(channel.value)]
        sites = [_last_named(trace, name) for name in coordinates.names]
        if any(site is None for site in sites):
            return None
        x = np.array([float(site.value) for site in sites])
        hadrons = coordinates.charged_hadrons
        if len(hadrons) == 1 or rng.random() >= self.together:
            hadrons = (int(rng.choice(hadrons)),)
        scaled = coordinates.scale_hadrons(x, hadrons, log_scale_step(rng))
        if scaled is None or not self._inside(scaled[0]):
            return {}, -math.inf
        new_x, log_ratio = scaled
        proposed = {site.key: np.array(value, dtype=np.float64) for site, value in zip(sites, new_x)}
        if coordinates.resonance is not None:
            # u / w(m) kept: the accepted candidate stays accepted (the factor is in log_ratio).
            accept = _last_named(trace, f"{coordinates.resonance.name}_accept")
            factor = math.exp(coordinates.log_weight(new_x) - coordinates.log_weight(x))
            proposed[accept.key] = np.array(float(accept.value) * factor, dtype=np.float64)
        return proposed, log_ratio

    def _inside(self, x: np.ndarray) -> bool:
        return all(low < value < high for value, (low, high)
                   in zip(x[:3], (self.momentum_prior[name] for name in ("px", "py", "pz"))))
