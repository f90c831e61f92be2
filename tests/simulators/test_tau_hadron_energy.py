"""The charged-hadron energy move (``simulators.tau.hadron_energy``): its coordinates against the
simulator's decay, what a step keeps, and the change of measure that keeps the prior invariant."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from inference.local import LocalSimulator
from inference.mcmc import replay_with
from simulators import tau_decay
from simulators.tau.channels import CHANNELS, RHO
from simulators.tau.decays import _mass_ceiling, mass_weight
from simulators.tau.hadron_energy import DecayCoordinates, HadronEnergyMove, log_scale_step
from simulators.tau.particles import CHARGED_PION, NEUTRAL_PION, Response

PI_NU = CHANNELS.names.index("pi nu")


@pytest.fixture(scope="module")
def event_and_traces():
    """A likelihood-image event and 60 prior traces run against it (every hadronic channel but
    the two with kaons, whose fractions are below 1%)."""
    simulator = LocalSimulator(tau_decay.make_model(image_source="likelihood"))
    _, observation = tau_decay.generate_event(1234, image_source="likelihood")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        traces = simulator.prior(60, observation)
    return simulator, observation, traces


def _channel(trace) -> int:
    return int(trace.named("channel").value)


def _hadronic(traces):
    return [trace for trace in traces if not CHANNELS[_channel(trace)].v_minus_a]


def _last(trace, name):
    return [choice for choice in trace.choices if choice.name == name][-1]


def _choices(trace, coordinates: DecayCoordinates) -> np.ndarray:
    return np.array([float(_last(trace, name).value) for name in coordinates.names])


def _visible_labels(channel: int) -> list[str]:
    return [label for label, species in CHANNELS[channel].daughters if species.response != Response.INVISIBLE]


def _angle_difference(coordinates: DecayCoordinates, difference: np.ndarray) -> np.ndarray:
    difference = difference.copy()
    for index in coordinates.angle_indices:
        difference[index] = math.remainder(difference[index], 2.0 * math.pi)
    return difference


def _run_step(simulator, observation, move, trace, rng):
    """The replay and candidate trace of the step ``move`` proposes from ``trace``, with its log
    ratio; None where the move refuses the step without a run."""
    values, log_ratio = move.propose(trace, rng)
    if not math.isfinite(log_ratio):
        return None
    replay = replay_with(trace, values)
    return replay, simulator.run(replay, observation), log_ratio


def test_the_coordinates_reproduce_and_invert_the_simulators_decay(event_and_traces):
    _, _, traces = event_and_traces
    hadronic = _hadronic(traces)
    assert {CHANNELS[_channel(trace)].name for trace in hadronic} >= {"pi nu", "pi pi0 nu", "pi 2pi0 nu", "3pi nu"}
    for trace in hadronic:
        coordinates = DecayCoordinates(CHANNELS[_channel(trace)])
        x = _choices(trace, coordinates)
        y = coordinates.physical(x)
        tagged = [np.asarray(trace.named(f"{label}_momentum").value)[1:] for label in _visible_labels(_channel(trace))]
        np.testing.assert_allclose(y[:-2], np.concatenate(tagged), atol=1e-9)
        np.testing.assert_allclose(_angle_difference(coordinates, coordinates.choices(y) - x), 0.0, atol=1e-9)


def test_a_step_scales_one_hadron_or_all_three_prongs_and_keeps_photons_directions_deposits_and_structure(
        event_and_traces):
    simulator, observation, traces = event_and_traces
    move, rng = HadronEnergyMove(), np.random.default_rng(0)
    moved, three_prongs_together = 0, 0
    for trace in _hadronic(traces):
        step = _run_step(simulator, observation, move, trace, rng)
        if step is None:
            continue
        replay, candidate, _ = step
        if replay.fresh or candidate.address_keys != trace.address_keys:
            # Under the new mass a three-body decay's rejected Dalitz candidate can leave its
            # bounding box or fall inside the boundary; the engine rejects such a step.
            assert CHANNELS[_channel(trace)].name in ("pi 2pi0 nu", "3pi nu")
            continue
        scales = {}
        for label in _visible_labels(_channel(trace)):
            before = np.asarray(trace.named(f"{label}_momentum").value)[1:]
            after = np.asarray(candidate.named(f"{label}_momentum").value)[1:]
            np.testing.assert_allclose(after / np.linalg.norm(after), before / np.linalg.norm(before), atol=1e-9)
            if not np.allclose(after, before, atol=1e-9):
                scales[label] = np.linalg.norm(after) / np.linalg.norm(before)
        assert all(label.startswith("pi") and not label.startswith("pi0") for label in scales)
        assert len(scales) == 1 or (CHANNELS[_channel(trace)].name == "3pi nu" and len(scales) == 3)
        assert np.ptp(list(scales.values())) < 1e-9
        three_prongs_together += len(scales) == 3
        for choice in trace.samples:
            if not (choice.name.endswith("_deposit") or choice.address.startswith("pi0")):
                continue
            np.testing.assert_array_equal(candidate.named(choice.name).value, choice.value)
        moved += 1
    assert moved >= 10 and three_prongs_together >= 1


def test_the_ratio_is_the_jacobian_of_the_map_in_the_simulators_choices(event_and_traces):
    """The move's log ratio, less the resonance weight's, equals log |det dx'/dx| of the map it
    makes, differentiated directly in x by central differences."""
    _, _, traces = event_and_traces
    checked, beyond_the_scaling, log_scale = set(), [], 0.3
    for trace in _hadronic(traces):
        coordinates = DecayCoordinates(CHANNELS[_channel(trace)])
        x = _choices(trace, coordinates)
        for hadrons in {coordinates.charged_hadrons[-1:], coordinates.charged_hadrons}:
            scaled = coordinates.scale_hadrons(x, hadrons, log_scale)
            if scaled is None:  # the visible mass would pass the tau's
                continue
            new_x, log_ratio = scaled
            step, columns = 1e-6, []
            for index in range(len(x)):
                shift = np.zeros(len(x))
                shift[index] = step
                ahead = coordinates.scale_hadrons(x + shift, hadrons, log_scale)[0]
                behind = coordinates.scale_hadrons(x - shift, hadrons, log_scale)[0]
                columns.append(_angle_difference(coordinates, ahead - behind) / (2.0 * step))
            log_jacobian = np.linalg.slogdet(np.column_stack(columns))[1]
            weight_ratio = coordinates.log_weight(new_x) - coordinates.log_weight(x)
            assert log_ratio - weight_ratio == pytest.approx(log_jacobian, abs=1e-4)
            beyond_the_scaling.append(abs(log_jacobian - 3.0 * len(hadrons) * log_scale))
            checked.add((CHANNELS[_channel(trace)].name, len(hadrons)))
    assert {name for name, _ in checked} >= {"pi nu", "pi pi0 nu", "pi 2pi0 nu", "3pi nu"}
    assert ("3pi nu", 3) in checked
    assert max(beyond_the_scaling) > 0.1  # the decay's coordinates add to lambda^3


def test_the_resonance_stays_accepted_with_its_weight_in_the_ratio(event_and_traces):
    _, _, traces = event_and_traces
    move, rng = HadronEnergyMove(), np.random.default_rng(3)
    trace = next(trace for trace in traces if CHANNELS[_channel(trace)].name == "pi pi0 nu")
    values, _ = move.propose(trace, rng)
    accept = _last(trace, "rho_accept")
    masses = (CHARGED_PION.mass, NEUTRAL_PION.mass)
    weights = [mass_weight(RHO, masses, float(mass)) for mass in (trace.named("rho_mass").value,
                                                                    values[_last(trace, "rho_mass_candidate").key])]
    assert float(values[accept.key]) == pytest.approx(float(accept.value) * weights[1] / weights[0], rel=1e-12)
    assert float(values[accept.key]) * _mass_ceiling(RHO, masses) < weights[1]


def test_leptonic_traces_are_left_and_steps_out_of_the_prior_are_refused(event_and_traces):
    _, _, traces = event_and_traces
    leptonic = [trace for trace in traces if CHANNELS[_channel(trace)].v_minus_a]
    assert leptonic and all(HadronEnergyMove().propose(trace, np.random.default_rng(0)) is None for trace in leptonic)
    narrow = HadronEnergyMove({"px": (30.0, 50.0), "py": (-3.0, 3.0), "pz": (-1e-9, 1e-9)})
    _, log_ratio = narrow.propose(_hadronic(traces)[0], np.random.default_rng(0))
    assert log_ratio == -math.inf


def test_a_probability_outside_zero_to_one_is_refused_by_name():
    with pytest.raises(ValueError, match="together must be a probability in \\[0, 1\\], got 1.5"):
        HadronEnergyMove(together=1.5)


def test_with_its_change_of_measure_the_walk_keeps_the_prior():
    """pi nu prior draws walked 30 steps with only the prior as target must stay prior draws: the
    mean px (uniform on 30-50) within 4 standard errors. Without the Jacobian the same walks drift
    to low px (-8.2 standard errors with this seed; +1.5 with it), which shows the check can fail."""
    coordinates = DecayCoordinates(CHANNELS[PI_NU])
    box = np.array([tau_decay.MOMENTUM_PRIOR[name] for name in ("px", "py", "pz")])
    draws = 400
    for corrected in (True, False):
        rng = np.random.default_rng(0)
        px = np.empty(draws)
        for index in range(draws):
            x = np.concatenate([rng.uniform(box[:, 0], box[:, 1]), [rng.uniform(-1.0, 1.0),
                                                                     rng.uniform(-math.pi, math.pi)]])
            for _ in range(30):
                new_x, log_ratio = coordinates.scale_hadrons(x, (0,), log_scale_step(rng))
                inside = bool(np.all((box[:, 0] < new_x[:3]) & (new_x[:3] < box[:, 1])))
                if inside and math.log(rng.random()) < (log_ratio if corrected else 0.0):
                    x = new_x
            px[index] = x[0]
        px_error = (px.mean() - 40.0) / (20.0 / math.sqrt(12 * draws))
        if corrected:
            assert abs(px_error) < 4
        else:
            assert px_error < -4


def _walk_with_prior_target(simulator, observation, traces, steps: int, corrected: bool,
                            move: HadronEnergyMove) -> np.ndarray:
    """Per trace, what ``steps`` of ``move`` with the simulator's whole prior as target change in
    (log hadron energy, px, E_vis): zero on average wherever the steps keep the prior."""
    rng = np.random.default_rng(1)

    def summary(trace):
        hadron = next(label for label, species in CHANNELS[_channel(trace)].daughters
                      if species.response == Response.HADRONIC)
        return np.array([math.log(float(trace.named(f"{hadron}_momentum").value[0])), float(trace.named("px").value),
                         float(trace.named("visible_momentum").value[0])])

    changes = []
    for start in traces:
        trace = start
        for _ in range(steps):
            step = _run_step(simulator, observation, move, trace, rng)
            if step is None:
                continue
            replay, candidate, log_ratio = step
            if replay.fresh or candidate.address_keys != trace.address_keys:
                continue
            if math.log(rng.random()) < candidate.log_prior - trace.log_prior + (log_ratio if corrected else 0.0):
                trace = candidate
        changes.append(summary(trace) - summary(start))
    return np.array(changes)


def _prior_walk_errors(seed: int, draws: int, channels: set[str], move: HadronEnergyMove) -> dict[bool, np.ndarray]:
    """Standard errors of the mean change in (log hadron energy, px, E_vis) over prior traces of
    ``channels`` (``draws`` drawn with torch seed ``seed``) walked 10 steps of ``move``, with its
    ratio (True) and without (False)."""
    simulator = LocalSimulator(tau_decay.make_model(image_source="likelihood"))
    _, observation = tau_decay.generate_event(1234, image_source="likelihood")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        traces = [trace for trace in simulator.prior(draws, observation)
                  if CHANNELS[_channel(trace)].name in channels]
    errors = {}
    for corrected in (True, False):
        changes = _walk_with_prior_target(simulator, observation, traces, 10, corrected, move)
        errors[corrected] = changes.mean(axis=0) / (changes.std(axis=0) / math.sqrt(len(changes)))
    return errors


@pytest.mark.slow
@pytest.mark.timeout(1200)  # some 20,000 simulator runs: about 2 minutes on 2 cores
def test_through_the_simulator_the_steps_keep_the_whole_prior():
    """The move replayed through the simulator, with every site's prior density (deposits,
    rejected candidates, the resonance's accept draw) judging it: 929 hadronic prior traces walked
    10 steps change log hadron energy, px and E_vis by zero on average, within 4 standard errors
    of the paired differences (-1.03, -0.92, -0.79 with these seeds); without the move's ratio they
    drift by -4.9, -6.4 and -4.5."""
    hadronic = {channel.name for channel in CHANNELS.channels if not channel.v_minus_a}
    errors = _prior_walk_errors(5, 1500, hadronic, HadronEnergyMove())
    assert np.all(np.abs(errors[True]) < 4), errors[True]
    assert errors[False][1] < -4, errors[False]


@pytest.mark.slow
@pytest.mark.timeout(600)  # some 6,000 simulator runs: about a minute on 2 cores
def test_through_the_simulator_three_prongs_scaled_together_keep_the_whole_prior():
    """As above for the step that scales all three pions of 3pi nu at once: 288 prior traces walked
    10 steps change log E(pi1), px and E_vis by -0.04, +0.59 and +0.00 standard errors with these
    seeds; without the ratio (lambda^9 and the Jacobians) by -8.0, -4.8 and -7.7."""
    errors = _prior_walk_errors(11, 3000, {"3pi nu"}, HadronEnergyMove(together=1.0))
    assert np.all(np.abs(errors[True]) < 4), errors[True]
    assert errors[False][0] < -4, errors[False]
