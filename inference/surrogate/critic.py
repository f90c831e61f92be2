"""The critic: scores showers (real high, generated low) given their condition.

Its input (``inputs``) is a shower seen two ways side by side: every cell as a
fraction of the incident energy on a signed log scale (an asinh: linear below
``cell_floor``, logarithmic above, so noise below zero stays visible), and a
few shower-shape summaries (layer energies and shares, response, depth,
per-layer centroids and widths, soft occupancy), standardised with the mean
and spread they have on the real showers (``set_summary_scale``). The
gradient penalty acts on this joint input, so the critic may tell showers
apart by as much as one unit per standard deviation of a summary: a response
that is off by a fraction of its spread costs the generator as much as a
misplaced shower core. (Standardising the response per particle kind, to
resolve the electrons' narrow peak, was tried and slowed training overall.) Each
layer's cells pass through their own dense encoder (dense rather than
convolutional: on CPU that is several times faster for a few hundred cells,
and the gradient penalty's double backward multiplies the difference).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from inference.surrogate.geometry import CALOGAN, Geometry


def num_summaries(geometry: Geometry) -> int:
    """How many summary features ``ShowerCritic.summaries`` makes for a geometry."""
    return 7 * geometry.num_layers + 2


class ShowerCritic(nn.Module):
    """Wasserstein critic over (cells and summaries, condition).

    Args:
        geometry: the calorimeter layout; one encoder per layer.
        condition_dim: size of the condition vector.
        hidden: width of the dense layers (each layer's encoder has half as many outputs).
        cell_floor: the smallest cell fraction the log view resolves.
    """

    def __init__(self, geometry: Geometry = CALOGAN, condition_dim: int = 4, hidden: int = 256,
                 cell_floor: float = 1e-5) -> None:
        super().__init__()
        self.geometry = geometry
        self.cell_floor = cell_floor
        self._scale = math.asinh(1.0 / cell_floor)
        encoded = max(1, hidden // 2)
        self.layers = nn.ModuleList(nn.Sequential(nn.Linear(size, encoded), nn.LeakyReLU(0.2))
                                    for size in geometry.layer_sizes)
        for index in range(geometry.num_layers):
            y, x = geometry.cell_centers(index)
            self.register_buffer(f"_y{index}", torch.tensor(y * 2 / geometry.extent_mm[0], dtype=torch.float32))
            self.register_buffer(f"_x{index}", torch.tensor(x * 2 / geometry.extent_mm[1], dtype=torch.float32))
        summaries = num_summaries(geometry)
        self.register_buffer("summary_mean", torch.zeros(summaries))
        self.register_buffer("summary_std", torch.ones(summaries))
        self.head = nn.Sequential(
            nn.Linear(encoded * geometry.num_layers + summaries + condition_dim, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, 1))

    def set_summary_scale(self, fractions: torch.Tensor) -> None:
        """Standardise the summaries with their mean and spread on these (real) showers."""
        with torch.no_grad():
            summaries = self.summaries(fractions)
            self.summary_mean.copy_(summaries.mean(dim=0))
            self.summary_std.copy_(summaries.std(dim=0).clamp_min(1e-6))

    def inputs(self, fractions: torch.Tensor) -> torch.Tensor:
        """Cell fractions of the incident energy (N, cells) -> the critic's input (N, cells + summaries)."""
        view = torch.asinh(fractions / self.cell_floor) / self._scale
        summaries = (self.summaries(fractions) - self.summary_mean) / self.summary_std
        return torch.cat([view, summaries], dim=1)

    def forward(self, inputs: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """(N, cells + summaries) inputs and (N, condition_dim) conditions -> (N,) scores."""
        features = [condition, inputs[:, self.geometry.num_cells:]]
        for part, encoder in zip(self.geometry.layer_slices, self.layers):
            features.append(encoder(inputs[:, part]))
        return self.head(torch.cat(features, dim=1)).squeeze(1)

    def summaries(self, fractions: torch.Tensor) -> torch.Tensor:
        """Raw shower-shape features of each shower, (N, 7 * layers + 2)."""
        layers = [fractions[:, part] for part in self.geometry.layer_slices]
        energy = torch.stack([layer.sum(dim=1) for layer in layers], dim=1)
        total = energy.sum(dim=1, keepdim=True)
        positive = energy.clamp_min(0)
        shares = positive / positive.sum(dim=1, keepdim=True).clamp_min(1e-12)
        depth = shares @ torch.arange(self.geometry.num_layers, dtype=fractions.dtype, device=fractions.device)
        features = [torch.asinh(energy / self.cell_floor) / self._scale, shares, total, depth.unsqueeze(1)]
        for index, layer in enumerate(layers):
            layer = layer.clamp_min(0)
            weights = layer / layer.sum(dim=1, keepdim=True).clamp_min(1e-12)
            for position in (getattr(self, f"_x{index}"), getattr(self, f"_y{index}")):
                mean = weights @ position
                spread = (weights * (position - mean.unsqueeze(1)) ** 2).sum(dim=1)
                features += [mean.unsqueeze(1), torch.sqrt(spread + 1e-8).unsqueeze(1)]
            features.append((layer / (layer + self.cell_floor)).mean(dim=1, keepdim=True))
        return torch.cat(features, dim=1)
