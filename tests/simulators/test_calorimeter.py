
import numpy as np
import pytest
import torch

from ppx.messages import RECORD_OBSERVE, RECORD_SAMPLE, RECORD_TAG
from ppx.simulator import record_prior_trace
from simulators import calorimeter

LAYER_SHAPES = [(3, 96), (12, 12), (12, 6)]
LAYER_DEPTH_CENTRES_MM = np.array([45.0, 263.5, 458.5])
LAYER1_CELL_CENTRES_MM = (np.arange(12) - 5.5) * 40.0


def _layer_energies(layers):
    return np.stack([layer.sum(axis=(-2, -1)) for layer in layers], axis=-1)


def _mean_depth(layers) -> np.ndarray:
    """Energy-weighted depth of each shower, from its layer sums."""
    energies = _layer_energies(layers)
    return (energies * LAYER_DEPTH_CENTRES_MM).sum(-1) / energies.sum(-1)


def _layer1_width(layers) -> np.ndarray:
    """Energy-weighted RMS of the eta position in the 12 x 12 layer (noise clipped away)."""
    profile = np.clip(layers[1], 0.0, None).sum(axis=-2)
    return np.sqrt((profile * LAYER1_CELL_CENTRES_MM ** 2).sum(-1) / profile.sum(-1))


def test_one_shower_has_the_calogan_layer_shapes():
    layers = calorimeter.shower("electron", 30.0, np.random.default_rng(0))
    assert [layer.shape for layer in layers] == LAYER_SHAPES
    assert all(layer.dtype == np.float64 for layer in layers)
    assert calorimeter.NUM_CELLS == 504


def test_many_showers_at_once_and_kinds_by_name_or_number():
    layers = calorimeter.showers(["electron", 1, "pion", "gamma"], [5.0, 10.0, 20.0, 40.0], np.random.default_rng(1))
    assert [layer.shape for layer in layers] == [(4,) + shape for shape in LAYER_SHAPES]
    assert np.all(_layer_energies(layers).sum(-1) > 0)


def test_a_seeded_generator_reproduces_the_shower():
    first = calorimeter.shower("pion", 25.0, np.random.default_rng(7))
    again = calorimeter.shower("pion", 25.0, np.random.default_rng(7))
    other = calorimeter.shower("pion", 25.0, np.random.default_rng(8))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_flatten_and_split_are_inverse():
    rng = np.random.default_rng(2)
    layers = calorimeter.showers(["photon"] * 3, [10.0, 20.0, 30.0], rng)
    flat = calorimeter.flatten_layers(*layers)
    assert flat.shape == (3, 504)
    assert all(np.array_equal(a, b) for a, b in zip(calorimeter.split_layers(flat), layers))
    single = calorimeter.flatten_layers(*(layer[0] for layer in layers))
    assert single.shape == (504,)
    assert np.array_equal(single, flat[0])
    assert np.array_equal(single[:288].reshape(3, 96), layers[0][0])


def test_flatten_and_split_name_the_wrong_shape():
    with pytest.raises(ValueError, match="layer 1 of shape"):
        calorimeter.flatten_layers(np.zeros((3, 96)), np.zeros((12, 6)), np.zeros((12, 6)))
    with pytest.raises(ValueError, match="504 cells"):
        calorimeter.split_layers(np.zeros(500))


def test_bad_kinds_and_energies_are_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="particle kind"):
        calorimeter.shower("muon", 10.0, rng)
    with pytest.raises(ValueError, match="kind number"):
        calorimeter.shower(3, 10.0, rng)
    with pytest.raises(ValueError, match="positive finite energies"):
        calorimeter.shower("electron", 0.0, rng)
    with pytest.raises(ValueError, match="as many energies as kinds"):
        calorimeter.showers(["electron", "photon"], [1.0], rng)


@pytest.mark.parametrize("kind", ["electron", "photon"])
def test_electromagnetic_response_is_the_sampling_fraction_with_a_over_sqrt_e_spread(kind):
    energy, count = 20.0, 60
    totals = _layer_energies(calorimeter.showers([kind] * count, [energy] * count,
                                                 np.random.default_rng(3))).sum(-1)
    response = totals / energy
    # Leakage out of 22.9 X0 is below 1% at 20 GeV.
    assert calorimeter.SAMPLING_FRACTION * 0.97 < response.mean() < calorimeter.SAMPLING_FRACTION * 1.01
    expected_spread = 0.10 / np.sqrt(energy)
    assert 0.6 * expected_spread < response.std() / response.mean() < 1.8 * expected_spread


