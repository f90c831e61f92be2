"""The gather-matmul-scatter kernel: chunking of pairs and argument checks."""

import pytest
import torch

from inference.sparse import KernelMap, convolve
from inference.sparse import gather_scatter
from inference.sparse.gather_scatter import _chunks


@pytest.mark.parametrize("counts, width, limit", [
    ([5, 0, 7, 1, 0, 0, 9], 1, 8),
    ([0, 0, 0], 4, 8),
    ([100, 1, 1, 1], 2, 8),
    ([3] * 27, 32, 1 << 18),
])
def test_chunks_cover_every_pair_once_in_order(monkeypatch, counts, width, limit):
    monkeypatch.setattr(gather_scatter, "CHUNK_ELEMENTS", limit)
    bounds = tuple(sum(counts[:n]) for n in range(len(counts) + 1))
    chunks = list(_chunks(bounds, width))
    covered = [offset for first, stop in chunks for offset in range(first, stop)]
    assert covered == sorted(set(covered))
    assert {n for n, count in enumerate(counts) if count} <= set(covered)
    for first, stop in chunks:
        assert bounds[stop] > bounds[first]
        assert stop - first == 1 or (bounds[stop] - bounds[first]) * width <= limit


def test_convolve_names_mismatched_shapes():
    kernel_map = KernelMap(torch.tensor([0]), torch.tensor([1]), (0, 0, 1), num_in=2, num_out=2)
    with pytest.raises(ValueError, match="weight of shape \\(2, C_in, C_out\\)"):
        convolve(torch.ones(2, 3), torch.ones(3, 3, 4), kernel_map)
    with pytest.raises(ValueError, match="features of shape \\(2, 3\\)"):
        convolve(torch.ones(5, 3), torch.ones(2, 3, 4), kernel_map)


def test_map_without_identity_offset_sums_pairs():
    kernel_map = KernelMap(torch.tensor([0, 1, 1]), torch.tensor([1, 0, 1]), (0, 2, 3), num_in=2, num_out=2)
    features = torch.tensor([[1.0], [2.0]])
    weight = torch.tensor([[[10.0]], [[100.0]]])
    # offset 0: row 0 -> 1 and row 1 -> 0 with weight 10; offset 1: row 1 -> 1 with weight 100.
    assert convolve(features, weight, kernel_map).tolist() == [[20.0], [10.0 + 200.0]]
