"""Sparse 3D convolution layers: submanifold, strided (downsampling) and transposed (upsampling).

Each layer's weight has shape (K, C_in, C_out), K = kd * kh * kw, with kernel
positions in row-major order; ``from_dense_weight`` converts a ``Conv3d`` or
``ConvTranspose3d`` weight. See ``kernel_map`` for which output sites each
layer makes active and for what dense convolution each one reproduces.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from inference.sparse.gather_scatter import convolve
from inference.sparse.kernel_map import (Triple, as_triple, downsampling_map, submanifold_map,
                                         upsampling_map)
from inference.sparse.tensor import SparseTensor


def from_dense_weight(weight: torch.Tensor, transposed: bool = False) -> torch.Tensor:
    """A dense convolution weight in the sparse layers' (K, C_in, C_out) layout.

    Args:
        weight: a ``Conv3d`` weight (C_out, C_in, kd, kh, kw), or with
            ``transposed`` a ``ConvTranspose3d`` weight (C_in, C_out, kd, kh, kw).
    """
    channels_first = weight if transposed else weight.transpose(0, 1)
    in_channels, out_channels = channels_first.shape[:2]
    return channels_first.permute(2, 3, 4, 0, 1).reshape(-1, in_channels, out_channels).contiguous()


class _SparseConvolution(nn.Module):
    """Weight, bias and their initialisation (that of ``Conv3d``), shared by the three layers."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
                 stride: int | Sequence[int], padding: int | Sequence[int], dilation: int | Sequence[int],
                 bias: bool) -> None:
        super().__init__()
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size: Triple = as_triple(kernel_size, "kernel_size")
        self.stride: Triple = as_triple(stride, "stride")
        self.padding: Triple = as_triple(padding, "padding")
        self.dilation: Triple = as_triple(dilation, "dilation")
        if min(self.kernel_size + self.stride + self.dilation) < 1 or min(self.padding) < 0:
            raise ValueError(f"expected positive kernel_size, stride and dilation and non-negative padding, "
                             f"got {self.kernel_size}, {self.stride}, {self.dilation} and {self.padding}")
        num_offsets = math.prod(self.kernel_size)
        self.weight = nn.Parameter(torch.empty(num_offsets, self.in_channels, self.out_channels))
        self.bias = nn.Parameter(torch.empty(self.out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform in +-1/sqrt(fan_in), as ``Conv3d``'s default initialisation draws."""
        bound = 1.0 / math.sqrt(self.in_channels * self.weight.shape[0])
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def _check(self, x: SparseTensor) -> None:
        if x.num_channels != self.in_channels:
            raise ValueError(f"{type(self).__name__} expects {self.in_channels} input channels, "
                             f"got a tensor with {x.num_channels}")

    def _with_bias(self, features: torch.Tensor) -> torch.Tensor:
        return features if self.bias is None else features + self.bias

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, bias={self.bias is not None}")


class SubmanifoldConv3d(_SparseConvolution):
    """A stride-1 convolution computed only at the active sites, which stay the active sites.

    Equals ``Conv3d(..., padding=dilation * (kernel_size - 1) // 2)`` at every
    active site. The kernel size must be odd.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int] = 3, *,
                 dilation: int | Sequence[int] = 1, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, 1, 0, dilation, bias)
        self.padding = tuple(d * (k - 1) // 2 for k, d in zip(self.kernel_size, self.dilation))
        if any(k % 2 == 0 for k in self.kernel_size):
            raise ValueError(f"a submanifold convolution needs an odd kernel size, got {self.kernel_size}")

    def forward(self, x: SparseTensor) -> SparseTensor:
        self._check(x)
        kernel_map = submanifold_map(x.site_set, self.kernel_size, self.dilation)
        return x.replace_features(self._with_bias(convolve(x.features, self.weight, kernel_map)))


class SparseConv3d(_SparseConvolution):
    """A (typically strided) convolution whose output sites are those with an active input in view.

    An output site is active when its receptive field holds at least one active
    input site; there it equals ``Conv3d`` with the same parameters, and
    without bias ``to_dense()`` of the result equals ``Conv3d`` everywhere.
    ``kernel_size=2, stride=2`` halves every extent with each input feeding one output.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int] = 2, *,
                 stride: int | Sequence[int] = 2, padding: int | Sequence[int] = 0,
                 dilation: int | Sequence[int] = 1, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, bias)

    def forward(self, x: SparseTensor) -> SparseTensor:
        self._check(x)
        kernel_map, out_sites = downsampling_map(x.site_set, self.kernel_size, self.stride, self.padding,
                                                 self.dilation)
        return SparseTensor.on_sites(out_sites, self._with_bias(convolve(x.features, self.weight, kernel_map)))


class SparseConvTranspose3d(_SparseConvolution):
    """The inverse of a ``SparseConv3d`` with the same geometry: back to that layer's input sites.

    The input must have come out of a ``SparseConv3d`` with the same
    ``kernel_size``, ``stride``, ``padding`` and ``dilation`` (any channels); its
    kernel map is reused, transposed. At the returned sites the result equals
    ``ConvTranspose3d`` with the same parameters (and the ``output_padding`` that
    restores the original extents). The weight is stored as (K, C_in, C_out);
    use ``from_dense_weight(w, transposed=True)`` for a ``ConvTranspose3d`` weight.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int] = 2, *,
                 stride: int | Sequence[int] = 2, padding: int | Sequence[int] = 0,
                 dilation: int | Sequence[int] = 1, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, bias)

    def forward(self, x: SparseTensor) -> SparseTensor:
        self._check(x)
        kernel_map, out_sites = upsampling_map(x.site_set, self.kernel_size, self.stride, self.padding,
                                               self.dilation)
        return SparseTensor.on_sites(out_sites, self._with_bias(convolve(x.features, self.weight, kernel_map)))
