"""A move along the neutrino's mass shell: the tau's momentum changes while its visible products stay put.

In every one-neutrino channel (pi nu, K nu and the resonance channels) the tau
decays in two bodies, the visible system V (a pion, kaon or resonance) and the
neutrino, with V's direction in the tau's frame given by ``tau_cos_theta`` and
``tau_phi``. Everything the calorimeter sees follows from V's lab
four-momentum p_V and the choices made in V's own frame, so the image's
likelihood is the same for every tau momentum P that leaves p_V unchanged: those
with P - p_V massless, a closed sheet (an ellipsoid) in P's space. In V's rest
frame the tau's momentum on that sheet has the fixed size (M^2 - m_V^2) / (2 m_V),
so its direction omega there parametrises the sheet without folds.

The move walks omega (a symmetric step on the sphere, of a size drawn afresh each
time from a wide range) and sets P and V's angles in the tau frame to match, every
other choice kept. In the coordinates (p_V, omega) the prior's measure
d^3P dcos(theta) dphi is E_P / E_V d^3p_V domega up to a factor of the masses
(both are two-body phase space written from either side), so with p_V fixed the
Metropolis-Hastings ratio carries E_P' / E_P besides the target's ratio. The
image then stays as it was and only the missing transverse momentum and the
prior's bounds on P judge the step: this is the traverse of the sheet that
single-site and joint Gaussian steps cannot make once the image has pinned V
(``benchmarks/RESULTS.md``, tempered SMC on the events with photons).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Mapping, Optional

import numpy as np

from simulators.tau import kinematics as kin
from simulators.tau_decay import MOMENTUM_PRIOR
from simulators.tau.channels import CHANNELS
from simulators.tau.particles import TAU_MASS

if TYPE_CHECKING:  # the simulator's process never loads the engine
    from inference.trace import Trace

SMALLEST_STEP = 0.003
LARGEST_STEP = 1.0
"""The step on the sphere (radians, roughly) is log-uniform between these: the sheet's posterior
is narrow where the MET is well measured and wide where it is not, and a mixture of sizes is
still a symmetric proposal."""
MOMENTUM_SITES = ("px", "py", "pz")
ANGLE_SITES = ("tau_cos_theta", "tau_phi")


def shell_momentum(visible_mass: float) -> float:
    """The tau's momentum in the visible system's rest frame when the neutrino is massless."""
    return (TAU_MASS ** 2 - visible_mass ** 2) / (2.0 * visible_mass)


def direction_on_shell(tau: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """The unit direction of the tau (lab four-vector) in the visible system's rest frame."""
    momentum = kin.to_rest_frame(tau, visible)[1:]
    return momentum / np.linalg.norm(momentum)


def tau_on_shell(visible: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """The tau's lab four-vector on the sheet of ``visible`` at ``direction`` (in V's rest frame)."""
    rest = kin.four_vector(TAU_MASS, shell_momentum(kin.invariant_mass(visible)) * direction)
    return kin.boost(rest, visible)


def visible_angles(tau: np.ndarray, visible: np.ndarray) -> tuple[float, float]:
    """(cos theta, phi) of the visible system's direction in the tau's rest frame."""
    return kin.angles(kin.to_rest_frame(visible, tau)[1:])


def step_on_sphere(direction: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random unit vector near ``direction``; its density depends only on the angle between the two."""
    size = math.exp(rng.uniform(math.log(SMALLEST_STEP), math.log(LARGEST_STEP)))
    moved = direction + size * rng.normal(size=3)
    return moved / np.linalg.norm(moved)


def walk_on_shell(momentum: np.ndarray, visible: np.ndarray, rng: np.random.Generator
                  ) -> tuple[np.ndarray, float, float, float]:
    """A step along the mass shell from tau momentum ``momentum`` (3-vector) with ``visible`` kept.

    Returns the new tau momentum, the visible system's new (cos theta, phi) in the
    tau frame, and log E_P' - log E_P, the change of measure the acceptance ratio needs.
    """
    tau = kin.four_vector(TAU_MASS, momentum)
    moved = tau_on_shell(visible, step_on_sphere(direction_on_shell(tau, visible), rng))
    cos_theta, phi = visible_angles(moved, visible)
    return moved[1:], cos_theta, phi, math.log(moved[0]) - math.log(tau[0])


class MassShellMove:
    """The mass-shell step for ``simulators.tau_decay`` traces, as a model move of the SMC and
    joint-RMH engines (``tempered_smc(..., model_moves=[MassShellMove()])``).

    It applies to the one-neutrino channels; for leptonic traces (two neutrinos) it
    proposes nothing and the engine takes another step instead.

    Args:
        momentum_prior: the uniform ranges of px, py and pz, as the simulator draws them;
            a step outside them is rejected without a run.
    """

    def __init__(self, momentum_prior: Optional[Mapping[str, tuple[float, float]]] = None) -> None:
        self.momentum_prior = dict(MOMENTUM_PRIOR if momentum_prior is None else momentum_prior)

    def propose(self, trace: "Trace", rng: np.random.Generator) -> Optional[tuple[dict[str, np.ndarray], float]]:
        """New values by site key and the log ratio the acceptance needs besides the targets';
        None where the trace has no mass shell to walk."""
        channel = trace.named("channel")
        visible = trace.named("visible_momentum")
        sites = [trace.named(name) for name in MOMENTUM_SITES + ANGLE_SITES]
        if (channel is None or visible is None or any(site is None for site in sites)
                or CHANNELS[int(channel.value)].v_minus_a):
            return None
        momentum = np.array([float(site.value) for site in sites[:3]])
        new_momentum, cos_theta, phi, log_ratio = walk_on_shell(momentum, np.asarray(visible.value, float), rng)
        inside = all(low < value < high for value, (low, high)
                     in zip(new_momentum, (self.momentum_prior[name] for name in MOMENTUM_SITES)))
        values = [*new_momentum, cos_theta, phi]
        proposed = {site.key: np.array(value, dtype=np.float64) for site, value in zip(sites, values)}
        return proposed, log_ratio if inside else -math.inf
