"""Convolution along a kernel map: gather, one matmul per kernel offset, scatter-add.

``out[o] = sum over pairs (i, o, n) of features[i] @ weight[n]`` with ``weight``
of shape (K, C_in, C_out). The identity offset of a submanifold map is a plain
matmul. The other pairs are taken in chunks of consecutive offsets: one
``index_select`` gathers a chunk's input rows, one matmul per offset multiplies
its slice into one buffer, and one ``index_add_`` sums the buffer into the
output rows. Chunks hold about ``CHUNK_ELEMENTS`` values, so the buffers stay in
cache and are recycled by the allocator; a sparse map fits in one chunk.

The backward pass walks the same chunks once: the gathered output gradients
serve both the input gradient (the same three steps along the transposed map)
and the weight gradient (input rows gathered again rather than kept from the
forward pass, so no per-pair buffer stays alive between the passes).
"""

from __future__ import annotations

from typing import Any, Iterator, Optional

import torch
from torch.autograd.function import once_differentiable

from inference.sparse.kernel_map import KernelMap

CHUNK_ELEMENTS = 1 << 18
"""Values (pairs x channels) per gathered buffer; measured on CPU, chunks of about 1 MiB of
float32 beat both one buffer for all pairs and one per offset when maps are dense."""


def _chunks(bounds: tuple[int, ...], width: int) -> Iterator[tuple[int, int]]:
    """Runs ``[first, stop)`` of consecutive offsets with pairs, of about ``CHUNK_ELEMENTS / width`` pairs each."""
    limit = max(1, CHUNK_ELEMENTS // max(width, 1))
    first = 0
    for offset in range(len(bounds) - 1):
        if offset > first and bounds[offset + 1] - bounds[first] > limit:
            if bounds[offset] > bounds[first]:
                yield first, offset
            first = offset
    if bounds[-1] > bounds[first]:
        yield first, len(bounds) - 1


def _segment_products(rows: torch.Tensor, weight: torch.Tensor, bounds: tuple[int, ...], first: int, stop: int,
                      transpose: bool) -> torch.Tensor:
    """For offsets ``first`` to ``stop - 1``, their slice of ``rows`` times ``weight[n]`` (or its transpose)."""
    width = weight.shape[1] if transpose else weight.shape[2]
    products = rows.new_empty((len(rows), width))
    base = bounds[first]
    for offset in range(first, stop):
        start, end = bounds[offset] - base, bounds[offset + 1] - base
        if end > start:
            matrix = weight[offset].t() if transpose else weight[offset]
            torch.mm(rows[start:end], matrix, out=products[start:end])
    return products


def _propagate(source: torch.Tensor, weight: torch.Tensor, kernel_map: KernelMap, transpose: bool) -> torch.Tensor:
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
    bounds = kernel_map.bounds
    for first, stop in _chunks(bounds, max(weight.shape[1], weight.shape[2])):
        pairs = slice(bounds[first], bounds[stop])
        gathered = source.index_select(0, gather_rows[pairs])
        out.index_add_(0, scatter_rows[pairs], _segment_products(gathered, weight, bounds, first, stop, transpose))
    return out


def _gradients(features: torch.Tensor, weight: torch.Tensor, kernel_map: KernelMap, grad_out: torch.Tensor,
               need_features: bool, need_weight: bool) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    """Gradients with respect to the features and the weight, from one pass over the chunks."""
    identity = kernel_map.identity_offset
    grad_features = grad_weight = None
    if need_features:
        if identity is not None:
            grad_features = grad_out @ weight[identity].t()
        else:
            grad_features = features.new_zeros(features.shape)
    if need_weight:
        grad_weight = torch.zeros_like(weight)
        if identity is not None:
            torch.mm(features.t(), grad_out, out=grad_weight[identity])
    bounds = kernel_map.bounds
    for first, stop in _chunks(bounds, max(weight.shape[1], weight.shape[2])):
        pairs = slice(bounds[first], bounds[stop])
        gathered_grad = grad_out.index_select(0, kernel_map.out_indices[pairs])
        if need_features:
            products = _segment_products(gathered_grad, weight, bounds, first, stop, transpose=True)
            grad_features.index_add_(0, kernel_map.in_indices[pairs], products)
        if need_weight:
            gathered = features.index_select(0, kernel_map.in_indices[pairs])
            base = bounds[first]
            for offset in range(first, stop):
                start, end = bounds[offset] - base, bounds[offset + 1] - base
                if end > start:
                    torch.mm(gathered[start:end].t(), gathered_grad[start:end], out=grad_weight[offset])
    return grad_features, grad_weight


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
        grad_features, grad_weight = _gradients(features, weight, ctx.kernel_map, grad_out.contiguous(),
                                                ctx.needs_input_grad[0], ctx.needs_input_grad[1])
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
