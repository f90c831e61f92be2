import math

import numpy as np
import pytest
import torch

import ppx
from ppx.messages import RECORD_OBSERVE, RECORD_SAMPLE, SITE_STAGE
from ppx.runtime import Site, run_model
from ppx.simulator import record_prior_trace
from simulators import calorimeter, tau_decay
from simulators.tau.decays import decay_tau
from simulators.tau.kinematics import four_vector, invariant_mass
from simulators.tau import detector
from simulators.tau.particles import ELECTRON, TAU_MASS, Particle, Response

STANDARD_ERRORS = 5.0
NOISE_SITES = ("detector_seed",)
MUON_CHANNEL = tau_decay.CHANNELS.names.index("mu nu nu")
ELECTRON_CHANNEL = tau_decay.CHANNELS.names.index("e nu nu")
RHO_CHANNEL = tau_decay.CHANNELS.names.index("pi pi0 nu")


def zero_stage(kind, energy, rng):
    return tuple(np.zeros(layer.shape) for layer in calorimeter.LAYERS)


class RecordingStage:
    """A fake shower stage that deposits nothing and remembers what it was asked for."""

    def __init__(self):
        self.calls = []

    def __call__(self, kind, energy, rng):
        assert isinstance(rng, np.random.Generator)
        self.calls.append((kind, energy))
        return zero_stage(kind, energy, rng)


class ForceChannel(ppx.Handler):
    def __init__(self, channel: int):
        self.channel = channel

    def process(self, site: Site) -> None:
        if site.name == "channel":
            site.value = torch.tensor(self.channel)


class ForceDetectorSeed(ppx.Handler):
    def __init__(self, seed: float):
        self.seed = seed

    def process(self, site: Site) -> None:
        if site.name == "detector_seed":
            site.value = torch.tensor(self.seed, dtype=torch.float64)


class StageCalls(ppx.Handler):
    """Remembers the (kind, energy) of every call of the "shower" stage a model makes."""

    def __init__(self):
        self.calls = []

    def postprocess(self, site: Site) -> None:
        if site.kind == SITE_STAGE and site.name == "shower":
            kind, energy = site.stage[1]
            self.calls.append((calorimeter.KINDS[int(kind)], float(energy)))


class _Stop(Exception):
    pass


class StopAfterChannel(ppx.Handler):
    def __init__(self):
        self.channels = []

    def postprocess(self, site: Site) -> None:
        if site.name == "channel":
            self.channels.append(int(site.value))
            raise _Stop


def _records(model, channel=None):
    if channel is None:
        return record_prior_trace(model)
    with ForceChannel(channel):
        return record_prior_trace(model)


def _by_name(records):
    return {record.name: record for record in records if record.name}


def test_channel_table_holds_the_pdg_fractions_renormalised():
    table = tau_decay.CHANNELS
    assert table.names == ("e nu nu", "mu nu nu", "pi nu", "K nu", "pi pi0 nu", "pi 2pi0 nu", "3pi nu", "K pi0 nu")
    assert table.branching_fractions[table.names.index("pi pi0 nu")] == pytest.approx(0.2549)
    assert table.branching_fractions.sum() == pytest.approx(0.90899)
    assert table.fractions.sum() == pytest.approx(1.0)
    assert tau_decay.VOXELS == (35, 35, 20)


def test_channel_frequencies_match_the_branching_fractions():
    torch.manual_seed(0)
    stopper = StopAfterChannel()
    with stopper:
        for _ in range(4000):
            with pytest.raises(_Stop):
                run_model(tau_decay.make_model(zero_stage))
    counts = np.bincount(stopper.channels, minlength=len(tau_decay.CHANNELS))
    expected = tau_decay.CHANNELS.fractions * len(stopper.channels)
    standard_errors = np.sqrt(expected * (1 - tau_decay.CHANNELS.fractions))
    assert np.all(np.abs(counts - expected) <= STANDARD_ERRORS * standard_errors), (counts, expected.round(1))


