"""The LArTPC event generator: sparse deposits, physics it promises, and the ppx model (also served)."""

import math
import subprocess
import sys

import numpy as np
import pyro.distributions as dist
import pytest
import torch

from ppx.distributions import BY_NAME
from ppx.messages import RECORD_OBSERVE, RECORD_SAMPLE, RECORD_TAG
from ppx.simulator import record_prior_trace
from ppx.sparse import SparseArray
from ppx.sparse_normal import SparseNormal
from simulators import lartpc

CENTRE = (50.0, 50.0, 50.0)


def _primary(kind, energy=300.0, vertex=CENTRE, direction=(0.6, 0.0, 0.8)):
    return lartpc.Primary(kind, vertex, direction, energy)


def _generator(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("size", [32, 128])
def test_events_are_sparse_distinct_voxels_inside_the_volume(size):
    for seed in range(6):
        coordinates, energies = lartpc.event(size, _generator(seed))
        assert coordinates.dtype == torch.int64 and coordinates.shape == (len(energies), 3)
        assert energies.dtype == torch.float64 and bool((energies >= lartpc.THRESHOLD_MEV).all())
        assert len(coordinates) > 0 and int(coordinates.min()) >= 0 and int(coordinates.max()) < size
        assert len(torch.unique(coordinates, dim=0)) == len(coordinates)
        assert len(coordinates) < 0.01 * size ** 3


def test_same_generator_seed_gives_the_same_event():
    first, second = lartpc.event(64, _generator(3)), lartpc.event(64, _generator(3))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_track_deposits_conserve_energy_and_end_in_a_bragg_peak():
    for kind, peak_ratio in (("muon", 1.5), ("proton", 3.0)):
        points, energies = lartpc._track_points(_primary(kind, 200.0), 0.1, _generator())
        assert float(energies.sum()) == pytest.approx(200.0, rel=0.05)
        tenth = len(energies) // 10
        assert float(energies[-tenth:].sum()) > peak_ratio * float(energies[:tenth].sum()), kind


def test_muons_range_further_than_protons_of_the_same_energy():
    assert lartpc._range("muon", 200.0) > 2 * lartpc._range("proton", 200.0)
    assert lartpc._range("proton", 400.0) > lartpc._range("proton", 100.0)


def test_shower_branches_and_conserves_energy():
    starts, directions, lengths, energies = lartpc._shower_segments(_primary("electron", 400.0), _generator())
    assert len(energies) > 10
    assert float(energies.sum()) == pytest.approx(400.0, rel=1e-9)
    torch.testing.assert_close(directions.norm(dim=1), torch.ones(len(directions), dtype=torch.float64))


def test_showers_spread_wider_than_tracks():
    def transverse_spread(kind):
        coordinates, energies = lartpc.deposits(_primary(kind, 400.0), 128, _generator())
        centred = coordinates.double() - coordinates.double().mean(0)
        return float(torch.linalg.svdvals(centred)[1:].sum()) / math.sqrt(len(coordinates))

    assert transverse_spread("electron") > 2 * transverse_spread("muon")


def test_model_records_latents_tags_and_the_coarse_image():
    torch.manual_seed(0)
    records, result = record_prior_trace(lartpc.make_model(32, 4))
    addresses = [record.address for record in records]
    assert addresses == ["vertex_x", "vertex_y", "vertex_z", "kind", "energy", "cos_theta", "phi",
                         "visible_energy", "active_voxels", "image"]
    assert [record.kind for record in records] == [RECORD_SAMPLE] * 7 + [RECORD_TAG] * 2 + [RECORD_OBSERVE]
    assert records[-1].value.shape == (4, 4, 4)
    assert float(result) == pytest.approx(float(records[-3].value))


def test_summary_image_sums_energy_per_coarse_voxel():
    coordinates = torch.tensor([[0, 0, 0], [3, 3, 3], [4, 0, 7]])
    energies = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    image = lartpc.summary_image(coordinates, energies, size=8, summary_size=2)
    assert float(image[0, 0, 0]) == pytest.approx(math.log1p(3.0))
    assert float(image[1, 0, 1]) == pytest.approx(math.log1p(4.0))
    assert float(image.sum()) == pytest.approx(math.log1p(3.0) + math.log1p(4.0))


def _log_likelihood(observed, primary, seed, size=32, summary_size=8):
    image = lartpc.summary_image(*lartpc.deposits(primary, size, _generator(seed)), size, summary_size)
    return float(dist.Normal(image, lartpc.SUMMARY_NOISE).log_prob(observed).sum())


@pytest.mark.parametrize("alternative", [
    _primary("proton"), _primary("electron"), _primary("muon", vertex=(70.0, 50.0, 50.0)),
    _primary("muon", energy=80.0),
])
def test_the_observed_image_prefers_the_true_latents(alternative):
    truth = _primary("muon")
    observed = lartpc.summary_image(*lartpc.deposits(truth, 32, _generator(100)), 32, 8)
    true_fit = np.mean([_log_likelihood(observed, truth, seed) for seed in range(5)])
    other_fit = np.mean([_log_likelihood(observed, alternative, seed) for seed in range(5)])
    assert true_fit > other_fit + 10


def test_served_simulator_answers_an_engine(tmp_path):
    from inference.remote import RemoteSimulator

    address = f"ipc://{tmp_path}/lartpc.sock"
    process = subprocess.Popen([sys.executable, "-m", "simulators.lartpc", "--address", address,
                                "--size", "32", "--summary-size", "4"])
    try:
        with RemoteSimulator(address, timeout=30, handshake_timeout=60) as simulator:
            trace = simulator.run()
            assert trace.named("image").value.shape == (4, 4, 4)
            assert int(trace.named("kind").value) in (0, 1, 2)
            assert 50.0 <= float(trace.named("energy").value) <= 500.0
    finally:
        process.kill()
        process.wait()


def test_sparse_model_observes_the_full_image_under_a_sparse_normal():
    torch.manual_seed(0)
    records, _ = record_prior_trace(lartpc.make_model(32, observe="sparse"))
    image = records[-1]
    assert (image.kind, image.name) == (RECORD_OBSERVE, "image")
    assert isinstance(image.value, SparseArray) and image.value.shape == (32, 32, 32)
    assert image.value.nnz == int(records[-2].value)  # one entry per active voxel
    np.testing.assert_allclose(np.expm1(image.value.values).sum(), float(records[-3].value))
    assert image.distribution.type_id == BY_NAME["SparseNormal"].type_id
    mean, stddev = image.distribution.params
    np.testing.assert_array_equal(mean.values, image.value.values)
    assert float(stddev) == lartpc.SPARSE_NOISE


def test_unknown_observation_is_refused():
    with pytest.raises(ValueError, match="observe must be one of summary, sparse, got 'dense'"):
        lartpc.make_model(32, observe="dense")


def _sparse_log_likelihood(observed, primary, seed, size=32):
    image = lartpc.sparse_image(*lartpc.deposits(primary, size, _generator(seed)), size)
    return float(SparseNormal(image, lartpc.SPARSE_NOISE).log_prob(observed))


@pytest.mark.parametrize("alternative", [
    _primary("proton"), _primary("electron"), _primary("muon", vertex=(70.0, 50.0, 50.0)),
])
def test_the_sparse_image_prefers_the_true_latents(alternative):
    truth = _primary("muon")
    observed = lartpc.sparse_image(*lartpc.deposits(truth, 32, _generator(100)), 32)
    true_fit = np.mean([_sparse_log_likelihood(observed, truth, seed) for seed in range(5)])
    other_fit = np.mean([_sparse_log_likelihood(observed, alternative, seed) for seed in range(5)])
    assert true_fit > other_fit + 10
