"""Convolution along a kernel map: gather, one matmul per kernel offset, scatter-add.

``out[o] = sum over pairs (i, o, n) of features[i] @ weight[n]`` with ``weight``
of shape (K, C_in, C_out). All pairs are gathered in one ``index_select``,
multiplied offset by offset into slices of one buffer, and summed into the
output rows by one ``index_add_``; an identity offset is a plain matmul. The
backward pass runs the same three steps along the transposed map, so it costs
about twice the forward and keeps no per-pair buffer alive between the passes.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch.autograd.function import once_differentiable

from inference.sparse.kernel_map import KernelMap


def _segment_products(rows: torch.Tensor, weight: torch.Tensor, bounds: tuple[int, ...],
                      transpose: bool) -> torch.Tensor:
    """``rows[bounds[n]:bounds[n+1]] @ weight[n]`` (or ``weight[n].T``) for every offset n, in one buffer."""
    width = weight.shape[1] if transpose else weight.shape[2]
    products = rows.new_empty((len(rows), width))
    for offset in range(len(bounds) - 1):
        start, stop = bounds[offset], bounds[offset + 1]
        if stop > start:
            matrix = weight[offset].t() if transpose else weight[offset]
            torch.mm(rows[start:stop], matrix, out=products[start:stop])
    return products


def _propagate(source: torch.Tensor, weight: torch.Tensor, kernel_map: KernelMap, transpose: bool,
               gathered: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Features carried along ``kernel_map`` (or along its transpose, with transposed weights)."""
    gather_rows, scatter_rows = kernel_map.in_indices, kernel_map.out_indices
    num_rows = kernel_map.num_out
    if transpose:
        gather_rows, scatter_rows, num_rows = scatter_rows, gather_rows, kernel_map.num_in
    width = weight.shape[1] if transpose else weight.shape[2]
    if kernel_map.identity_offset is not None:
        centre = weight[kernel_map.identity_offset]
        out = source @ (centre.t() if transpose else centre)
    else:
        out = source.new_zeros((num_rows, width))
    if len(gather_rows):
        if gathered is None:
            gathered = source.index_select(0, gather_rows)
        out.index_add_(0, scatter_rows, _segment_products(gathered, weight, kernel_map.bounds, transpose))
    return out


def _weight_gradient(features: torch.Tensor, gathered_grad: torch.Tensor, grad_out: torch.Tensor,
                     weight: torch.Tensor, kernel_map: KernelMap) -> torch.Tensor:
    grad_weight = torch.zeros_like(weight)
    if kernel_map.identity_offset is not None:
        torch.mm(features.t(), grad_out, out=grad_weight[kernel_map.identity_offset])
    if len(kernel_map.in_indices):
        gathered = features.index_select(0, kernel_map.in_indices)
        for offset in range(kernel_map.num_offsets):
            start, stop = kernel_map.bounds[offset], kernel_map.bounds[offset + 1]
            if stop > start:
                torch.mm(gathered[start:stop].t(), gathered_grad[start:stop], out=grad_weight[offset])
    return grad_weight


class _KernelMapConvolution(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, features: torch.Tensor, weight: torch.Tensor, kernel_map: KernelMap) -> torch.Tensor:
        ctx.save_for_backward(features, weight)
        ctx.kernel_map = kernel_map
        return _propagate(features, weight, kernel_map, transpose=False)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Optional[torch.Tensor], ...]:
        features, weight = ctx.saved_tensors
        kernel_map: KernelMap = ctx.kernel_map
        grad_out = grad_out.contiguous()
        gathered_grad = grad_out.index_select(0, kernel_map.out_indices) if len(kernel_map.out_indices) else None
        grad_features = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_features = _propagate(grad_out, weight, kernel_map, transpose=True, gathered=gathered_grad)
        if ctx.needs_input_grad[1]:
            grad_weight = _weight_gradient(features, gathered_grad, grad_out, weight, kernel_map)
        return grad_features, grad_weight, None


def convolve(features: torch.Tensor, weight: torch.Tensor, kernel_map: KernelMap) -> torch.Tensor:
    """Convolve (N_in, C_in) features along ``kernel_map`` with a (K, C_in, C_out) weight.

    Returns:
        The (N_out, C_out) output features, differentiable in ``features`` and ``weight``.
    """
    if weight.dim() != 3 or weight.shape[0] != kernel_map.num_offsets:
        raise ValueError(f"expected a weight of shape ({kernel_map.num_offsets}, C_in, C_out), "
                         f"got {tuple(weight.shape)}")
    if features.shape != (kernel_map.num_in, weight.shape[1]):
        raise ValueError(f"expected features of shape ({kernel_map.num_in}, {weight.shape[1]}), "
                         f"got {tuple(features.shape)}")
    return _KernelMapConvolution.apply(features.contiguous(), weight.contiguous(), kernel_map)
