import pytest
import torch

from inference.sparse import SparseTensor
from tests.sparse._images import random_dense


def test_dense_round_trip_keeps_values_and_shape():
    dense = random_dense(3, 2, (5, 6, 7), 0.1)
    sparse = SparseTensor.from_dense(dense)
    assert sparse.batch_size == 3 and sparse.spatial_shape == (5, 6, 7) and sparse.num_channels == 2
    assert len(sparse) == int((dense != 0).any(1).sum())
    assert torch.equal(sparse.to_dense(), dense)


def test_four_dimensional_dense_is_one_channel():
    dense = random_dense(2, 1, (4, 4, 4), 0.2)[:, 0]
    sparse = SparseTensor.from_dense(dense)
    assert sparse.num_channels == 1
    assert torch.equal(sparse.to_dense()[:, 0], dense)


def test_from_dense_keeps_the_autograd_graph():
    dense = random_dense(1, 1, (4, 4, 4), 0.3).requires_grad_()
    SparseTensor.from_dense(dense).features.sum().backward()
    assert torch.equal(dense.grad, (dense != 0).to(dense.dtype))


def test_events_are_batched_with_a_batch_index_column():
    first = (torch.tensor([[0, 1, 2], [3, 3, 3]]), torch.tensor([1.0, 2.0]))
    empty = (torch.zeros(0, 3, dtype=torch.long), torch.zeros(0))
    last = (torch.tensor([[1, 1, 1]]), torch.tensor([5.0]))
    sparse = SparseTensor.from_events([first, empty, last], (4, 4, 4))
    assert sparse.batch_size == 3
    assert sparse.coordinates.tolist() == [[0, 0, 1, 2], [0, 3, 3, 3], [2, 1, 1, 1]]
    assert sparse.features.tolist() == [[1.0], [2.0], [5.0]]
    dense = sparse.to_dense()
    assert dense.shape == (3, 1, 4, 4, 4) and dense[1].abs().sum() == 0 and dense[2, 0, 1, 1, 1] == 5.0


def test_trailing_empty_event_counts_in_the_batch():
    sparse = SparseTensor.from_events([(torch.tensor([[0, 0, 0]]), torch.tensor([1.0])),
                                       (torch.zeros(0, 3, dtype=torch.long), torch.zeros(0))], (2, 2, 2))
    assert sparse.batch_size == 2 and sparse.to_dense().shape[0] == 2


def test_empty_tensor():
    sparse = SparseTensor.from_dense(torch.zeros(2, 3, 4, 4, 4))
    assert len(sparse) == 0 and sparse.features.shape == (0, 3)
    assert torch.equal(sparse.to_dense(), torch.zeros(2, 3, 4, 4, 4))


@pytest.mark.parametrize("coordinates, message", [
    (torch.tensor([[0, 4, 0, 0]]), "column 1"),
    (torch.tensor([[0, 0, 0, -1]]), "column 3"),
    (torch.tensor([[1, 1, 1, 1], [1, 1, 1, 1]]), "repeated"),
    (torch.tensor([[0, 1, 1]]), "shape \\(N, 4\\)"),
    (torch.tensor([[0.0, 1.0, 1.0, 1.0]]), "integer"),
])
def test_bad_coordinates_are_named(coordinates, message):
    with pytest.raises(ValueError, match=message):
        SparseTensor(coordinates, torch.ones(len(coordinates), 2), (4, 4, 4))


def test_feature_rows_must_match_sites():
    with pytest.raises(ValueError, match="one row per active site"):
        SparseTensor(torch.tensor([[0, 1, 1, 1]]), torch.ones(2, 1), (4, 4, 4))


def test_replace_features_shares_the_sites():
    sparse = SparseTensor.from_dense(random_dense(1, 1, (4, 4, 4), 0.3))
    other = sparse.replace_features(torch.zeros(len(sparse), 5))
    assert other.site_set is sparse.site_set and other.num_channels == 5
