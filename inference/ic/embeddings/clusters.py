"""The most energetic clusters of a calorimeter image, located to a fraction of a voxel.

A detector image is mostly electronic noise: on the tau calorimeter 0.4% of the
voxels stand above three noise widths, and the positive part of the
standardised image is 95% noise. Features that weigh every voxel (pooled grids,
whole-image moments) therefore say little about where the particles struck.
``ClusterFeatures`` does what a calorimeter's own reconstruction does: it keeps
the voxels above a threshold set from the event's own noise, finds the local
maxima of their energy in the transverse plane, and reports the K most
energetic, each with its energy and energy-weighted position (which interpolates
between voxels) in a window around the maximum.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NOISE_WIDTHS = 4.0
"""Voxels count as hits above the image's median by this many noise widths: at 4, fewer than one
of the tau calorimeter's 24,500 voxels is a hit by noise alone in an average event (at 3, 30)."""
MAD_TO_SIGMA = 1.4826
"""A normal distribution's standard deviation over its median absolute deviation."""


class ClusterFeatures(nn.Module):
    """(B, *image_shape) images -> (B, size) features of their ``count`` most energetic clusters.

    Images are 2D ``(X, Y)`` or 3D ``(X, Y, depth)``: clusters are found on the
    transverse ``(X, Y)`` plane, a volume's hits summed over its last axis. The
    noise width is the image's median absolute deviation (robust: the hits are
    too few to move it), so the threshold needs no calibration and is the same
    for any affine standardisation of the image.

    Per cluster, by decreasing energy: log(1 + energy) in the window (the image's
    units above its median), the energy-weighted mean of each transverse
    coordinate (scaled to [-1, 1]), for volumes the mean and spread of the
    depth (scaled to [-1, 1]; a shower's depth tells photons and electrons
    from hadrons), and 1 where the cluster exists (0 pads the list when an
    image has fewer). Then two totals: log(1 + hit energy) and log(1 + hits).

    Args:
        image_shape: ``(X, Y)`` or ``(X, Y, depth)``.
        count: clusters reported.
        window: the side of the square window summed around each maximum (odd).
    """

    def __init__(self, image_shape: tuple[int, ...], count: int = 6, window: int = 3) -> None:
        super().__init__()
        if len(image_shape) not in (2, 3):
            raise ValueError(f"cluster features need a 2D image or 3D volume, got shape {tuple(image_shape)}")
        if count < 1 or window < 1 or window % 2 == 0:
            raise ValueError(f"cluster features need count >= 1 and an odd window, got count {count}, "
                             f"window {window}")
        self.image_shape = tuple(image_shape)
        self.count = count
        self.window = window
        self.has_depth = len(image_shape) == 3
        for name, extent in zip(("x", "y", "depth"), self.image_shape):
            self.register_buffer(f"{name}_axis", torch.linspace(-1.0, 1.0, extent), persistent=False)
        self.per_cluster = 3 + (2 if self.has_depth else 0) + 1
        self.size = count * self.per_cluster + 2

    def hits(self, images: torch.Tensor) -> torch.Tensor:
        """The images above their median where they stand ``NOISE_WIDTHS`` noise widths above it, else 0."""
        flat = images.flatten(1)
        median = flat.median(dim=1).values
        noise = MAD_TO_SIGMA * (flat - median[:, None]).abs().median(dim=1).values
        shape = (-1,) + (1,) * (images.dim() - 1)
        above = images - median.reshape(shape)
        return torch.where(above > NOISE_WIDTHS * noise.reshape(shape), above, torch.zeros_like(above))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        hits = self.hits(images)
        batch = hits.shape[0]
        plane = hits.sum(-1) if self.has_depth else hits
        # Energy-weighted sums over each pixel's window: energy, x, y (and depth, depth squared).
        weighted = [plane, plane * self.x_axis[:, None], plane * self.y_axis[None, :]]
        if self.has_depth:
            weighted += [(hits * self.depth_axis).sum(-1), (hits * self.depth_axis ** 2).sum(-1)]
        sums = F.avg_pool2d(torch.stack(weighted, dim=1), self.window, stride=1, padding=self.window // 2,
                            count_include_pad=True, divisor_override=1)
        peaks = (plane == F.max_pool2d(plane[:, None], 3, stride=1, padding=1)[:, 0]) & (plane > 0)
        score = torch.where(peaks, sums[:, 0], torch.zeros_like(plane)).flatten(1)
        top, where = score.topk(min(self.count, score.shape[1]), dim=1)
        chosen = sums.flatten(2).gather(2, where[:, None, :].expand(-1, sums.shape[1], -1))
        energy = chosen[:, 0]
        present = (top > 0).to(images.dtype)
        safe = energy.clamp_min(1e-12)
        features = [energy.log1p(), present * chosen[:, 1] / safe, present * chosen[:, 2] / safe]
        if self.has_depth:
            depth = present * chosen[:, 3] / safe
            square = present * chosen[:, 4] / safe
            features += [depth, (square - depth ** 2).clamp_min(0.0).sqrt()]
        features.append(present)
        clusters = torch.stack(features, dim=2)
        if clusters.shape[1] < self.count:
            clusters = F.pad(clusters, (0, 0, 0, self.count - clusters.shape[1]))
        totals = torch.stack([hits.flatten(1).sum(1).log1p(), (hits.flatten(1) > 0).sum(1).to(images.dtype).log1p()],
                             dim=1)
        return torch.cat([clusters.reshape(batch, -1), totals], dim=1)
