"""Kernel maps: caching per coordinate set, and both neighbour lookups agreeing."""

import torch
from torch import nn

from inference.sparse import SparseConv3d, SparseReLU, SparseTensor, SubmanifoldConv3d
from inference.sparse import kernel_map as kernel_map_module
from inference.sparse.kernel_map import build_submanifold_map
from tests.sparse._images import random_dense


def _count_builds(monkeypatch, name):
    calls = []
    original = getattr(kernel_map_module, name)

    def counting(*args, **kwargs):
        calls.append(args[1:])
        return original(*args, **kwargs)

    monkeypatch.setattr(kernel_map_module, name, counting)
    return calls


def test_a_stack_of_submanifold_convs_builds_one_map(monkeypatch):
    builds = _count_builds(monkeypatch, "build_submanifold_map")
    net = nn.Sequential(SubmanifoldConv3d(1, 4), SparseReLU(), SubmanifoldConv3d(4, 4), SparseReLU(),
                        SubmanifoldConv3d(4, 4), SubmanifoldConv3d(4, 2, 5))
    sparse = SparseTensor.from_dense(random_dense(2, 1, (8, 8, 8), 0.1, dtype=torch.float32))
    output = net(sparse)
    output.features.sum().backward()
    assert builds == [((3, 3, 3), (1, 1, 1)), ((5, 5, 5), (1, 1, 1))]
    assert output.site_set is sparse.site_set
    net(sparse)
    assert len(builds) == 2


def test_strided_maps_are_cached_and_shared(monkeypatch):
    builds = _count_builds(monkeypatch, "build_downsampling_map")
    sparse = SparseTensor.from_dense(random_dense(1, 1, (8, 8, 8), 0.1, dtype=torch.float32))
    first, second = SparseConv3d(1, 2)(sparse), SparseConv3d(1, 3)(sparse)
    assert first.site_set is second.site_set
    assert len(builds) == 1


def _pair_sets(kernel_map):
    bounds = kernel_map.bounds
    return [set(zip(kernel_map.in_indices[a:b].tolist(), kernel_map.out_indices[a:b].tolist()))
            for a, b in zip(bounds[:-1], bounds[1:])]


def test_table_and_binary_search_find_the_same_pairs():
    dense = random_dense(3, 1, (7, 9, 8), 0.3)
    generator = torch.Generator().manual_seed(5)
    sparse = SparseTensor.from_dense(dense)
    shuffled = torch.randperm(len(sparse), generator=generator)  # rows in no particular order
    sparse = SparseTensor(sparse.coordinates[shuffled], sparse.features[shuffled], sparse.spatial_shape)
    for kernel_size, dilation in [((3, 3, 3), (1, 1, 1)), ((5, 1, 3), (1, 2, 1))]:
        table = build_submanifold_map(sparse.site_set, kernel_size, dilation, use_table=True)
        search = build_submanifold_map(sparse.site_set, kernel_size, dilation, use_table=False)
        assert table.bounds == search.bounds and table.identity_offset == search.identity_offset
        assert _pair_sets(table) == _pair_sets(search)


def test_pair_count_is_the_number_of_active_neighbours():
    dense = random_dense(2, 1, (6, 6, 6), 0.4)
    sparse = SparseTensor.from_dense(dense)
    kernel_map = build_submanifold_map(sparse.site_set, (3, 3, 3), (1, 1, 1))
    indicator = (dense != 0).double()
    neighbours = nn.functional.conv3d(indicator, torch.ones(1, 1, 3, 3, 3, dtype=torch.float64), padding=1)
    assert kernel_map.num_pairs == int((neighbours * indicator).sum())
