"""The generator: noise, a condition and the shower's total visible energy in, cell energies out.

The total comes from outside (the response model, ``response.py``); the
generator only shapes it, the way a shower is described: its split over the
layers (a softmax), and within each layer a pattern over that layer's cells
that sums to one (a softmax, or with ``pattern="relu"`` a rectified pattern
normalised to one, which gives cells the shower misses exactly nothing, for
data without noise). The condition includes where the total lies in its
distribution, so the shape can follow it (a pion that shows little energy
started its shower late). With ``fluctuations`` (the default) every cell's share
then moves the way a count of independent deposits would: share ``p`` becomes
``p + sqrt(p / n) * z`` for a standard normal ``z``, cut at zero and normalised
again, where the effective count ``n`` per layer is learned (and started from the
data's, see ``mean_shape.py``). A softmax head alone gives smooth showers whose
cells move together; real showers are lumpy cell by cell, which a classifier
sees at once. On top comes electronic noise: Gaussian noise per
cell whose width (in the unit of the energies, not scaled with the shower) is
learned, drawn given that it sums to zero over the shower, so the total stays
exactly the one asked for while each cell's noise keeps its width (up to a
factor ``sqrt(1 - width^2 / sum of widths^2)``, 0.999 for 504 equal cells).
``ShowerGenerator.set_cell_noise`` starts the widths from an estimate taken from data.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from inference.surrogate.geometry import CALOGAN, Geometry


class ShowerGenerator(nn.Module):
    """Maps (noise, condition, total visible energy) to cell energies.

    Args:
        geometry: the calorimeter layout; each layer's cells are normalised together.
        condition_dim: size of the condition vector (see ``ShowerSampler``).
        latent_dim: size of the noise vector.
        hidden: width of the shared layers.
        pattern: how each layer's cell pattern is normalised (see the module docstring).
        layers: number of shared layers.
        fluctuations: add independent sampling fluctuations to every cell's share (see the module docstring).
    """

    def __init__(self, geometry: Geometry = CALOGAN, condition_dim: int = 5, latent_dim: int = 64,
                 hidden: int = 256, pattern: Literal["softmax", "relu"] = "softmax", layers: int = 3,
                 fluctuations: bool = True) -> None:
        super().__init__()
        if pattern not in ("softmax", "relu"):
            raise ValueError(f"pattern must be 'softmax' or 'relu', got {pattern!r}")
        if layers < 1:
            raise ValueError(f"layers must be at least 1, got {layers}")
        self.geometry = geometry
        self.pattern = pattern
        self.latent_dim = latent_dim
        self.fluctuations = fluctuations
        trunk: list[nn.Module] = []
        for index in range(layers):
            trunk += [nn.Linear(latent_dim + condition_dim if index == 0 else hidden, hidden),
                      nn.LeakyReLU(0.2, inplace=True)]
        self.trunk = nn.Sequential(*trunk)
        features = hidden + condition_dim
        self.shares = nn.Linear(features, geometry.num_layers)
        self.cells = nn.Linear(features, geometry.num_cells)
        self.counts = nn.Linear(features, geometry.num_layers) if fluctuations else None
        if self.counts is not None:
            nn.init.zeros_(self.counts.weight)
            nn.init.constant_(self.counts.bias, math.log(1000.0))
        self.register_buffer("cell_noise", torch.full((geometry.num_cells,), 1e-9))

    def set_cell_noise(self, width: float | torch.Tensor) -> None:
        """Set the cells' noise widths (energy units; one for all or one per cell; tiny for noiseless data)."""
        with torch.no_grad():
            self.cell_noise.copy_(torch.as_tensor(width, dtype=self.cell_noise.dtype).clamp_min(1e-12)
                                  .expand_as(self.cell_noise))

    def start_from_mean_shape(self, condition: torch.Tensor, layer_shares: torch.Tensor, cell_shares: torch.Tensor,
                              counts: torch.Tensor | None = None, damping: float = 0.1, floor: float = 1e-7) -> None:
        """Set the layer and cell heads so that the conditions' mean shapes come out, with little noise.

        The heads' weights on the condition and their biases become the
        least-squares fit of the shares' logits (log shares for softmax
        patterns, shares times the layer's cell count for relu ones) as linear
        functions of the condition;
        their weights on the shared layers are multiplied by ``damping``.

        Args:
            condition: (M, condition_dim) conditions of the mean shapes.
            layer_shares: (M, layers) each layer's mean share of the total.
            cell_shares: (M, cells) each cell's mean share of its layer.
            counts: (M, layers) effective counts of the sampling fluctuations
                (ignored without fluctuations; None leaves the counts head as it is).
            damping: how much of the noise-driven part to keep.
            floor: the smallest share a softmax logit is fitted to (cells a shower never reaches).
        """
        condition_dim = condition.shape[1]
        design = torch.cat([condition, torch.ones(len(condition), 1)], dim=1).double()
        cell_targets = cell_shares.double()
        if self.pattern == "softmax":
            cell_targets = torch.log(cell_targets.clamp_min(floor))
        else:  # a relu pattern is normalised afterwards: scale shares to about one, well above the damped noise
            sizes = torch.tensor(self.geometry.layer_sizes, dtype=torch.float64)
            cell_targets = cell_targets * torch.repeat_interleave(sizes, torch.tensor(self.geometry.layer_sizes))
        heads = [(self.shares, torch.log(layer_shares.double().clamp_min(floor))), (self.cells, cell_targets)]
        if self.counts is not None and counts is not None:
            heads.append((self.counts, torch.log(counts.double().clamp_min(1.0))))
        with torch.no_grad():
            for head, targets in heads:
                solution = torch.linalg.lstsq(design, targets, driver="gelsd").solution  # min-norm: collinear one-hots
                head.weight[:, -condition_dim:] = solution[:-1].T.float()
                head.bias.copy_(solution[-1].float())
                head.weight[:, :-condition_dim] *= damping

    def forward(self, noise: torch.Tensor, condition: torch.Tensor, totals: torch.Tensor,
                cell_noise: torch.Tensor | None = None, fluctuation_noise: torch.Tensor | None = None) -> torch.Tensor:
        """Showers (N, cells) in the unit of ``totals``, each summing to its total.

        Args:
            noise: (N, latent_dim) standard normal latent vectors.
            condition: (N, condition_dim) conditions.
            totals: (N,) total visible energies.
            cell_noise: (N, cells) standard normal draws for the electronic
                noise; drawn from torch's global generator when None.
            fluctuation_noise: (N, cells) standard normal draws for the
                sampling fluctuations (with ``fluctuations``); drawn when None.
        """
        hidden = torch.cat([self.trunk(torch.cat([noise, condition], dim=1)), condition], dim=1)
        layer_energy = torch.softmax(self.shares(hidden), dim=1) * totals.unsqueeze(1)
        if self.counts is not None:
            if fluctuation_noise is None:
                fluctuation_noise = torch.randn(len(hidden), self.geometry.num_cells, dtype=hidden.dtype)
            # 1 / sqrt(count) per layer, folded into the draws: each cell's share then moves by sqrt(share / count).
            spread = torch.exp(-0.5 * self.counts(hidden))
        parts = []
        # Layer by layer, each layer's logits contiguous (rows of the weight), then one concatenation:
        # several times faster than one product split into strided views and energies indexed per cell.
        for index, part in enumerate(self.geometry.layer_slices):
            pattern = self._pattern(nn.functional.linear(hidden, self.cells.weight[part], self.cells.bias[part]))
            if self.counts is not None:
                pattern = _fluctuate(pattern, fluctuation_noise[:, part] * spread[:, index:index + 1])
            parts.append(pattern * layer_energy[:, index:index + 1])
        showers = torch.cat(parts, dim=1)
        if cell_noise is None:
            cell_noise = torch.randn_like(showers)
        width = self.cell_noise
        variance = width * width
        showers = torch.addcmul(showers, cell_noise, width)
        # Independent Gaussians given their sum is zero: take the sum back out in proportion to each variance.
        return torch.addmm(showers, (cell_noise @ width).unsqueeze(1), (variance / variance.sum()).unsqueeze(0),
                           alpha=-1)

    def _pattern(self, logits: torch.Tensor) -> torch.Tensor:
        """One layer's cell logits (N, cells) -> a pattern over its cells that sums to one."""
        if self.pattern == "softmax":
            return torch.softmax(logits, dim=1)
        pattern = torch.relu(logits)
        return pattern / pattern.sum(dim=1, keepdim=True).clamp_min(1e-12)


def _fluctuate(pattern: torch.Tensor, scaled_noise: torch.Tensor) -> torch.Tensor:
    """Shares ``p`` moved to ``max(0, p + sqrt(p) * scaled_noise)`` and normalised to one again.

    A sliver of the unmoved pattern keeps the sum positive where every share would drop to zero; the
    square root's floor keeps its gradient finite at the exact zeros of relu patterns.
    """
    moved = torch.relu(torch.addcmul(pattern, torch.sqrt(pattern.clamp_min(1e-12)), scaled_noise)) + 1e-6 * pattern
    return moved / moved.sum(dim=1, keepdim=True)
