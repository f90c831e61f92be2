"""Feed-forward embedding for observations that are scalars or small vectors."""

from __future__ import annotations

import math

import torch
from torch import nn


class FeedForwardEmbedding(nn.Module):
    """Flattens each observation and maps it through a two-layer MLP to ``embedding_dim``."""

    def __init__(self, input_shape: tuple[int, ...], embedding_dim: int, hidden_dim: int = 64) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        size = math.prod(self.input_shape)
        self.net = nn.Sequential(nn.Linear(size, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, embedding_dim))

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.net(observations.reshape(observations.shape[0], -1))
