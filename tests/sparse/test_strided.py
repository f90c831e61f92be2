"""Strided and transposed sparse convolutions against Conv3d and ConvTranspose3d in float64.

Convention under test: a strided convolution's output site is active exactly when
its receptive field holds an active input site, so (without bias) its dense form
equals Conv3d everywhere. A transposed convolution returns to the input sites of
the strided one it inverts and equals ConvTranspose3d there.
"""

import pytest
import torch
from torch import nn

from inference.sparse import SparseConv3d, SparseConvTranspose3d, SparseTensor, from_dense_weight, gather_scatter
from tests.sparse._images import at_sites, random_dense

TOLERANCE = dict(rtol=1e-5, atol=1e-10)


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    """Spread each map's pairs over several chunks (one chunk is covered by the submanifold tests)."""
    monkeypatch.setattr(gather_scatter, "CHUNK_ELEMENTS", 16)

GEOMETRIES = [  # kernel_size, stride, padding, dilation, spatial shape
    (2, 2, 0, 1, (8, 8, 8)),
    (2, 2, 0, 1, (9, 7, 8)),
    (3, 2, 1, 1, (9, 8, 7)),
    (3, 1, 1, 1, (6, 6, 6)),
    ((3, 2, 1), (2, 2, 1), (1, 0, 0), (2, 1, 1), (9, 8, 5)),
]


def _strided_pair(in_channels, out_channels, kernel_size, stride, padding, dilation, bias):
    torch.manual_seed(0)
    dense = nn.Conv3d(in_channels, out_channels, kernel_size, stride, padding, dilation, bias=bias).double()
    sparse = SparseConv3d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                          dilation=dilation, bias=bias).double()
    with torch.no_grad():
        sparse.weight.copy_(from_dense_weight(dense.weight))
        if bias:
            sparse.bias.copy_(dense.bias)
    return dense, sparse