@pytest.mark.parametrize("channel", range(len(tau_decay.CHANNELS)), ids=tau_decay.CHANNELS.names)
def test_decays_conserve_four_momentum(channel):
    torch.manual_seed(channel)
    definition = tau_decay.CHANNELS[channel]
    for momentum in ([0.0, 0.0, 0.0], [40.0, 2.0, -1.5], [31.0, -2.9, 2.9]):
        tau = four_vector(TAU_MASS, np.array(momentum))
        particles = decay_tau(definition, tau)
        final = [p for p in particles if p.species.response != Response.DECAYS]
        assert np.allclose(sum(p.momentum for p in final), tau, rtol=0, atol=1e-9 * tau[0])
        for particle in final:
            assert invariant_mass(particle.momentum) == pytest.approx(particle.species.mass, abs=1e-6)
        for neutral_pion in (p for p in particles if p.species.response == Response.DECAYS):
            photons = [p.momentum for p in particles if p.label.startswith(neutral_pion.label + "_gamma_")]
            assert len(photons) == 2
            assert np.allclose(photons[0] + photons[1], neutral_pion.momentum, atol=1e-9 * tau[0])
        labels = [p.label for p in particles]
        assert len(set(labels)) == len(labels)
        assert sum(p.species.response == Response.INVISIBLE for p in particles) == (
            2 if definition.v_minus_a else 1)


def test_leptonic_decays_follow_the_michel_spectrum():
    """For V-A, x = 2 E_e / m_tau in the tau rest frame has density 2 x^2 (3 - 2 x): mean 0.7,
    standard deviation 0.208 and P(x < 0.3) = 0.046. Flat phase space would give density 2 x:
    mean 2/3 and P(x < 0.3) = 0.09, both outside the tolerances."""
    torch.manual_seed(1)
    count = 1200
    at_rest = four_vector(TAU_MASS, np.zeros(3))
    fractions = np.array([2 * decay_tau(tau_decay.CHANNELS[ELECTRON_CHANNEL], at_rest)[0].momentum[0] / TAU_MASS
                          for _ in range(count)])
    assert np.mean(fractions) == pytest.approx(0.7, abs=4.0 * 0.208 / math.sqrt(count))
    soft = 2 * (0.3 ** 3 - 0.3 ** 4 / 2)
    assert np.mean(fractions < 0.3) == pytest.approx(soft, abs=STANDARD_ERRORS * math.sqrt(soft * (1 - soft) / count))


def test_rejection_loops_make_the_trace_length_vary():
    torch.manual_seed(2)
    lengths = set()
    for _ in range(40):
        records, _ = record_prior_trace(tau_decay.make_model(zero_stage))
        lengths.add(sum(record.kind == RECORD_SAMPLE for record in records))
    assert len(lengths) >= 6
    with ForceChannel(RHO_CHANNEL):
        rho_lengths = {sum(r.kind == RECORD_SAMPLE for r in record_prior_trace(tau_decay.make_model(zero_stage))[0])
                       for _ in range(20)}
    assert len(rho_lengths) >= 3  # the rho mass loop alone varies the length


