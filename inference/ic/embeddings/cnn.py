"""Dense convolutional embeddings for 2D and 3D observations (detector images)."""

from __future__ import annotations

import torch
from torch import nn

from inference.ic.embeddings.clusters import ClusterFeatures


class SpatialMoments(nn.Module):
    """Where each channel's activation lies: its total, mean position and spread along each axis.

    For (B, C, *spatial) non-negative maps it returns (B, C * (1 + 2 * len(spatial))):
    per channel log(1 + total), then the activation-weighted mean of each axis's
    coordinate (scaled to [-1, 1]) and its standard deviation. A weighted mean
    interpolates between grid points, so it locates a deposit to a fraction of a
    voxel however coarse the map, which pooling to a fixed grid cannot.
    """

    def __init__(self, spatial_shape: tuple[int, ...]) -> None:
        super().__init__()
        for axis, extent in enumerate(spatial_shape):
            self.register_buffer(f"axis{axis}", torch.linspace(-1.0, 1.0, extent), persistent=False)
        self.spatial = len(spatial_shape)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        dims = tuple(range(2, 2 + self.spatial))
        total = maps.sum(dims)
        features = [total.log1p()]
        for axis in range(self.spatial):
            # An axis's moments need only the map's profile along it.
            profile = maps.sum(tuple(d for d in dims if d != 2 + axis))
            coordinate = getattr(self, f"axis{axis}")
            mean = (profile * coordinate).sum(2) / (total + 1e-6)
            square = (profile * coordinate ** 2).sum(2) / (total + 1e-6)
            features += [mean, (square - mean ** 2).clamp(min=0.0).add(1e-6).sqrt()]
        return torch.cat(features, dim=1)


class ConvEmbedding(nn.Module):
    """Two strided conv blocks, adaptive pooling to a fixed grid (optionally spatial moments or clusters), a linear map.

    Both convolutions have stride 2, so the costly first layer computes at an
    eighth of a volume's voxels (a quarter of an image's pixels): on CPU this is
    what keeps training on 35 x 35 x 20 calorimeter images at hundreds of traces
    per second. The pooled grid says roughly what is where; with ``moments=True``
    (the ``cnn-moments`` kind) the moments of the input's positive part and of
    both conv levels' maps (``SpatialMoments``) say precisely where, for images
    that fix a particle's direction to a small fraction of a voxel. On the tau
    calorimeter they did not yet pay: 0.07 nats per trace lower held-out loss
    after 20k traces, at 85% of the training rate (``benchmarks.tau_embedding``).
    The input's moments weigh every voxel, and on a calorimeter image 95% of its
    positive part is noise; ``clusters=True`` (the ``cnn-clusters`` kind) adds
    instead the positions and energies of the image's most energetic clusters
    above its noise (``ClusterFeatures``; images without a channel axis, a
    volume's last axis its depth). Neither paid on the tau calorimeter after
    250k training traces: held-out loss 0.11 +- 0.04 nats per trace above the
    grid alone, at 93% of its training rate (``benchmarks.tau_network_comparison``).

    Works for 2D images (H, W) and 3D volumes (D, H, W), optionally with a leading
    channel axis.
    """

    def __init__(self, input_shape: tuple[int, ...], embedding_dim: int, channels: int = 8,
                 moments: bool = False, clusters: bool = False) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        spatial = len(self.input_shape) if len(self.input_shape) in (2, 3) else len(self.input_shape) - 1
        if spatial not in (2, 3):
            raise ValueError(f"ConvEmbedding expects a 2D or 3D observation, got shape {self.input_shape}")
        self.has_channels = len(self.input_shape) == spatial + 1
        in_channels = self.input_shape[0] if self.has_channels else 1
        conv = nn.Conv2d if spatial == 2 else nn.Conv3d
        adaptive = nn.AdaptiveAvgPool2d if spatial == 2 else nn.AdaptiveAvgPool3d
        grid = 4 if spatial == 2 else 2
        self.first = nn.Sequential(conv(in_channels, channels, 3, stride=2, padding=1), nn.ReLU())
        self.second = nn.Sequential(conv(channels, 2 * channels, 3, stride=2, padding=1), nn.ReLU())
        self.pool = adaptive(grid)
        features = 2 * channels * grid ** spatial
        self.moments = None
        if moments:
            full = self.input_shape[-spatial:]
            half = tuple((extent + 1) // 2 for extent in full)
            quarter = tuple((extent + 1) // 2 for extent in half)
            self.moments = nn.ModuleList(SpatialMoments(shape) for shape in (full, half, quarter))
            features += (in_channels + channels + 2 * channels) * (1 + 2 * spatial)
        self.clusters = None
        if clusters:
            if self.has_channels:
                raise ValueError(f"cluster features need an image without a channel axis, got shape "
                                 f"{self.input_shape}")
            self.clusters = ClusterFeatures(self.input_shape)
            features += self.clusters.size
        self.project = nn.Linear(features, embedding_dim)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        images = observations
        if not self.has_channels:
            observations = observations.unsqueeze(1)
        first = self.first(observations)
        second = self.second(first)
        features = [self.pool(second).flatten(1)]
        if self.clusters is not None:
            features.append(self.clusters(images))
        if self.moments is not None:
            maps = (observations.clamp(min=0.0), first, second)
            features += [moments(level) for moments, level in zip(self.moments, maps)]
        return self.project(torch.cat(features, dim=1))
