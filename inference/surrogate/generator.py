"""The generator: noise, a condition and the incident energy in, cell energies out.

The output is built the way a shower is described: a total energy response
``E / E_inc``, its split over the layers (a softmax), and within each layer a
pattern over that layer's cells that sums to one (a softmax, or with
``pattern="relu"`` a rectified pattern normalised to one, which gives cells the
shower misses exactly nothing, for data without noise). Energy is therefore
shared consistently between cells, layers and the total, and each factor has
its own head. The response is drawn as a location and a scale that depend on
the condition alone, applied to a noise-driven shape: electrons can then have
a response peak a tenth as wide as pions' without the noise having to be
switched off inside the shared layers. On top comes electronic noise: independent Gaussian noise per cell whose
width (in the unit of the energies, not scaled with the shower) is learned;
``ShowerGenerator.set_cell_noise`` starts it from an estimate taken from data.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from inference.surrogate.geometry import CALOGAN, Geometry


class ShowerGenerator(nn.Module):
    """Maps (noise, condition, incident energy) to cell energies.

    Args:
        geometry: the calorimeter layout; each layer's cells are normalised together.
        condition_dim: size of the condition vector (see ``Conditioning``).
        latent_dim: size of the noise vector.
        hidden: width of the shared layers.
        pattern: how each layer's cell pattern is normalised (see the module docstring).
    """

    def __init__(self, geometry: Geometry = CALOGAN, condition_dim: int = 4, latent_dim: int = 64,
                 hidden: int = 256, pattern: Literal["softmax", "relu"] = "softmax") -> None:
        super().__init__()
        if pattern not in ("softmax", "relu"):
            raise ValueError(f"pattern must be 'softmax' or 'relu', got {pattern!r}")
        self.geometry = geometry
        self.pattern = pattern
        self.latent_dim = latent_dim
        self.trunk = nn.Sequential(
            nn.Linear(latent_dim + condition_dim, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2))
        features = hidden + condition_dim
        self.response = nn.Linear(features, 1)
        self.response_location = nn.Sequential(nn.Linear(condition_dim, 32), nn.LeakyReLU(0.2), nn.Linear(32, 2))
        self.shares = nn.Linear(features, geometry.num_layers)
        self.cells = nn.Linear(features, geometry.num_cells)
        layer_of_cell = torch.repeat_interleave(torch.arange(geometry.num_layers), torch.tensor(geometry.layer_sizes))
        self.register_buffer("layer_of_cell", layer_of_cell, persistent=False)
        self.log_cell_noise = nn.Parameter(torch.full((geometry.num_cells,), math.log(1e-9)))

    def set_cell_noise(self, width: float) -> None:
        """Start every cell's noise at ``width`` (energy units; tiny for noiseless data)."""
        with torch.no_grad():
            self.log_cell_noise.fill_(math.log(max(width, 1e-12)))

    def forward(self, noise: torch.Tensor, condition: torch.Tensor, energies: torch.Tensor,
                cell_noise: torch.Tensor | None = None) -> torch.Tensor:
        """Showers (N, cells) in the unit of ``energies``.

        Args:
            noise: (N, latent_dim) standard normal latent vectors.
            condition: (N, condition_dim) conditions.
            energies: (N,) incident energies.
            cell_noise: (N, cells) standard normal draws for the electronic
                noise; drawn from torch's global generator when None.
        """
        hidden = torch.cat([self.trunk(torch.cat([noise, condition], dim=1)), condition], dim=1)
        location, log_scale = self.response_location(condition).unbind(dim=1)
        response = nn.functional.softplus(location + log_scale.exp() * self.response(hidden).squeeze(1))
        layer_energy = torch.softmax(self.shares(hidden), dim=1) * (response * energies).unsqueeze(1)
        logits = self.cells(hidden).split(self.geometry.layer_sizes, dim=1)
        if self.pattern == "softmax":
            showers = torch.cat([torch.softmax(part, dim=1) for part in logits], dim=1)
            showers = showers * layer_energy[:, self.layer_of_cell]
        else:
            pattern = torch.relu(torch.cat(logits, dim=1))
            totals = torch.stack([part.sum(dim=1) for part in pattern.split(self.geometry.layer_sizes, dim=1)], dim=1)
            showers = pattern * (layer_energy / totals.clamp_min(1e-12))[:, self.layer_of_cell]
        if cell_noise is None:
            cell_noise = torch.randn_like(showers)
        return torch.addcmul(showers, cell_noise, self.log_cell_noise.exp())
