"""``SparseTensor``: the features of a batch of 3D images at their active sites only."""

from __future__ import annotations

from typing import Sequence

import torch

from inference.sparse.coordinates import CoordinateSet, as_shape


class SparseTensor:
    """Features at the active sites of B images of shape ``spatial_shape``.

    Row n of ``features`` belongs to the site ``coordinates[n] = (b, i, j, k)``:
    image b, position (i, j, k) along the three spatial dimensions in the order
    of a dense (B, C, D, H, W) tensor. Inactive sites hold zero.

    Layers return tensors built with ``replace_features`` where their active set
    is unchanged, so the kernel maps cached on the coordinate set are reused.

    Args:
        coordinates: (N, 4) integer rows of (batch index, i, j, k), all distinct.
        features: (N, C) or (N,) values, the latter taken as one channel.
        spatial_shape: the dense extents (D, H, W).
        batch_size: the number of images; by default one more than the largest
            batch index.

    Example:
        >>> dense = torch.zeros(2, 1, 8, 8, 8)
        >>> dense[0, 0, 1, 2, 3] = 5.0
        >>> sparse = SparseTensor.from_dense(dense)
        >>> sparse.coordinates.tolist(), sparse.features.tolist()
        ([[0, 1, 2, 3]], [[5.0]])
        >>> torch.equal(sparse.to_dense(), dense)
        True
    """

    def __init__(self, coordinates: torch.Tensor, features: torch.Tensor, spatial_shape: Sequence[int],
                 batch_size: int | None = None) -> None:
        site_set = CoordinateSet(coordinates.to(features.device), spatial_shape, batch_size)
        self._init(site_set, features)

    def _init(self, site_set: CoordinateSet, features: torch.Tensor) -> None:
        if features.dim() == 1:
            features = features.unsqueeze(1)
        if features.dim() != 2 or len(features) != len(site_set):
            raise ValueError(f"expected features of shape ({len(site_set)}, C), one row per active site, "
                             f"got {tuple(features.shape)}")
        self.site_set = site_set
        self.features = features

    @classmethod
    def on_sites(cls, site_set: CoordinateSet, features: torch.Tensor) -> "SparseTensor":
        """A tensor on an existing coordinate set, sharing its cached kernel maps."""
        tensor = cls.__new__(cls)
        tensor._init(site_set, features)
        return tensor

    def replace_features(self, features: torch.Tensor) -> "SparseTensor":
        """The same sites (and kernel-map cache) with new features of shape (N, C')."""
        return SparseTensor.on_sites(self.site_set, features)

    @property
    def coordinates(self) -> torch.Tensor:
        """(N, 4) int64 rows of (batch index, i, j, k)."""
        return self.site_set.coordinates

    @property
    def spatial_shape(self) -> tuple[int, int, int]:
        return self.site_set.spatial_shape

    @property
    def batch_size(self) -> int:
        return self.site_set.batch_size

    @property
    def num_channels(self) -> int:
        return self.features.shape[1]

    @property
    def device(self) -> torch.device:
        return self.features.device

    @property
    def dtype(self) -> torch.dtype:
        return self.features.dtype

    def __len__(self) -> int:
        return len(self.features)

    def __repr__(self) -> str:
        return (f"SparseTensor(active={len(self)}, channels={self.num_channels}, batch_size={self.batch_size}, "
                f"spatial_shape={self.spatial_shape}, dtype={self.dtype}, device={self.device})")

    @classmethod
    def from_dense(cls, dense: torch.Tensor) -> "SparseTensor":
        """The nonzero sites of a dense (B, D, H, W) or (B, C, D, H, W) tensor.

        A site is active where any channel is nonzero. Features stay connected
        to ``dense`` in the autograd graph; rows come in the order of the dense
        tensor's sites, which is also the order kernel maps are fastest for.
        """
        if dense.dim() == 4:
            dense = dense.unsqueeze(1)
        if dense.dim() != 5:
            raise ValueError(f"expected a dense tensor of shape (B, D, H, W) or (B, C, D, H, W), "
                             f"got {tuple(dense.shape)}")
        channels_last = dense.movedim(1, -1)
        active = (channels_last != 0).any(-1)
        coordinates = active.nonzero()
        features = channels_last[active]
        site_set = CoordinateSet(coordinates, dense.shape[2:], dense.shape[0], validate=False)
        return cls.on_sites(site_set, features)

    @classmethod
    def from_events(cls, events: Sequence[tuple[torch.Tensor, torch.Tensor]],
                    spatial_shape: Sequence[int]) -> "SparseTensor":
        """Batch single-image sparse events into one tensor, event b getting batch index b.

        Args:
            events: per image, (N_b, 3) integer coordinates and (N_b,) or
                (N_b, C) features; every event needs the same C.
            spatial_shape: the dense extents shared by the images.
        """
        if not events:
            raise ValueError("expected at least one event to batch")
        coordinates, features = [], []
        for index, (event_coordinates, event_features) in enumerate(events):
            if event_coordinates.dim() != 2 or event_coordinates.shape[1] != 3:
                raise ValueError(f"event {index}: expected coordinates of shape (N, 3), "
                                 f"got {tuple(event_coordinates.shape)}")
            batch_index = event_coordinates.new_full((len(event_coordinates), 1), index)
            coordinates.append(torch.cat((batch_index, event_coordinates), dim=1).long())
            features.append(event_features.unsqueeze(1) if event_features.dim() == 1 else event_features)
        channel_counts = {f.shape[1] for f in features}
        if len(channel_counts) != 1:
            raise ValueError(f"expected every event to have the same number of channels, got {sorted(channel_counts)}")
        stacked = torch.cat(features)
        return cls(torch.cat(coordinates).to(stacked.device), stacked, as_shape(spatial_shape), len(events))

    def to_dense(self) -> torch.Tensor:
        """The dense (B, C, D, H, W) tensor, zero at inactive sites; differentiable in ``features``."""
        dense = self.features.new_zeros((self.batch_size, *self.spatial_shape, self.num_channels))
        batch, i, j, k = self.coordinates.unbind(1)
        dense = dense.index_put((batch, i, j, k), self.features)
        return dense.movedim(-1, 1).contiguous()
