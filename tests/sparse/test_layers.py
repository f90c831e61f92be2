"""Batch norm, activations and global pooling on active sites."""

import pytest
import torch
from torch import nn

from inference.sparse import SparseActivation, SparseBatchNorm, SparseGlobalPool, SparseReLU, SparseTensor
from tests.sparse._images import random_dense


def test_batch_norm_matches_batch_norm_1d_on_the_features():
    sparse = SparseTensor.from_dense(random_dense(3, 4, (6, 6, 6), 0.2))
    ours, reference = SparseBatchNorm(4).double(), nn.BatchNorm1d(4).double()
    for _ in range(2):
        torch.testing.assert_close(ours(sparse).features, reference(sparse.features))
    torch.testing.assert_close(ours.running_mean, reference.running_mean)
    torch.testing.assert_close(ours.running_var, reference.running_var)
    ours.eval(), reference.eval()
    output = ours(sparse)
    torch.testing.assert_close(output.features, reference(sparse.features))
    assert output.site_set is sparse.site_set


def test_batch_norm_statistics_ignore_inactive_sites():
    sparse = SparseTensor.from_dense(random_dense(2, 1, (8, 8, 8), 0.05))
    normalised = SparseBatchNorm(1, affine=False).double()(sparse).features
    assert abs(float(normalised.mean())) < 1e-12
    assert float(normalised.var(unbiased=False)) == pytest.approx(1.0, abs=1e-3)


def test_batch_norm_passes_an_empty_tensor_through():
    empty = SparseTensor.from_dense(torch.zeros(2, 3, 4, 4, 4))
    assert SparseBatchNorm(3)(empty) is empty


def test_activations_apply_to_features_only():
    sparse = SparseTensor.from_dense(random_dense(1, 2, (5, 5, 5), 0.3))
    assert torch.equal(SparseReLU()(sparse).features, sparse.features.clamp(min=0))
    assert torch.equal(SparseActivation(nn.Tanh())(sparse).features, sparse.features.tanh())
    assert SparseReLU()(sparse).site_set is sparse.site_set


@pytest.mark.parametrize("mode", ["mean", "max", "sum"])
def test_global_pool_per_image_with_an_empty_image(mode):
    dense = random_dense(3, 2, (5, 5, 5), 0.2)
    dense[1] = 0.0
    sparse = SparseTensor.from_dense(dense)
    sparse.features.requires_grad_()
    pooled = SparseGlobalPool(mode)(sparse)
    assert pooled.shape == (3, 2)
    for image in range(3):
        rows = sparse.features[sparse.coordinates[:, 0] == image]
        if len(rows) == 0:
            expected = torch.zeros(2, dtype=torch.float64)
        else:
            expected = {"mean": rows.mean(0), "max": rows.max(0).values, "sum": rows.sum(0)}[mode]
        torch.testing.assert_close(pooled[image], expected)
    pooled.sum().backward()
    assert sparse.features.grad.shape == sparse.features.shape


def test_unknown_pool_mode_is_named():
    with pytest.raises(ValueError, match="'median'"):
        SparseGlobalPool("median")
