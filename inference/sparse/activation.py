"""Element-wise activations applied to the features of a sparse tensor."""

from __future__ import annotations

from torch import nn

from inference.sparse.tensor import SparseTensor


class SparseActivation(nn.Module):
    """Apply an element-wise ``nn.Module`` (``nn.GELU()``, ``nn.Tanh()``, ...) to the active features.

    Only functions with f(0) = 0 keep the meaning that inactive sites hold zero.
    """

    def __init__(self, activation: nn.Module) -> None:
        super().__init__()
        self.activation = activation

    def forward(self, x: SparseTensor) -> SparseTensor:
        return x.replace_features(self.activation(x.features))


class SparseReLU(SparseActivation):
    """``ReLU`` on the active features."""

    def __init__(self) -> None:
        super().__init__(nn.ReLU())