def test_full_trace_names_its_latents_and_observes_calorimeter_and_met():
    torch.manual_seed(3)
    records, result = _records(tau_decay.model, RHO_CHANNEL)
    named = _by_name(records)
    for name in ("px", "py", "pz", "channel"):
        assert named[name].kind == RECORD_SAMPLE
    assert int(result) == RHO_CHANNEL
    addresses = [record.address for record in records]
    assert {"rho/rho_mass_candidate", "rho/rho_accept", "rho/rho_mass", "tau/tau_cos_theta", "rho/rho_cos_theta",
            "pi0/pi0_cos_theta"} <= set(addresses)
    assert {"pi_minus/pi_minus_momentum", "pi0/pi0_momentum", "pi0_gamma_0/pi0_gamma_0_momentum",
            "nu_tau/nu_tau_momentum", "visible_momentum"} <= set(addresses)
    # The accepted rho mass is the last candidate, and the pi pi0 system's invariant mass.
    candidates = [record.value for record in records if record.name == "rho_mass_candidate"]
    assert float(named["rho_mass"].value) == float(candidates[-1])
    pi_pi0 = named["pi_minus_momentum"].value + named["pi0_momentum"].value
    assert invariant_mass(pi_pi0) == pytest.approx(float(named["rho_mass"].value), rel=1e-9)
    observes = [record for record in records if record.kind == RECORD_OBSERVE]
    assert [record.name for record in observes] == ["calorimeter", "met"]
    calorimeter_record, met_record = observes
    assert calorimeter_record.value.shape == tau_decay.VOXELS
    assert [param.shape for param in calorimeter_record.distribution.params] == [tau_decay.VOXELS] * 2
    assert met_record.value.shape == (2,)
    assert np.all(calorimeter_record.distribution.params[1] > 0)
    image_sum = calorimeter_record.distribution.params[0].sum()
    visible_energy = named["visible_momentum"].value[0]
    photon_energy = named["pi0_momentum"].value[0]
    # The pi0's photons are contained; the charged pion leaks out of 1.2 interaction lengths.
    assert 0.7 * photon_energy < image_sum < 1.2 * visible_energy


def test_noise_choices_are_control_false_and_everything_else_is_controlled():
    torch.manual_seed(4)
    records, _ = _records(tau_decay.make_model(zero_stage), RHO_CHANNEL)
    samples = [record for record in records if record.kind == RECORD_SAMPLE]
    assert {record.name for record in samples if not record.control} == set(NOISE_SITES)
    assert sum(not record.control for record in samples) == len(NOISE_SITES)
    deposits = {record.address for record in samples if record.name.endswith("_deposit")}
    assert deposits == {"pi_minus/pi_minus_deposit", "pi0_gamma_0/pi0_gamma_0_deposit",
                        "pi0_gamma_1/pi0_gamma_1_deposit"}


def test_the_shower_stage_hook_is_used_for_every_showering_particle():
    torch.manual_seed(5)
    stage, staged = RecordingStage(), StageCalls()
    with staged:
        records, _ = _records(tau_decay.make_model(stage), RHO_CHANNEL)
    assert sorted(kind for kind, _ in staged.calls) == ["photon", "photon", "pion"]
    assert {kind for kind, _ in stage.calls} == {"photon", "pion"}
    named = _by_name(records)
    showering = [named[f"{label}_momentum"].value[0] for label in ("pi_minus", "pi0_gamma_0", "pi0_gamma_1")]
    assert sorted(energy for _, energy in staged.calls) == pytest.approx(sorted(showering))
    assert not np.any(named["calorimeter"].distribution.params[0])  # a silent stage's average is silent too


def _calorimeter(seed: int, detector_seed: float, channel: int = RHO_CHANNEL):
    torch.manual_seed(seed)
    with ForceDetectorSeed(detector_seed):
        records, _ = _records(tau_decay.model, channel)
    return _by_name(records)["calorimeter"]


def test_the_likelihood_depends_on_the_latents_not_on_the_showers_drawn():
    first, second = _calorimeter(8, 1.0), _calorimeter(8, 2.0)
    for mine, theirs in zip(first.distribution.params, second.distribution.params):
        np.testing.assert_array_equal(mine, theirs)
    assert not np.allclose(first.value, second.value)  # the reported images are different showers
    other_latents = _calorimeter(9, 1.0)
    assert not np.allclose(other_latents.distribution.params[0], first.distribution.params[0])


def test_reported_images_scatter_about_the_likelihood_as_it_says():
    """Over events of every channel, squared standardised residuals on the voxels where showers
    deposit average about 1 (the per-event average has a long tail from hadronic showers, hence
    the median); with a single shower as the likelihood's mean they averaged in the thousands."""
    per_event = []
    for seed in range(24):
        torch.manual_seed(100 + seed)
        records, _ = record_prior_trace(tau_decay.make_model())
        observed = _by_name(records)["calorimeter"]
        mean, sigma = observed.distribution.params
        active = mean > 0.05
        if active.any():
            per_event.append(float(np.mean(((observed.value[active] - mean[active]) / sigma[active]) ** 2)))
    assert len(per_event) >= 15
    assert 0.4 < np.median(per_event) < 2.0


