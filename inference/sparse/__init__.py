"""Sparse 3D convolutional networks: compute only at the active voxels of a sparse image.

A ``SparseTensor`` holds features at active sites (batch index and three
spatial coordinates). Layers map sparse tensors to sparse tensors and compose
with ``nn.Sequential``; kernel maps are cached per set of active sites, so a
stack of submanifold convolutions on one set builds its map once.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from inference.sparse import SparseTensor, SubmanifoldConv3d, SparseReLU, SparseGlobalPool
    >>> image = torch.zeros(2, 16, 16, 16)
    >>> image[0, 3, 4, 5] = image[1, 8, 8, 8] = 1.0
    >>> net = nn.Sequential(SubmanifoldConv3d(1, 8), SparseReLU(), SparseGlobalPool("max"))
    >>> net(SparseTensor.from_dense(image)).shape
    torch.Size([2, 8])
"""

from inference.sparse.activation import SparseActivation, SparseReLU
from inference.sparse.conv import SparseConv3d, SparseConvTranspose3d, SubmanifoldConv3d, from_dense_weight
from inference.sparse.coordinates import CoordinateSet
from inference.sparse.gather_scatter import convolve
from inference.sparse.kernel_map import (KernelMap, downsampling_map, submanifold_map,
                                         upsampling_map)
from inference.sparse.norm import SparseBatchNorm
from inference.sparse.pooling import SparseGlobalPool
from inference.sparse.tensor import SparseTensor

__all__ = [
    "CoordinateSet", "KernelMap", "SparseActivation", "SparseBatchNorm", "SparseConv3d",
    "SparseConvTranspose3d", "SparseGlobalPool", "SparseReLU", "SparseTensor", "SubmanifoldConv3d",
    "convolve", "downsampling_map", "from_dense_weight", "submanifold_map", "upsampling_map",
]
