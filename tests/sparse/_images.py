"""Random sparse images for the sparse-convolution tests."""

from __future__ import annotations

import torch


def random_dense(batch: int, channels: int, shape: tuple[int, int, int], occupancy: float,
                 seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A (B, C, D, H, W) tensor whose sites are active with probability ``occupancy``.

    Active sites get standard normal values in every channel (never exactly zero).
    """
    generator = torch.Generator().manual_seed(seed)
    active = torch.rand((batch, 1, *shape), generator=generator) < occupancy
    values = torch.randn((batch, channels, *shape), generator=generator, dtype=dtype)
    values = values + torch.where(values >= 0, 0.1, -0.1).to(dtype)
    return values * active


def active_mask(dense: torch.Tensor) -> torch.Tensor:
    """(B, D, H, W) bool: sites where any channel of ``dense`` is nonzero."""
    return (dense != 0).any(1)


def at_sites(dense: torch.Tensor, coordinates: torch.Tensor) -> torch.Tensor:
    """The (N, C) rows of a dense (B, C, D, H, W) tensor at (N, 4) coordinates."""
    batch, i, j, k = coordinates.unbind(1)
    return dense.movedim(1, -1)[batch, i, j, k]