def test_with_a_silent_stage_a_muon_leaves_only_its_ionisation_column():
    torch.manual_seed(6)
    stage = RecordingStage()
    records, _ = _records(tau_decay.make_model(stage), MUON_CHANNEL)
    assert stage.calls == []
    expected = _by_name(records)["calorimeter"].distribution.params[0]
    columns = np.argwhere(expected.sum(axis=2) > 0)
    assert len(columns) == 1
    assert np.all(expected[tuple(columns[0])] > 0)
    # About 67 MeV seen in the argon, 0.37 GeV at the electromagnetic scale.
    assert 0.2 < expected.sum() < 0.8


def test_the_module_level_hook_is_what_model_uses(monkeypatch):
    stage, staged = RecordingStage(), StageCalls()
    monkeypatch.setattr(tau_decay, "SHOWER_STAGE", stage)
    torch.manual_seed(7)
    with staged:
        _records(tau_decay.model, ELECTRON_CHANNEL)
        _records(tau_decay.make_model(), ELECTRON_CHANNEL)
    assert [kind for kind, _ in staged.calls] == ["electron", "electron"]
    assert {kind for kind, _ in stage.calls} == {"electron"}


@pytest.mark.parametrize("eta_phi", [(0.0, 0.0), (0.2, -0.3)])
def test_the_real_stage_lands_an_electron_on_its_voxels_at_the_electromagnetic_scale(eta_phi):
    eta, phi = eta_phi
    momentum = 20.0 * np.array([math.cos(phi) / math.cosh(eta), math.sin(phi) / math.cosh(eta), math.tanh(eta)])
    electron = Particle("electron", ELECTRON, four_vector(ELECTRON.mass, momentum))
    image = detector.deposit([electron], calorimeter.shower, np.random.default_rng(9))
    assert image.sum() == pytest.approx(20.0, rel=0.05)
    column = np.unravel_index(np.argmax(image.sum(axis=2)), image.shape[:2])
    assert detector.ETA_EDGES[column[0]] <= eta + 1e-9 <= detector.ETA_EDGES[column[0] + 1] + 1e-9
    assert detector.PHI_EDGES[column[1]] <= phi + 1e-9 <= detector.PHI_EDGES[column[1] + 1] + 1e-9
    depth_profile = image.sum(axis=(0, 1))
    mean_depth_mm = (depth_profile * (np.arange(20) + 0.5) * 24.0).sum() / depth_profile.sum()
    assert 150.0 < mean_depth_mm < 300.0  # about 10 X0 for 20 GeV
    assert depth_profile[:4].sum() > depth_profile[18:].sum()


def test_a_stage_returning_wrong_shapes_is_named():
    def flat_stage(kind, energy, rng):
        return np.zeros(504), np.zeros(1), np.zeros(1)

    with pytest.raises(ValueError, match="shower stage must return layers of shapes"):
        _records(tau_decay.make_model(flat_stage), ELECTRON_CHANNEL)


def test_generate_event_is_reproducible_and_consistent():
    truth, observation = tau_decay.generate_event(11)
    again, observation_again = tau_decay.generate_event(11)
    assert np.array_equal(observation["calorimeter"], observation_again["calorimeter"])
    assert truth["channel"] == again["channel"]
    assert truth["channel_name"] == tau_decay.CHANNELS.names[truth["channel"]]
    assert set(observation) == {"calorimeter", "met"}
    assert observation["calorimeter"].shape == tau_decay.VOXELS and observation["met"].shape == (2,)
    tau = four_vector(TAU_MASS, np.array([truth["px"], truth["py"], truth["pz"]]))
    final = [p for label, p in truth["momenta"].items() if not label.startswith("pi0") or "_gamma_" in label]
    assert np.allclose(sum(final), tau, atol=1e-9 * tau[0])
    assert truth["num_samples"] >= 8