def test_electromagnetic_resolution_improves_as_one_over_sqrt_energy():
    rng = np.random.default_rng(4)
    spreads = []
    for energy in (4.0, 64.0):
        totals = _layer_energies(calorimeter.showers(["electron"] * 60, [energy] * 60, rng)).sum(-1)
        spreads.append(totals.std() / totals.mean())
    # 1/sqrt(E) predicts a ratio of 4; leakage and noise make it somewhat smaller.
    assert 2.5 < spreads[0] / spreads[1] < 6.0


def test_mean_shower_depth_grows_with_log_energy_and_photons_start_later():
    rng = np.random.default_rng(5)
    depths = [_mean_depth(calorimeter.showers(["electron"] * 40, [energy] * 40, rng)).mean()
              for energy in (2.0, 10.0, 50.0)]
    assert depths[0] < depths[1] < depths[2]
    # Longitudinal scaling: the shower maximum moves by ln(5) X0 = 34 mm per factor 5 in energy.
    assert 10.0 < depths[2] - depths[1] < 60.0
    photons = _mean_depth(calorimeter.showers(["photon"] * 80, [10.0] * 80, rng)).mean()
    electrons = _mean_depth(calorimeter.showers(["electron"] * 80, [10.0] * 80, rng)).mean()
    assert photons > electrons + 5.0  # the mean conversion depth is 9/7 X0 = 27 mm


def test_pions_respond_less_fluctuate_more_and_shower_deeper_and_wider_than_electrons():
    rng = np.random.default_rng(6)
    energy, count = 20.0, 80
    electrons = calorimeter.showers(["electron"] * count, [energy] * count, rng)
    pions = calorimeter.showers(["pion"] * count, [energy] * count, rng)
    electron_totals = _layer_energies(electrons).sum(-1)
    pion_totals = _layer_energies(pions).sum(-1)
    assert pion_totals.mean() < 0.6 * electron_totals.mean()  # invisible energy and leakage
    assert pion_totals.std() / pion_totals.mean() > 5 * electron_totals.std() / electron_totals.mean()
    showering = pion_totals > 0.1 * energy * calorimeter.SAMPLING_FRACTION
    assert 0.3 < showering.mean() < 0.95  # a third cross 1.2 interaction lengths as a MIP
    shower_layers = tuple(layer[showering] for layer in pions)
    assert _mean_depth(shower_layers).mean() > _mean_depth(electrons).mean() + 20.0
    assert _layer_energies(shower_layers)[:, 2].sum() / pion_totals[showering].sum() > 0.05
    assert _layer1_width(shower_layers).mean() > 1.3 * _layer1_width(electrons).mean()


def test_mean_depth_profile_integrates_to_the_response():
    edges = np.linspace(0.0, 480.0, 21)
    electron = calorimeter.mean_depth_profile("electron", 20.0, edges)
    photon = calorimeter.mean_depth_profile("photon", 20.0, edges)
    pion = calorimeter.mean_depth_profile("pion", 20.0, edges)
    assert electron.shape == (20,)
    assert electron.sum() == pytest.approx(calorimeter.SAMPLING_FRACTION, rel=0.02)
    assert np.argmax(photon) >= np.argmax(electron)
    assert np.all(pion >= 0) and pion.sum() < 0.6 * electron.sum()


def test_model_trace_names_and_observes_the_total():
    torch.manual_seed(0)
    records, result = record_prior_trace(calorimeter.model)
    assert [record.address for record in records] == [
        "kind", "energy", "shower_seed", "layer0", "layer1", "layer2", "total_energy"]
    assert [record.kind for record in records] == [RECORD_SAMPLE] * 3 + [RECORD_TAG] * 3 + [RECORD_OBSERVE]
    assert [record.control for record in records[:3]] == [True, True, False]
    assert [record.value.shape for record in records[3:6]] == LAYER_SHAPES
    total = sum(record.value.sum() for record in records[3:6])
    mean, sigma = records[6].distribution.params
    assert float(mean) == pytest.approx(total)
    assert 0 < float(sigma) < 0.05 * abs(total) + 0.05
    assert 1.0 <= float(records[1].value) <= 100.0
    assert float(result) == pytest.approx(float(records[1].value))


def test_model_runs_standalone_and_its_kind_prior_is_uniform():
    torch.manual_seed(1)
    kinds = [int(record_prior_trace(calorimeter.model)[0][0].value) for _ in range(60)]
    assert set(kinds) == {0, 1, 2}
