"""Batch normalisation over the active sites of a sparse tensor."""

from __future__ import annotations

from torch import nn

from inference.sparse.tensor import SparseTensor


class SparseBatchNorm(nn.BatchNorm1d):
    """``BatchNorm1d`` over the (N, C) features: statistics come from active sites only.

    Inactive sites are not zeros to be normalised but absent, so the mean and
    variance of each channel are taken over the N active sites of the whole
    batch. Takes ``BatchNorm1d``'s arguments. A tensor with no active site passes
    through unchanged; in training mode one active site is an error, as it is
    for ``BatchNorm1d``.
    """

    def forward(self, x: SparseTensor) -> SparseTensor:  # type: ignore[override]
        if len(x) == 0:
            return x
        return x.replace_features(super().forward(x.features))
