"""From (particle kind, incident energy) to a shower: conditioning, response model and generator in turn."""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn

from inference.surrogate.conditioning import Conditioning
from inference.surrogate.config import SurrogateConfig
from inference.surrogate.generator import ShowerGenerator
from inference.surrogate.geometry import Geometry
from inference.surrogate.mean_shape import MeanShapes
from inference.surrogate.response import ResponseModel

UNIFORM_EDGE = 1e-6
"""Response levels are kept this far inside (0, 1) so that their normal scores stay finite."""


class ShowerSampler(nn.Module):
    """Draws showers: a response from the response model, then the generator's shape for it.

    The generator's condition (``generator_condition``) is the kind and energy
    condition, the one-hot kind times the standardised log energy (so that a
    linear function of the condition can follow each kind's own energy
    dependence, as ``ShowerGenerator.start_from_mean_shape`` needs), and the
    normal score of the response's level (its quantile in the response
    distribution for that kind and energy).

    Args:
        conditioning: maps (kind, energy) to the condition.
        response: draws the total visible energy over the incident energy.
        generator: spreads the total over the cells.
    """

    def __init__(self, conditioning: Conditioning, response: ResponseModel, generator: ShowerGenerator) -> None:
        super().__init__()
        if response.num_kinds != conditioning.num_kinds:
            raise ValueError(f"the response model knows {response.num_kinds} particle kinds, the conditioning "
                             f"{conditioning.num_kinds}")
        self.conditioning = conditioning
        self.response = response
        self.generator = generator

    @classmethod
    def from_config(cls, config: SurrogateConfig, geometry: Geometry, conditioning: Conditioning,
                    response: ResponseModel) -> "ShowerSampler":
        """A sampler with a freshly initialised generator of ``config``'s architecture."""
        generator = ShowerGenerator(geometry, cls.condition_dim(conditioning), config.latent_dim,
                                    config.generator_hidden, config.cell_pattern, config.generator_layers,
                                    config.cell_fluctuations)
        return cls(conditioning, response, generator)

    @staticmethod
    def condition_dim(conditioning: Conditioning) -> int:
        """Size of the generator's condition vector."""
        return conditioning.dim + conditioning.num_kinds + 1

    def generator_condition(self, kinds: torch.Tensor, energies: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
        """(N, condition_dim) conditions for kinds, energies and response levels in (0, 1)."""
        condition = self.conditioning(kinds, energies)
        kinds_dim = self.conditioning.num_kinds
        score = torch.special.ndtri(levels.clamp(UNIFORM_EDGE, 1.0 - UNIFORM_EDGE))
        return torch.cat([condition, condition[:, :kinds_dim] * condition[:, kinds_dim:kinds_dim + 1],
                          score.unsqueeze(1)], dim=1)

    def start_from_mean_shape(self, shapes: MeanShapes) -> None:
        """Start the generator at these mean shapes (see ``mean_shape``), at the median response."""
        kinds = torch.from_numpy(shapes.kinds)
        condition = self.generator_condition(kinds, torch.from_numpy(shapes.energies.astype(np.float32)),
                                             torch.full((len(kinds),), 0.5))
        self.generator.start_from_mean_shape(condition, torch.from_numpy(shapes.layer_shares),
                                             torch.from_numpy(shapes.cell_shares), torch.from_numpy(shapes.counts))

    def forward(self, kinds: torch.Tensor, energies: torch.Tensor,
                noise: Optional[torch.Generator] = None) -> torch.Tensor:
        """(N,) kinds and (N,) positive energies -> (N, cells) showers in the unit of ``energies``.

        Args:
            kinds: particle kind indices.
            energies: incident energies (float32).
            noise: the generator of every random number drawn (None: torch's global one).
        """
        responses, levels = self.response.sample(kinds, energies, noise)
        condition = self.generator_condition(kinds, energies, levels)
        latent = torch.randn(len(kinds), self.generator.latent_dim, generator=noise, dtype=energies.dtype)
        cells = self.generator.geometry.num_cells
        cell_noise = torch.randn(len(kinds), cells, generator=noise, dtype=energies.dtype)
        fluctuations = (torch.randn(len(kinds), cells, generator=noise, dtype=energies.dtype)
                        if self.generator.fluctuations else None)
        return self.generator(latent, condition, responses * energies, cell_noise, fluctuations)
