"""The generator shares energy consistently between total, layers and cells and starts from the mean shape;
the critic's input is as documented."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from inference.surrogate.conditioning import Conditioning
from inference.surrogate.config import SurrogateConfig
from inference.surrogate.critic import ShowerCritic, num_summaries
from inference.surrogate.generator import ShowerGenerator
from inference.surrogate.geometry import CALOGAN
from inference.surrogate.mean_shape import mean_shapes
from inference.surrogate.response import ResponseModel
from inference.surrogate.sampler import ShowerSampler
from tests.surrogate.blobs import blob_showers


@pytest.mark.parametrize("pattern", ["softmax", "relu"])
def test_generated_cells_add_up_to_the_layer_energies_and_the_total_asked_for(pattern):
    torch.manual_seed(0)
    conditioning = Conditioning(3, 3.0, 1.0)
    generator = ShowerGenerator(CALOGAN, conditioning.dim + 1, latent_dim=8, hidden=16, pattern=pattern, layers=2)
    energies = torch.tensor([1.0, 10.0, 100.0, 50.0])
    condition = torch.cat([conditioning(torch.tensor([0, 1, 2, 0]), energies), torch.randn(4, 1)], dim=1)
    totals = 0.18 * energies
    quiet = generator(torch.randn(4, 8), condition, totals, torch.zeros(4, CALOGAN.num_cells))
    assert quiet.shape == (4, 504) and torch.all(quiet >= 0)
    layers = torch.stack([quiet[:, part].sum(dim=1) for part in CALOGAN.layer_slices], dim=1)
    assert torch.all(layers > 0)  # softmax: every layer gets a share; relu with a fresh net: some cell is on
    torch.testing.assert_close(layers.sum(dim=1), totals)
    if pattern == "relu":
        assert (quiet == 0).any()  # cells the shower misses get exactly nothing
    generator.set_cell_noise(1e-3)
    noisy = generator(torch.randn(4, 8), condition, totals)
    assert (noisy < 0).any()  # electronic noise goes below zero, as in the data
    torch.testing.assert_close(noisy.sum(dim=1), totals)  # but sums to zero over each shower


def test_cell_noise_keeps_its_width_per_cell_while_summing_to_zero():
    generator = ShowerGenerator(CALOGAN, 5, latent_dim=4, hidden=8)
    generator.set_cell_noise(torch.linspace(-8.0, -6.0, CALOGAN.num_cells).exp())
    count = 20_000
    showers = generator(torch.randn(count, 4), torch.randn(count, 5), torch.zeros(count),
                        torch.randn(count, CALOGAN.num_cells, generator=torch.Generator().manual_seed(0)))
    width = generator.cell_noise
    torch.testing.assert_close(showers.sum(dim=1), torch.zeros(count), atol=1e-6, rtol=0)
    ratio = showers.std(dim=0) / width
    assert torch.all((ratio - 1).abs() < 0.05), ratio  # a 504-cell shower gives up 0.1% of each width


def test_critic_input_is_each_layer_in_two_views_then_standardised_summaries():
    critic = ShowerCritic(CALOGAN, condition_dim=4, hidden=16)
    fractions = torch.rand(32, CALOGAN.num_cells) * 1e-3
    critic.set_scales(fractions)
    inputs = critic.inputs(fractions)
    cells = 2 * CALOGAN.num_cells
    assert inputs.shape == (32, cells + num_summaries(CALOGAN))
    first = CALOGAN.layer_sizes[0]
    torch.testing.assert_close(inputs[:, :first], torch.asinh(fractions[:, :first] / 1e-5) / math.asinh(1e5))
    linear = inputs[:, first:2 * first]  # the first layer again, standardised per cell
    torch.testing.assert_close(linear.mean(dim=0), torch.zeros(first), atol=1e-4, rtol=0)
    torch.testing.assert_close(linear.std(dim=0), torch.ones(first), atol=1e-4, rtol=0)
    summaries = inputs[:, cells:]
    torch.testing.assert_close(summaries.mean(dim=0), torch.zeros(summaries.shape[1]), atol=1e-4, rtol=0)
    assert critic(inputs, torch.zeros(32, 4)).shape == (32,)


@pytest.mark.parametrize("pattern", ["softmax", "relu"])
def test_a_generator_started_from_the_mean_shape_draws_it(pattern):
    data = blob_showers(3000)
    shapes = mean_shapes(data.kinds, data.energies, data.showers, CALOGAN, bins=4)
    assert shapes.cell_shares.shape == (12, CALOGAN.num_cells) and shapes.layer_shares.shape == (12, 3)
    response = ResponseModel.fit(data.kinds, data.energies, data.showers.sum(axis=1) / data.energies, 3)
    torch.manual_seed(0)
    config = SurrogateConfig(latent_dim=8, generator_hidden=32, cell_pattern=pattern)
    sampler = ShowerSampler.from_config(config, CALOGAN, Conditioning(3, 3.5, 1.0), response)
    sampler.start_from_mean_shape(shapes)
    with torch.no_grad():
        generated = sampler(torch.from_numpy(data.kinds), torch.from_numpy(data.energies.astype(np.float32)),
                            torch.Generator().manual_seed(0)).numpy()
    again = mean_shapes(data.kinds, data.energies, generated, CALOGAN, bins=4)
    np.testing.assert_allclose(again.layer_shares, shapes.layer_shares, atol=0.02)
    core = shapes.cell_shares > 0.01  # cells holding a share that matters; the rest is cell noise
    np.testing.assert_allclose(again.cell_shares[core], shapes.cell_shares[core], rtol=0.15)
    # an untrained generator, not started from the data, is far off
    fresh = ShowerSampler.from_config(config, CALOGAN, Conditioning(3, 3.5, 1.0), response)
    with torch.no_grad():
        untrained = fresh(torch.from_numpy(data.kinds), torch.from_numpy(data.energies.astype(np.float32))).numpy()
    assert not np.allclose(mean_shapes(data.kinds, data.energies, untrained, CALOGAN, bins=4).cell_shares[core],
                           shapes.cell_shares[core], rtol=0.15)