def test_a_pion_with_a_large_response_factor_keeps_the_variance_above_the_noise(monkeypatch):
    """The stage's average pion shower dips below zero in a few cells; an RMH or SMC step to a
    response factor of 350 once made those cells' variance negative and the likelihood undefined."""
    from simulators.tau import observation
    from simulators.tau.particles import CHARGED_PION

    monkeypatch.setattr(observation, "_response_factor", lambda label, average_deposit, spread: 350.0)
    energy, eta, phi = 6.3, 0.14, -0.023
    transverse = energy / math.cosh(eta)
    pion = Particle("pi_plus", CHARGED_PION, np.array([energy, transverse * math.cos(phi),
                                                       transverse * math.sin(phi), transverse * math.sinh(eta)]))
    records, _ = record_prior_trace(lambda: observation.observe_calorimeter([pion], tau_decay.SHOWER_STAGE))
    mean, sigma = _by_name(records)["calorimeter"].distribution.params
    assert mean.min() < 0  # the dip the fix guards against is there
    assert np.all(sigma >= observation.NOISE_GEV)


def _residual_neighbour_correlation(calorimeters) -> tuple[float, float]:
    """Residual correlations of voxels adjacent in eta and in depth on the deposit voxels, pooled
    over events: about 0 when the image follows the likelihood."""
    from benchmarks.tau_residuals import neighbour_correlations

    pairs, correlation = neighbour_correlations(calorimeters)
    assert pairs["depth"] > 300
    return correlation["eta"], correlation["depth"]


def _calorimeters(image_source: str, seeds) -> list:
    out = []
    for seed in seeds:
        torch.manual_seed(seed)
        observed = _by_name(record_prior_trace(tau_decay.make_model(image_source=image_source))[0])["calorimeter"]
        out.append((observed.value, *observed.distribution.params))
    return out


def test_shower_images_have_correlated_residuals_that_likelihood_images_lack():
    """The likelihood treats the shower shapes' fluctuations as independent per voxel; real showers'
    residuals correlate along depth (0.47 over 26 events), which is why calibration checks draw the
    image from the likelihood. 2,000 pairs give a correlation a standard error of about 0.02."""
    seeds = range(300, 320)
    eta, depth = _residual_neighbour_correlation(_calorimeters("showers", seeds))
    assert depth > 0.3
    eta, depth = _residual_neighbour_correlation(_calorimeters("likelihood", seeds))
    assert abs(eta) < 0.1 and abs(depth) < 0.1


def test_likelihood_images_keep_the_likelihood_and_skip_the_shower_stage():
    showers, drawn = _calorimeters("showers", [11]), _calorimeters("likelihood", [11])
    for mine, theirs in zip(showers[0][1:], drawn[0][1:]):
        np.testing.assert_array_equal(mine, theirs)  # the same latents, so the same likelihood
    assert not np.allclose(showers[0][0], drawn[0][0])
    stage = RecordingStage()
    for image_source in ("showers", "likelihood"):  # the first run also builds the stage's average responses
        stage.calls.clear()
        torch.manual_seed(11)
        with ForceChannel(RHO_CHANNEL):
            record_prior_trace(tau_decay.make_model(stage, image_source=image_source))
        calls = len(stage.calls)
    assert calls == 0
    with pytest.raises(ValueError, match="image_source must be one of showers, likelihood, got 'shower'"):
        tau_decay.make_model(image_source="shower")


def test_the_simulator_process_takes_its_image_source_from_the_command_line():
    from inference.pool import SimulatorPool

    with SimulatorPool("python -m simulators.tau_decay --image-source likelihood", workers=1, timeout=120) as pool:
        traces = pool.prior(16)
    calorimeters = []
    for trace in traces:
        observed = trace.named("calorimeter")
        calorimeters.append((observed.value, observed.distribution.loc.numpy(), observed.distribution.scale.numpy()))
    eta, depth = _residual_neighbour_correlation(calorimeters)
    assert abs(depth) < 0.1  # showers from the stage would give about 0.47