@pytest.mark.parametrize("kernel_size, stride, padding, dilation, shape", GEOMETRIES)
@pytest.mark.parametrize("batch", [1, 3])
def test_strided_matches_conv3d_everywhere(kernel_size, stride, padding, dilation, shape, batch):
    dense_input = random_dense(batch, 2, shape, 0.1).requires_grad_()
    dense_conv, sparse_conv = _strided_pair(2, 3, kernel_size, stride, padding, dilation, bias=False)
    sparse_input = SparseTensor.from_dense(dense_input.detach())
    sparse_input.features.requires_grad_()

    sparse_output = sparse_conv(sparse_input)
    dense_output = dense_conv(dense_input)
    torch.testing.assert_close(sparse_output.to_dense(), dense_output, **TOLERANCE)

    upstream = torch.randn(dense_output.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    (sparse_output.to_dense() * upstream).sum().backward()
    (dense_output * upstream).sum().backward()
    torch.testing.assert_close(sparse_input.features.grad, at_sites(dense_input.grad, sparse_input.coordinates),
                               **TOLERANCE)
    torch.testing.assert_close(sparse_conv.weight.grad, from_dense_weight(dense_conv.weight.grad), **TOLERANCE)


@pytest.mark.parametrize("kernel_size, stride, padding, dilation, shape", GEOMETRIES)
def test_output_sites_are_those_with_an_active_input_in_view(kernel_size, stride, padding, dilation, shape):
    dense_input = random_dense(2, 1, shape, 0.05, seed=3)
    sparse_output = SparseConv3d(1, 1, kernel_size, stride=stride, padding=padding, dilation=dilation)(
        SparseTensor.from_dense(dense_input.float()))
    indicator = (dense_input != 0).double()
    ones = torch.ones((1, 1, *nn.modules.utils._triple(kernel_size)), dtype=torch.float64)
    in_view = nn.functional.conv3d(indicator, ones, stride=stride, padding=padding, dilation=dilation)[:, 0] > 0
    assert torch.equal(in_view.nonzero(), sparse_output.coordinates)
    assert sparse_output.spatial_shape == tuple(in_view.shape[1:])


def test_bias_is_added_at_active_outputs():
    dense_input = random_dense(2, 2, (8, 8, 8), 0.1)
    dense_conv, sparse_conv = _strided_pair(2, 3, 3, 2, 1, 1, bias=True)
    sparse_output = sparse_conv(SparseTensor.from_dense(dense_input))
    torch.testing.assert_close(sparse_output.features, at_sites(dense_conv(dense_input), sparse_output.coordinates),
                               **TOLERANCE)


def test_empty_and_one_voxel_inputs():
    _, conv = _strided_pair(1, 2, 3, 2, 1, 1, bias=False)
    empty = conv(SparseTensor.from_dense(torch.zeros(1, 1, 6, 6, 6, dtype=torch.float64)))
    assert empty.features.shape == (0, 2) and empty.spatial_shape == (3, 3, 3)
    one = torch.zeros(1, 1, 6, 6, 6, dtype=torch.float64)
    one[0, 0, 2, 3, 4] = 2.0
    output = conv(SparseTensor.from_dense(one))
    # o * 2 = p + 1 - t for t in 0..2: coordinate 2 reaches output 1, 3 reaches 1 and 2, 4 reaches 2.
    assert output.coordinates.tolist() == [[0, 1, 1, 2], [0, 1, 2, 2]]
    torch.testing.assert_close(output.to_dense(), nn.functional.conv3d(one, _dense_weight(conv), stride=2, padding=1),
                               **TOLERANCE)


def _dense_weight(conv):
    """The Conv3d weight (C_out, C_in, kd, kh, kw) of a sparse layer."""
    num_offsets, in_channels, out_channels = conv.weight.shape
    return conv.weight.detach().reshape(*conv.kernel_size, in_channels, out_channels).permute(4, 3, 0, 1, 2)


@pytest.mark.parametrize("kernel_size, stride, padding, dilation, shape", [g for g in GEOMETRIES if g[1] != 1])
def test_transposed_inverts_strided_and_matches_conv_transpose3d(kernel_size, stride, padding, dilation, shape):
    fine = SparseTensor.from_dense(random_dense(2, 2, shape, 0.1))
    down = SparseConv3d(2, 3, kernel_size, stride=stride, padding=padding, dilation=dilation).double()
    coarse = down(fine)
    generator = torch.Generator().manual_seed(2)
    coarse_features = torch.randn(len(coarse), 4, dtype=torch.float64, generator=generator).requires_grad_()
    coarse = coarse.replace_features(coarse_features)

    torch.manual_seed(1)
    k, s, p, d = (nn.modules.utils._triple(v) for v in (kernel_size, stride, padding, dilation))
    restored = tuple(n - ((c - 1) * si - 2 * pi + di * (ki - 1) + 1)
                     for n, c, ki, si, pi, di in zip(shape, coarse.spatial_shape, k, s, p, d))
    dense_conv = nn.ConvTranspose3d(4, 2, k, s, p, output_padding=restored, dilation=d).double()
    sparse_conv = SparseConvTranspose3d(4, 2, kernel_size, stride=stride, padding=padding, dilation=dilation).double()
    with torch.no_grad():
        sparse_conv.weight.copy_(from_dense_weight(dense_conv.weight, transposed=True))
        sparse_conv.bias.copy_(dense_conv.bias)

    sparse_output = sparse_conv(coarse)
    assert sparse_output.site_set is fine.site_set
    dense_input = coarse.to_dense().detach().requires_grad_()
    dense_output = dense_conv(dense_input)
    assert dense_output.shape[2:] == shape
    expected = at_sites(dense_output, fine.coordinates)
    torch.testing.assert_close(sparse_output.features, expected, **TOLERANCE)

    upstream = torch.randn(expected.shape, dtype=torch.float64, generator=generator)
    (sparse_output.features * upstream).sum().backward()
    (expected * upstream).sum().backward()
    torch.testing.assert_close(coarse_features.grad, at_sites(dense_input.grad, coarse.coordinates), **TOLERANCE)
    torch.testing.assert_close(sparse_conv.weight.grad, from_dense_weight(dense_conv.weight.grad, transposed=True),
                               **TOLERANCE)
    torch.testing.assert_close(sparse_conv.bias.grad, dense_conv.bias.grad, **TOLERANCE)


def test_transposed_needs_a_matching_strided_history():
    fine = SparseTensor.from_dense(random_dense(1, 1, (8, 8, 8), 0.1, dtype=torch.float32))
    with pytest.raises(ValueError, match="did not come from one"):
        SparseConvTranspose3d(1, 1)(fine)
    coarse = SparseConv3d(1, 1, 2, stride=2)(fine)
    with pytest.raises(ValueError, match="came from strided convolutions with"):
        SparseConvTranspose3d(1, 1, 3, stride=2, padding=1)(coarse)
