"""The response model reproduces the response distribution it was fitted to, per kind and energy;
the sampler's showers carry exactly the responses it draws."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inference.surrogate.conditioning import Conditioning
from inference.surrogate.config import SurrogateConfig
from inference.surrogate.geometry import CALOGAN
from inference.surrogate.metrics import ks_distance
from inference.surrogate.response import ResponseModel
from inference.surrogate.sampler import ShowerSampler

ENERGY_SLICES = ((1.0, 3.0), (3.0, 10.0), (10.0, 30.0), (30.0, 100.0))


def constructed_responses(kinds: np.ndarray, energies: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Electron-like kinds: a peak at 0.18 narrowing as 1/sqrt(E); a pion-like kind: skewed, broad, rising."""
    peak = 0.18 * (1.0 + 0.1 / np.sqrt(energies) * rng.normal(size=len(energies)))
    shape = 2.0 + energies / 20.0
    broad = 0.09 * rng.gamma(shape, 1.0 / shape) * (1.0 + 0.1 * np.log(energies))
    return np.where(kinds == 2, broad, peak)


def draw(model: ResponseModel, kinds: np.ndarray, energies: np.ndarray, seed: int) -> np.ndarray:
    responses, _ = model.sample(torch.from_numpy(kinds), torch.from_numpy(energies.astype(np.float32)),
                                torch.Generator().manual_seed(seed))
    return responses.numpy()


def test_fitted_model_reproduces_the_response_per_kind_and_energy():
    rng = np.random.default_rng(0)
    kinds, energies = rng.integers(0, 3, 30_000), rng.uniform(1.0, 100.0, 30_000)
    model = ResponseModel.fit(kinds, energies, constructed_responses(kinds, energies, rng), 3)
    test_kinds, test_energies = rng.integers(0, 3, 30_000), rng.uniform(1.0, 100.0, 30_000)
    real = constructed_responses(test_kinds, test_energies, rng)
    drawn = draw(model, test_kinds, test_energies, seed=1)
    for kind in range(3):
        for low, high in ENERGY_SLICES:
            chosen = (test_kinds == kind) & (test_energies >= low) & (test_energies < high)
            # Sampling alone gives about 0.87 sqrt(2 / n) (0.05 for the smallest slice, 2% of 10k showers).
            bound = 2.0 * 0.87 * np.sqrt(2.0 / chosen.sum())
            assert ks_distance(real[chosen], drawn[chosen]) < bound, (kind, low, high)
    # The location and scale follow the energy: a 1/sqrt(E) peak would be far too wide at 100 GeV otherwise.
    electrons = (test_kinds == 0) & (test_energies > 80.0)
    assert np.std(drawn[electrons]) == pytest.approx(np.std(real[electrons]), rel=0.1)


def test_quantile_levels_map_monotonically_onto_responses():
    rng = np.random.default_rng(1)
    kinds, energies = rng.integers(0, 3, 3000), rng.uniform(1.0, 100.0, 3000)
    model = ResponseModel.fit(kinds, energies, constructed_responses(kinds, energies, rng), 3)
    levels = torch.linspace(0.0, 1.0, 101)
    for kind in range(3):
        responses = model(torch.full((101,), kind), torch.full((101,), 20.0), levels)
        assert torch.all(responses[1:] >= responses[:-1])


def test_state_round_trip_gives_the_same_responses():
    rng = np.random.default_rng(2)
    kinds, energies = rng.integers(0, 3, 2000), rng.uniform(1.0, 100.0, 2000)
    model = ResponseModel.fit(kinds, energies, constructed_responses(kinds, energies, rng), 3)
    state = {name: value.clone() for name, value in model.state_dict().items()}
    copy = ResponseModel.from_state(state)
    np.testing.assert_array_equal(draw(copy, kinds, energies, 5), draw(model, kinds, energies, 5))


def test_a_kind_without_showers_borrows_the_fit_to_all():
    rng = np.random.default_rng(3)
    kinds, energies = rng.integers(0, 2, 2000), rng.uniform(1.0, 100.0, 2000)
    model = ResponseModel.fit(kinds, energies, constructed_responses(kinds, energies, rng), 3)
    assert np.all(np.isfinite(draw(model, np.full(100, 2), np.full(100, 10.0), 0)))


@pytest.mark.parametrize("arguments, message", [
    (([0, 1], [1.0, 2.0], [0.1]), "differ in length"),
    (([0], [1.0], [0.1]), "at least 2 showers"),
    (([0, 1], [1.0, -2.0], [0.1, 0.2]), "positive"),
    (([0, 1], [1.0, 2.0], [0.1, np.nan]), "finite"),
])
def test_fit_errors_name_the_problem(arguments, message):
    with pytest.raises(ValueError, match=message):
        ResponseModel.fit(*(np.asarray(a) for a in arguments), num_kinds=2)


def test_sampled_showers_sum_to_the_responses_the_model_draws():
    rng = np.random.default_rng(4)
    kinds, energies = rng.integers(0, 3, 20_000), rng.uniform(1.0, 100.0, 20_000)
    response = ResponseModel.fit(kinds, energies, constructed_responses(kinds, energies, rng), 3)
    torch.manual_seed(0)
    sampler = ShowerSampler.from_config(SurrogateConfig(latent_dim=8, generator_hidden=16), CALOGAN,
                                        Conditioning(3, 3.0, 1.0), response)
    sampler.generator.set_cell_noise(5e-4)
    with torch.no_grad():
        showers = sampler(torch.from_numpy(kinds), torch.from_numpy(energies.astype(np.float32)),
                          torch.Generator().manual_seed(0)).numpy()
    generated = showers.sum(axis=1, dtype=np.float64) / energies
    expected = draw(response, kinds, energies, seed=0)  # the sampler draws the response first
    np.testing.assert_allclose(generated, expected, rtol=1e-4, atol=1e-5)
    real = constructed_responses(kinds, energies, rng)
    assert ks_distance(real, generated) < 0.03  # an untrained generator: the response is right by construction
