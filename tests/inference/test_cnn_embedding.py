"""The dense CNN embedding's spatial moments: where an image's deposits lie, finer than its voxels."""

from __future__ import annotations

import pytest
import torch

from inference.ic.embeddings import make_embedding
from inference.ic.embeddings.cnn import SpatialMoments


def test_moments_give_the_total_position_and_spread_of_each_channel():
    maps = torch.zeros(1, 2, 5, 9)
    maps[0, 0, 1, 4] = 3.0                        # one deposit: row 1 of 5, column 4 of 9
    maps[0, 1, 2, 2], maps[0, 1, 2, 3] = 1.0, 3.0  # a deposit between two columns
    moments = SpatialMoments((5, 9))(maps)
    assert moments.shape == (1, 2 * 5)
    total, row_mean, row_std, column_mean, column_std = moments.reshape(5, 2)
    assert total.tolist() == pytest.approx(torch.log1p(torch.tensor([3.0, 4.0])).tolist())
    assert row_mean.tolist() == pytest.approx([-0.5, 0.0], abs=1e-5)
    assert column_mean[0].item() == pytest.approx(0.0, abs=1e-5)
    # Three quarters of the way from column 2 (-0.5) to column 3 (-0.25).
    assert column_mean[1].item() == pytest.approx(-0.3125, abs=1e-5)
    assert row_std.tolist() == pytest.approx([0.0, 0.0], abs=2e-3)
    assert column_std[1].item() == pytest.approx(0.25 * (0.75 * 0.25) ** 0.5, abs=2e-3)


def test_the_embedding_sees_a_deposit_move_by_a_twentieth_of_a_voxel():
    torch.manual_seed(0)
    shape = (35, 35, 20)
    embedding = make_embedding("cnn-moments", shape, 32)
    images = torch.zeros(2, *shape)
    images[0, 17, 17, 5], images[0, 17, 18, 5] = 1.0, 1.0
    images[1, 17, 17, 5], images[1, 17, 18, 5] = 1.1, 0.9  # the centroid moves 0.05 voxel in phi
    input_moments = embedding.moments[0](images.unsqueeze(1))  # total, then (mean, std) per axis
    phi_mean = input_moments[:, 3]
    assert (phi_mean[0] - phi_mean[1]).item() == pytest.approx(0.05 * 2 / 34, rel=1e-3)
    embedded = embedding(images)
    assert embedded.shape == (2, 32) and not torch.allclose(embedded[0], embedded[1])
    assert make_embedding("cnn", shape, 32).moments is None
