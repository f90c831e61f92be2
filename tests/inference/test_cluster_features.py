"""Cluster features: a calorimeter image's energetic clusters found above its own noise, placed finer than a voxel."""

from __future__ import annotations

import math

import pytest
import torch

from inference.ic.embeddings import make_embedding
from inference.ic.embeddings.clusters import ClusterFeatures

SHAPE = (35, 35, 20)
PER_CLUSTER = 6  # log(1 + energy), x, y, depth mean, depth spread, present


def blob(x: float, y: float, depth: float, energy: float) -> torch.Tensor:
    """A shower of ``energy`` (noise widths) centred at voxel coordinates (x, y), falling off with depth."""
    xs, ys, zs = (torch.arange(n, dtype=torch.float64) for n in SHAPE)
    lateral = torch.exp(-((xs[:, None] - x) ** 2 + (ys[None, :] - y) ** 2) / (2 * 0.7 ** 2))
    longitudinal = torch.exp(-((zs - depth) ** 2) / (2 * 1.5 ** 2))
    shape = lateral[:, :, None] * longitudinal
    return energy * shape / shape.sum()


def noise(seed: int) -> torch.Tensor:
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def clusters_of(image: torch.Tensor) -> torch.Tensor:
    features = ClusterFeatures(SHAPE)(image[None].float())[0]
    return features[:-2].reshape(-1, PER_CLUSTER)


def to_unit(index: float, extent: int) -> float:
    return -1 + 2 * index / (extent - 1)


def test_two_showers_are_found_in_energy_order_to_a_tenth_of_a_voxel():
    image = noise(0) + blob(10.3, 24.6, 3.0, 400.0) + blob(25.8, 8.4, 10.0, 900.0)
    found = clusters_of(image)
    assert found[:2, 5].tolist() == [1.0, 1.0]
    voxel = 2 / (SHAPE[0] - 1)
    for row, (x, y) in zip(found[:2], [(25.8, 8.4), (10.3, 24.6)]):
        assert abs(row[1].item() - to_unit(x, SHAPE[0])) < 0.1 * voxel
        assert abs(row[2].item() - to_unit(y, SHAPE[1])) < 0.1 * voxel
    # The deeper shower (the hadron's) comes first, being the more energetic.
    assert found[0, 3] > found[1, 3]
    assert math.expm1(found[0, 0].item()) == pytest.approx(900.0, rel=0.15)
    # Whatever noise left beside them is far weaker than either shower.
    assert all(math.expm1(energy) < 20 for energy in found[2:, 0].tolist())


def test_a_shower_moved_by_a_tenth_of_a_voxel_moves_its_cluster_by_as_much():
    before = clusters_of(noise(1) + blob(17.0, 17.0, 4.0, 600.0))
    after = clusters_of(noise(1) + blob(17.1, 17.0, 4.0, 600.0))
    moved = (after[0, 1] - before[0, 1]).item() / (2 / (SHAPE[0] - 1))
    assert moved == pytest.approx(0.1, abs=0.03)


def test_pure_noise_gives_no_cluster_stronger_than_noise_can_make():
    found = clusters_of(noise(2))
    assert found[:, 5].sum() <= 3
    assert all(math.expm1(energy) < 8 for energy in found[:, 0].tolist())


def test_the_threshold_follows_the_image_so_standardising_it_changes_no_position():
    image = noise(3) + blob(12.2, 20.7, 5.0, 500.0)
    raw, standardised = clusters_of(image), clusters_of((image - 0.3) / 0.05)
    assert torch.equal(raw[:, 5], standardised[:, 5])
    torch.testing.assert_close(raw[:, 1:5], standardised[:, 1:5], atol=1e-4, rtol=0)


def test_cnn_clusters_embeds_volumes_and_refuses_images_with_channels():
    embedding = make_embedding("cnn-clusters", SHAPE, 32)
    assert embedding(torch.randn(3, *SHAPE)).shape == (3, 32)
    assert make_embedding("cnn", SHAPE, 32).clusters is None
    with pytest.raises(ValueError, match=r"without a channel axis, got shape \(2, 35, 35, 20\)"):
        make_embedding("cnn-clusters", (2, *SHAPE), 32)
    with pytest.raises(ValueError, match="odd window"):
        ClusterFeatures(SHAPE, window=4)
