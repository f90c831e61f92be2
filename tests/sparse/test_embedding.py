"""The sparse 3D CNN observation embedding: shapes, inputs it accepts, gradients."""

import pytest
import torch

from inference.ic.embeddings.sparse_cnn3d import SparseCNN3dEmbedding
from inference.sparse import SparseTensor
from tests.sparse._images import random_dense


@pytest.fixture
def embedding():
    torch.manual_seed(0)
    return SparseCNN3dEmbedding((9, 12, 16), 10, channels=(4, 8, 8))


def test_sparse_batch_gives_one_vector_per_image(embedding):
    events = [(torch.tensor([[0, 0, 0], [8, 11, 15], [4, 5, 6]]), torch.tensor([1.0, 2.0, 3.0])),
              (torch.tensor([[1, 2, 3]]), torch.tensor([0.5])),
              (torch.zeros(0, 3, dtype=torch.long), torch.zeros(0))]
    output = embedding(SparseTensor.from_events(events, (9, 12, 16)))
    assert output.shape == (3, 10) and torch.isfinite(output).all()


def test_dense_input_is_sparsified(embedding):
    dense = random_dense(4, 1, (9, 12, 16), 0.05, dtype=torch.float32)[:, 0]
    embedding.eval()
    from_dense = embedding(dense)
    from_sparse = embedding(SparseTensor.from_dense(dense))
    assert from_dense.shape == (4, 10)
    torch.testing.assert_close(from_dense, from_sparse)


def test_float64_observations_are_cast_to_the_parameters(embedding):
    assert embedding(random_dense(2, 1, (9, 12, 16), 0.05)[:, 0]).dtype == torch.float32


def test_channels_and_log_features():
    embedding = SparseCNN3dEmbedding((2, 8, 8, 8), 6, channels=(4,), log_features=True)
    dense = random_dense(3, 2, (8, 8, 8), 0.1, dtype=torch.float32) * 1000
    assert embedding(dense).shape == (3, 6)


def test_backpropagates_to_every_parameter(embedding):
    dense = random_dense(3, 1, (9, 12, 16), 0.05, dtype=torch.float32)[:, 0]
    embedding(dense).square().sum().backward()
    for name, parameter in embedding.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_empty_batch_gives_finite_embeddings(embedding):
    output = embedding(torch.zeros(2, 9, 12, 16))
    assert output.shape == (2, 10) and torch.isfinite(output).all()


@pytest.mark.parametrize("observations, message", [
    (torch.zeros(2, 9, 12, 15), "shape \\(9, 12, 16\\)"),
    (torch.zeros(9, 12, 16), "expected a batch"),
])
def test_mismatched_observations_are_named(embedding, observations, message):
    with pytest.raises(ValueError, match=message):
        embedding(observations)
