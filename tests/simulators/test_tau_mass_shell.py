"""The mass-shell move (``simulators.tau.mass_shell``): its kinematics against the simulator's, the
image it leaves untouched, and the change of measure that keeps the prior invariant."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from inference.local import LocalSimulator
from inference.mcmc import replay_with
from simulators import tau_decay
from simulators.tau import kinematics as kin
from simulators.tau import mass_shell
from simulators.tau.channels import CHANNELS, RHO
from simulators.tau.mass_shell import MassShellMove
from simulators.tau.particles import CHARGED_PION, TAU_MASS


@pytest.fixture(scope="module")
def event_and_traces():
    """A likelihood-image event and 40 prior traces run against it."""
    simulator = LocalSimulator(tau_decay.make_model(image_source="likelihood"))
    _, observation = tau_decay.generate_event(1234, image_source="likelihood")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        traces = simulator.prior(40, observation)
    return simulator, observation, traces


def _one_neutrino(traces):
    return [trace for trace in traces if not CHANNELS[int(trace.named("channel").value)].v_minus_a]


def _observed(trace, name):
    return next(choice for choice in trace.observes if choice.name == name)


def test_the_sheet_coordinates_invert_the_simulators_decay(event_and_traces):
    _, _, traces = event_and_traces
    hadronic = _one_neutrino(traces)
    assert len(hadronic) >= 10
    for trace in hadronic:
        tau = kin.four_vector(TAU_MASS, np.array([float(trace.named(name).value) for name in ("px", "py", "pz")]))
        visible = np.asarray(trace.named("visible_momentum").value)
        rebuilt = mass_shell.tau_on_shell(visible, mass_shell.direction_on_shell(tau, visible))
        np.testing.assert_allclose(rebuilt, tau, atol=1e-9)
        cos_theta, phi = mass_shell.visible_angles(tau, visible)
        assert cos_theta == pytest.approx(float(trace.named("tau_cos_theta").value), abs=1e-9)
        assert phi == pytest.approx(float(trace.named("tau_phi").value), abs=1e-9)


def test_a_step_moves_the_tau_but_leaves_the_image_and_its_likelihood(event_and_traces):
    simulator, observation, traces = event_and_traces
    move, rng = MassShellMove(), np.random.default_rng(0)
    moved = 0
    for trace in _one_neutrino(traces):
        values, log_ratio = move.propose(trace, rng)
        if not math.isfinite(log_ratio):
            continue
        replay = replay_with(trace, values)
        candidate = simulator.run(replay, observation)
        assert not replay.fresh
        assert candidate.address_keys == trace.address_keys
        np.testing.assert_allclose(candidate.named("visible_momentum").value, trace.named("visible_momentum").value,
                                   atol=1e-9)
        assert _observed(candidate, "calorimeter").log_prob == pytest.approx(
            _observed(trace, "calorimeter").log_prob, abs=1e-6)
        assert float(candidate.named("px").value) != float(trace.named("px").value)
        energies = [math.sqrt(TAU_MASS ** 2 + sum(float(t.named(n).value) ** 2 for n in ("px", "py", "pz")))
                    for t in (trace, candidate)]
        assert log_ratio == pytest.approx(math.log(energies[1] / energies[0]), abs=1e-9)
        moved += 1
    assert moved >= 5


def test_leptonic_traces_have_no_shell_and_steps_out_of_the_prior_are_refused(event_and_traces):
    _, _, traces = event_and_traces
    leptonic = [trace for trace in traces if CHANNELS[int(trace.named("channel").value)].v_minus_a]
    assert leptonic and all(MassShellMove().propose(trace, np.random.default_rng(0)) is None for trace in leptonic)
    narrow = MassShellMove({"px": (30.0, 50.0), "py": (-3.0, 3.0), "pz": (-1e-9, 1e-9)})
    _, log_ratio = narrow.propose(_one_neutrino(traces)[0], np.random.default_rng(0))
    assert log_ratio == -math.inf


def _prior_draw(rng: np.random.Generator, box: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """A tau momentum and visible direction from the prior, with the visible system (a pion or a
    rho of the pole mass) they give."""
    momentum = rng.uniform(box[:, 0], box[:, 1])
    cos_theta, phi = rng.uniform(-1.0, 1.0), rng.uniform(-math.pi, math.pi)
    mass = CHARGED_PION.mass if rng.random() < 0.5 else RHO.mass
    rest = kin.four_vector(mass, kin.two_body_momentum(TAU_MASS, mass, 0.0) * kin.direction(cos_theta, phi))
    return momentum, cos_theta, kin.boost(rest, kin.four_vector(TAU_MASS, momentum))


def test_with_its_change_of_measure_the_walk_keeps_the_prior():
    """Prior draws walked 20 steps along their shells with only the prior as target must stay prior
    draws: the mean px (uniform on 30-50) and mean cos theta (uniform on -1-1) within 4 standard
    errors. Without the E_P' / E_P factor the same walks drift to low px (-5.4 standard errors with
    this seed), which shows the check can fail."""
    box = np.array([[30.0, 50.0], [-3.0, 3.0], [-3.0, 3.0]])
    draws = 4000
    for corrected in (True, False):
        rng = np.random.default_rng(0)
        px, cos_theta = np.empty(draws), np.empty(draws)
        for index in range(draws):
            momentum, cos, visible = _prior_draw(rng, box)
            for _ in range(20):
                new_momentum, new_cos, _, log_ratio = mass_shell.walk_on_shell(momentum, visible, rng)
                inside = bool(np.all((box[:, 0] < new_momentum) & (new_momentum < box[:, 1])))
                if inside and math.log(rng.random()) < (log_ratio if corrected else 0.0):
                    momentum, cos = new_momentum, new_cos
            px[index], cos_theta[index] = momentum[0], cos
        px_error = (px.mean() - 40.0) / (20.0 / math.sqrt(12 * draws))
        if corrected:
            assert abs(px_error) < 4
            assert abs(cos_theta.mean()) < 4 / math.sqrt(3 * draws)
        else:
            assert px_error < -4
