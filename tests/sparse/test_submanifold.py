"""Submanifold convolution against a dense Conv3d in float64: outputs and gradients at active sites."""

import pytest
import torch
from torch import nn

from inference.sparse import SparseTensor, SubmanifoldConv3d, from_dense_weight
from inference.sparse import gather_scatter
from inference.sparse import kernel_map as kernel_map_module
from tests.sparse._images import at_sites, random_dense

TOLERANCE = dict(rtol=1e-5, atol=1e-10)


def _conv_pair(in_channels, out_channels, kernel_size, dilation, seed=0):
    torch.manual_seed(seed)
    kernel = (kernel_size,) * 3 if isinstance(kernel_size, int) else kernel_size
    dense = nn.Conv3d(in_channels, out_channels, kernel, dilation=dilation,
                      padding=tuple(dilation * (k - 1) // 2 for k in kernel)).double()
    sparse = SubmanifoldConv3d(in_channels, out_channels, kernel, dilation=dilation).double()
    with torch.no_grad():
        sparse.weight.copy_(from_dense_weight(dense.weight))
        sparse.bias.copy_(dense.bias)
    return dense, sparse


def assert_matches_dense(dense_input, in_channels, out_channels, kernel_size, dilation=1):
    dense_conv, sparse_conv = _conv_pair(in_channels, out_channels, kernel_size, dilation)
    dense_input = dense_input.clone().requires_grad_()
    sparse_input = SparseTensor.from_dense(dense_input.detach())
    sparse_input.features.requires_grad_()
    coordinates = sparse_input.coordinates

    sparse_output = sparse_conv(sparse_input)
    dense_output = dense_conv(dense_input)
    assert torch.equal(sparse_output.coordinates, coordinates)
    torch.testing.assert_close(sparse_output.features, at_sites(dense_output, coordinates), **TOLERANCE)

    upstream = torch.randn(sparse_output.features.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    (sparse_output.features * upstream).sum().backward()
    (at_sites(dense_output, coordinates) * upstream).sum().backward()
    torch.testing.assert_close(sparse_input.features.grad, at_sites(dense_input.grad, coordinates), **TOLERANCE)
    torch.testing.assert_close(sparse_conv.weight.grad, from_dense_weight(dense_conv.weight.grad), **TOLERANCE)
    torch.testing.assert_close(sparse_conv.bias.grad, dense_conv.bias.grad, **TOLERANCE)


@pytest.fixture(params=["table, one chunk", "search, small chunks"])
def lookup(request, monkeypatch):
    """Run each test twice: dense-table neighbour lookup with all pairs in one chunk, and binary
    search with a few offsets' pairs per chunk."""
    if request.param.startswith("table"):
        monkeypatch.setattr(kernel_map_module, "LOOKUP_TABLE_SITES_PER_ACTIVE", 1 << 30)
    else:
        monkeypatch.setattr(kernel_map_module, "LOOKUP_TABLE_LIMIT", 0)
        monkeypatch.setattr(gather_scatter, "CHUNK_ELEMENTS", 64)
    return request.param


@pytest.mark.parametrize("batch, in_channels, out_channels, shape, occupancy, kernel_size, dilation", [
    (1, 1, 4, (8, 8, 8), 0.1, 3, 1),
    (3, 3, 5, (9, 7, 8), 0.2, 3, 1),
    (2, 2, 3, (7, 7, 7), 0.15, 5, 1),
    (2, 2, 3, (6, 6, 6), 0.3, 1, 1),
    (2, 2, 2, (6, 7, 8), 0.2, (3, 1, 5), 1),
    (2, 2, 3, (9, 9, 9), 0.2, 3, 2),
    (1, 2, 2, (5, 5, 5), 0.9, 3, 1),
])
def test_matches_dense_conv3d(lookup, batch, in_channels, out_channels, shape, occupancy, kernel_size, dilation):
    dense_input = random_dense(batch, in_channels, shape, occupancy)
    assert_matches_dense(dense_input, in_channels, out_channels, kernel_size, dilation)


def test_one_voxel_at_a_corner(lookup):
    dense_input = torch.zeros(2, 2, 5, 5, 5, dtype=torch.float64)
    dense_input[1, :, 4, 0, 4] = torch.tensor([1.5, -2.0], dtype=torch.float64)
    assert_matches_dense(dense_input, 2, 3, 3)


def test_empty_input_gives_empty_output_and_zero_weight_gradient(lookup):
    _, conv = _conv_pair(2, 3, 3, 1)
    empty = SparseTensor.from_dense(torch.zeros(2, 2, 4, 4, 4, dtype=torch.float64))
    empty.features.requires_grad_()
    output = conv(empty)
    assert output.features.shape == (0, 3) and output.batch_size == 2
    output.features.sum().backward()
    assert empty.features.grad.shape == (0, 2)
    assert torch.count_nonzero(conv.weight.grad) == 0


def test_even_kernel_is_refused():
    with pytest.raises(ValueError, match="odd kernel"):
        SubmanifoldConv3d(1, 1, 2)


def test_wrong_channel_count_is_named():
    sparse = SparseTensor.from_dense(random_dense(1, 2, (4, 4, 4), 0.3, dtype=torch.float32))
    with pytest.raises(ValueError, match="expects 3 input channels, got a tensor with 2"):
        SubmanifoldConv3d(3, 4)(sparse)


@pytest.mark.gpu
def test_cuda_matches_cpu_forward_and_backward():
    from inference.sparse import SparseConv3d, SparseConvTranspose3d, SparseGlobalPool

    torch.manual_seed(0)
    layers = nn.ModuleList([SubmanifoldConv3d(3, 8), SparseConv3d(8, 8, 3, stride=2, padding=1),
                            SparseConvTranspose3d(8, 4, 3, stride=2, padding=1)]).double()
    dense_input = random_dense(2, 3, (16, 16, 16), 0.05)

    def run(device):
        net = layers.to(device)
        net.zero_grad()
        x = SparseTensor.from_dense(dense_input.to(device))
        x.features.requires_grad_()
        output = net[2](net[1](net[0](x)))
        SparseGlobalPool("max")(output).square().sum().backward()
        return output.features, x.features.grad, [p.grad for p in net.parameters()]

    cpu, gpu = run("cpu"), run("cuda")
    torch.testing.assert_close(gpu[0].cpu(), cpu[0], **TOLERANCE)
    torch.testing.assert_close(gpu[1].cpu(), cpu[1], **TOLERANCE)
    for gpu_grad, cpu_grad in zip(gpu[2], cpu[2]):
        torch.testing.assert_close(gpu_grad.cpu(), cpu_grad, **TOLERANCE)
