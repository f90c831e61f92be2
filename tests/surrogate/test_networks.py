"""The generator shares energy consistently between total, layers and cells; the critic's input is as documented."""

from __future__ import annotations

import pytest
import torch

from inference.surrogate.conditioning import Conditioning
from inference.surrogate.critic import ShowerCritic, num_summaries
from inference.surrogate.generator import ShowerGenerator
from inference.surrogate.geometry import CALOGAN


@pytest.mark.parametrize("pattern", ["softmax", "relu"])
def test_generated_cells_add_up_to_the_generated_layer_energies(pattern):
    torch.manual_seed(0)
    conditioning = Conditioning(3, 3.0, 1.0)
    generator = ShowerGenerator(CALOGAN, conditioning.dim, latent_dim=8, hidden=16, pattern=pattern)
    energies = torch.tensor([1.0, 10.0, 100.0, 50.0])
    condition = conditioning(torch.tensor([0, 1, 2, 0]), energies)
    quiet = generator(torch.randn(4, 8), condition, energies, torch.zeros(4, CALOGAN.num_cells))
    assert quiet.shape == (4, 504) and torch.all(quiet >= 0)
    layers = torch.stack([quiet[:, part].sum(dim=1) for part in CALOGAN.layer_slices], dim=1)
    assert torch.all(layers > 0)  # softmax: every layer gets a share; relu with a fresh net: some cell is on
    if pattern == "relu":
        assert (quiet == 0).any()  # cells the shower misses get exactly nothing
    generator.set_cell_noise(1e-3)
    noisy = generator(torch.randn(4, 8), condition, energies)
    assert (noisy < 0).any()  # electronic noise goes below zero, as in the data


def test_critic_input_is_cells_then_standardised_summaries():
    critic = ShowerCritic(CALOGAN, condition_dim=4, hidden=16)
    fractions = torch.rand(32, CALOGAN.num_cells) * 1e-3
    critic.set_summary_scale(fractions)
    inputs = critic.inputs(fractions)
    assert inputs.shape == (32, CALOGAN.num_cells + num_summaries(CALOGAN))
    summaries = inputs[:, CALOGAN.num_cells:]
    torch.testing.assert_close(summaries.mean(dim=0), torch.zeros(summaries.shape[1]), atol=1e-4, rtol=0)
    assert critic(inputs, torch.zeros(32, 4)).shape == (32,)
