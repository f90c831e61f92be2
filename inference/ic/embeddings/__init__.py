"""Observation embeddings, chosen per observed name from the observation's shape or by the user.

Each is an ``nn.Module`` built as ``Embedding(input_shape, embedding_dim)`` whose
forward maps a batch (B, *input_shape) to (B, embedding_dim). One with a true
``takes_sparse`` attribute is given sparse observations as one
``inference.sparse.SparseTensor`` instead.
"""

from __future__ import annotations

import functools
from typing import Callable

from torch import nn

from inference.ic.embeddings.cnn import ConvEmbedding
from inference.ic.embeddings.feedforward import FeedForwardEmbedding

EMBEDDINGS: dict[str, Callable[..., nn.Module]] = {
    "feedforward": FeedForwardEmbedding,
    "cnn": ConvEmbedding,
    "cnn-moments": functools.partial(ConvEmbedding, moments=True),
    "cnn-clusters": functools.partial(ConvEmbedding, clusters=True),
}


def _sparse_cnn3d(input_shape: tuple[int, ...], embedding_dim: int) -> nn.Module:
    from inference.ic.embeddings.sparse_cnn3d import SparseCNN3dEmbedding
    return SparseCNN3dEmbedding(tuple(input_shape), embedding_dim, coordinate_features=True)


EMBEDDINGS["sparse3d"] = _sparse_cnn3d


def default_embedding(input_shape: tuple[int, ...], sparse: bool = False) -> str:
    """Feed-forward for scalars and vectors, a CNN for 2D and 3D arrays, the sparse 3D CNN for
    sparse 3D arrays."""
    if sparse and len(input_shape) == 3:
        return "sparse3d"
    return "cnn" if len(input_shape) in (2, 3) and min(input_shape) >= 3 else "feedforward"


def make_embedding(kind: str, input_shape: tuple[int, ...], embedding_dim: int) -> nn.Module:
    if kind not in EMBEDDINGS:
        raise ValueError(f"unknown observation embedding {kind!r}; choose from {', '.join(sorted(EMBEDDINGS))}")
    return EMBEDDINGS[kind](tuple(input_shape), embedding_dim)
