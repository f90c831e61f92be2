"""Global pooling: one fixed-size vector per image from any number of active sites."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from inference.sparse.tensor import SparseTensor

PoolMode = Literal["mean", "max", "sum"]


class SparseGlobalPool(nn.Module):
    """Pool the active features of each image into a (B, C) tensor.

    Args:
        mode: ``"mean"`` or ``"sum"`` over an image's active sites, or the
            channel-wise ``"max"``. An image with no active site pools to zeros.
    """

    def __init__(self, mode: PoolMode = "mean") -> None:
        super().__init__()
        if mode not in ("mean", "max", "sum"):
            raise ValueError(f"expected mode 'mean', 'max' or 'sum', got {mode!r}")
        self.mode = mode

    def forward(self, x: SparseTensor) -> torch.Tensor:
        batch = x.coordinates[:, 0]
        pooled = x.features.new_zeros((x.batch_size, x.num_channels))
        if self.mode == "max":
            index = batch.unsqueeze(1).expand_as(x.features)
            return pooled.scatter_reduce(0, index, x.features, reduce="amax", include_self=False)
        pooled = pooled.index_add(0, batch, x.features)
        if self.mode == "mean":
            counts = torch.bincount(batch, minlength=x.batch_size).clamp_(min=1)
            pooled = pooled / counts.unsqueeze(1).to(pooled.dtype)
        return pooled

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"
