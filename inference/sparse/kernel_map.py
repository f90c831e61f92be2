"""Kernel maps: which input site feeds which output site through which kernel offset.

A convolution over sparse sites is a sum over (input row, output row, kernel
offset) triples. A ``KernelMap`` holds those triples grouped by offset, so a
convolution is one gather, one matmul per offset and one scatter-add (see
``gather_scatter``). Maps are found by sorting the linearised coordinates once
and looking up each shifted coordinate with ``torch.searchsorted``, and are
cached on the ``CoordinateSet`` they were built for.

Offsets are numbered like the kernel positions of a dense ``Conv3d`` weight
``(C_out, C_in, kd, kh, kw)`` in row-major order, so offset n uses
``weight[:, :, n // (kh * kw), (n // kw) % kh, n % kw]``.

Three kinds of map, each matching a dense convolution with zero padding where
both are defined:

* submanifold (odd kernel, stride 1, padding ``dilation * (kernel - 1) / 2``):
  outputs at exactly the input sites; equals ``Conv3d`` there.
* downsampling (any kernel, stride, padding, dilation): an output site is
  active when its receptive field holds at least one active input site. At
  those sites it equals ``Conv3d``; everywhere else ``Conv3d`` (without bias)
  gives zero, so the dense result is reproduced exactly.
* upsampling, the transpose of a downsampling map: outputs at the input sites
  of the downsampling convolution it inverts; equals ``ConvTranspose3d`` there.
"""

from __future__ import annotations

import itertools
import math
import weakref
from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from inference.sparse.coordinates import CoordinateSet

Triple = tuple[int, int, int]


def as_triple(value: int | Sequence[int], what: str) -> Triple:
    """An int or three ints as a triple of ints."""
    triple = (int(value),) * 3 if isinstance(value, int) else tuple(int(v) for v in value)
    if len(triple) != 3:
        raise ValueError(f"expected {what} as an int or three ints, got {value!r}")
    return triple


@dataclass(frozen=True)
class KernelMap:
    """(input row, output row) pairs grouped by kernel offset.

    Pairs of offset n are ``in_indices[bounds[n]:bounds[n + 1]]`` and the same
    slice of ``out_indices``. The offset ``identity_offset``, if any, pairs
    every row with itself (the centre of a submanifold kernel) and is left out
    of the pair lists so that it can be a plain matmul.
    """

    in_indices: torch.Tensor
    out_indices: torch.Tensor
    bounds: tuple[int, ...]
    num_in: int
    num_out: int
    identity_offset: Optional[int] = None

    @property
    def num_offsets(self) -> int:
        return len(self.bounds) - 1

    @property
    def num_pairs(self) -> int:
        """The number of (input, output, offset) triples, the identity offset included."""
        return len(self.in_indices) + (self.num_in if self.identity_offset is not None else 0)

    def transposed(self) -> "KernelMap":
        """The map that carries output rows back to input rows through the same offsets."""
        return KernelMap(self.out_indices, self.in_indices, self.bounds, self.num_out, self.num_in,
                         self.identity_offset)


def _bounds(counts: list[int]) -> tuple[int, ...]:
    return tuple(itertools.accumulate(counts, initial=0))


LOOKUP_TABLE_LIMIT = 1 << 24
"""Coordinate sets spanning at most this many dense sites (batch included) may find neighbours
through a dense int32 table of row numbers (64 MiB at the limit); larger ones use binary search."""
LOOKUP_TABLE_SITES_PER_ACTIVE = 256
"""...and only if the table has at most this many entries per active site: filling it costs
time in proportion to the volume, binary search in proportion to the active sites (measured on
CPU: at 1% occupancy the table is 1.3-5x faster, at 0.1% of 128^3 they tie, below it loses)."""


class _SiteLookup:
    """Row numbers of the sites at given linear keys: a dense table, or a sorted key array."""

    def __init__(self, sites: CoordinateSet, use_table: bool) -> None:
        self.num_sites = len(sites)
        if use_table:
            rows = torch.arange(self.num_sites, dtype=torch.int32, device=sites.device)
            self.table = torch.full((sites.batch_size * math.prod(sites.spatial_shape),), -1,
                                    dtype=torch.int32, device=sites.device)
            self.table[sites.keys] = rows
            self.keys, self.order = sites.keys, None
        else:
            self.table = None
            self.keys, self.order = sites.sorted_keys()
        self.spatial = sites.coordinates[:, 1:] if self.order is None else sites.coordinates[self.order, 1:]

    def pairs(self, queries: torch.Tensor, inside: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(receiving rows, found rows) for the positions in this lookup's order whose query is a site."""
        if self.table is not None:
            found = self.table.index_select(0, queries.clamp_(0, len(self.table) - 1))
            receivers = (inside & (found >= 0)).nonzero().squeeze(1)
            return receivers, found.index_select(0, receivers).long()
        found = torch.searchsorted(self.keys, queries).clamp_(max=max(self.num_sites - 1, 0))
        receivers = (inside & (self.keys.index_select(0, found) == queries)).nonzero().squeeze(1)
        senders = found.index_select(0, receivers)
        return self.order.index_select(0, receivers), self.order.index_select(0, senders)


def build_submanifold_map(sites: CoordinateSet, kernel_size: Triple, dilation: Triple,
                          use_table: Optional[bool] = None) -> KernelMap:
    """The map of a submanifold convolution: output sites are the input sites.

    Output site p receives from input site p + (kernel position - centre) * dilation.
    Offsets n and K - 1 - n are mirror images, so only the first half is looked up.

    Args:
        use_table: find neighbours through a dense table (True) or binary search
            (False); by default a table when the images span at most
            ``LOOKUP_TABLE_LIMIT`` sites and ``LOOKUP_TABLE_SITES_PER_ACTIVE`` per active site.
    """
    if any(extent % 2 == 0 for extent in kernel_size):
        raise ValueError(f"a submanifold convolution needs an odd kernel size to have a centre, got {kernel_size}")
    if use_table is None:
        dense_sites = sites.batch_size * math.prod(sites.spatial_shape)
        use_table = dense_sites <= min(LOOKUP_TABLE_LIMIT, LOOKUP_TABLE_SITES_PER_ACTIVE * max(len(sites), 1))
    lookup = _SiteLookup(sites, use_table)
    strides = (sites.spatial_shape[1] * sites.spatial_shape[2], sites.spatial_shape[2], 1)
    centre = tuple(extent // 2 for extent in kernel_size)
    num_offsets = math.prod(kernel_size)
    in_pieces: list[torch.Tensor] = [lookup.keys[:0]] * num_offsets
    out_pieces: list[torch.Tensor] = [lookup.keys[:0]] * num_offsets
    positions = itertools.product(*(range(extent) for extent in kernel_size))
    for offset, position in zip(range(num_offsets // 2), positions):
        shift = [(p - c) * d for p, c, d in zip(position, centre, dilation)]
        inside = torch.ones(len(sites), dtype=torch.bool, device=sites.device)
        for axis, step in enumerate(shift):
            if step > 0:
                inside &= lookup.spatial[:, axis] < sites.spatial_shape[axis] - step
            elif step < 0:
                inside &= lookup.spatial[:, axis] >= -step
        queries = lookup.keys + sum(step * stride for step, stride in zip(shift, strides))
        receivers, senders = lookup.pairs(queries, inside)
        in_pieces[offset], out_pieces[offset] = senders, receivers
        in_pieces[num_offsets - 1 - offset], out_pieces[num_offsets - 1 - offset] = receivers, senders
    identity = num_offsets // 2
    counts = [len(piece) for piece in in_pieces]
    return KernelMap(torch.cat(in_pieces), torch.cat(out_pieces), _bounds(counts), len(sites), len(sites),
                     identity)


def output_shape(spatial_shape: Triple, kernel_size: Triple, stride: Triple, padding: Triple,
                 dilation: Triple) -> Triple:
    """The spatial shape of a strided convolution's output, as ``Conv3d`` computes it."""
    shape = tuple((extent + 2 * pad - dil * (k - 1) - 1) // s + 1
                  for extent, k, s, pad, dil in zip(spatial_shape, kernel_size, stride, padding, dilation))
    if any(extent <= 0 for extent in shape):
        raise ValueError(f"kernel {kernel_size} with dilation {dilation} and padding {padding} "
                         f"does not fit in spatial shape {spatial_shape}")
    return shape


def build_downsampling_map(sites: CoordinateSet, kernel_size: Triple, stride: Triple, padding: Triple,
                           dilation: Triple) -> tuple[KernelMap, CoordinateSet]:
    """The map of a strided convolution and the output sites it makes active.

    Input site p feeds output site o through kernel position t when
    ``o * stride = p + padding - t * dilation``. Output sites are every o fed by
    some input site, in increasing key order.
    """
    out_shape = output_shape(sites.spatial_shape, kernel_size, stride, padding, dilation)
    coordinates = sites.coordinates
    batch_base = coordinates[:, 0] * out_shape[0]
    per_axis = []  # per axis, per kernel position: (valid mask, output coordinate)
    for axis in range(3):
        candidates = []
        for position in range(kernel_size[axis]):
            numerator = coordinates[:, axis + 1] + padding[axis] - position * dilation[axis]
            target = torch.div(numerator, stride[axis], rounding_mode="floor")
            valid = (numerator >= 0) & (numerator % stride[axis] == 0) & (target < out_shape[axis])
            candidates.append((valid, target))
        per_axis.append(candidates)
    in_pieces, key_pieces = [], []
    for (valid_i, target_i), (valid_j, target_j), (valid_k, target_k) in itertools.product(*per_axis):
        rows = (valid_i & valid_j & valid_k).nonzero().squeeze(1)
        key = (((batch_base + target_i) * out_shape[1] + target_j) * out_shape[2] + target_k).index_select(0, rows)
        in_pieces.append(rows)
        key_pieces.append(key)
    out_keys, out_rows = torch.unique(torch.cat(key_pieces), sorted=True, return_inverse=True)
    out_sites = CoordinateSet.from_sorted_keys(out_keys, out_shape, sites.batch_size)
    kernel_map = KernelMap(torch.cat(in_pieces), out_rows, _bounds([len(piece) for piece in in_pieces]),
                           len(sites), len(out_keys))
    return kernel_map, out_sites


def submanifold_map(sites: CoordinateSet, kernel_size: Triple, dilation: Triple) -> KernelMap:
    """The cached submanifold map of ``sites``, built on first use."""
    key = ("submanifold", kernel_size, dilation)
    kernel_map = sites.cache.get(key)
    if kernel_map is None:
        kernel_map = sites.cache[key] = build_submanifold_map(sites, kernel_size, dilation)
    return kernel_map


def downsampling_map(sites: CoordinateSet, kernel_size: Triple, stride: Triple, padding: Triple,
                     dilation: Triple) -> tuple[KernelMap, CoordinateSet]:
    """The cached downsampling map of ``sites`` and its output sites, built on first use.

    The output sites remember the transposed map (and, weakly, ``sites``) so that
    a transposed convolution with the same parameters can go back.
    """
    key = ("downsampling", kernel_size, stride, padding, dilation)
    entry = sites.cache.get(key)
    if entry is None:
        kernel_map, out_sites = build_downsampling_map(sites, kernel_size, stride, padding, dilation)
        out_sites.cache[("upsampling",) + key[1:]] = kernel_map.transposed(), weakref.ref(sites)
        entry = sites.cache[key] = kernel_map, out_sites
    return entry


def upsampling_map(sites: CoordinateSet, kernel_size: Triple, stride: Triple, padding: Triple,
                   dilation: Triple) -> tuple[KernelMap, CoordinateSet]:
    """The transpose of the downsampling map that produced ``sites``, and that map's input sites.

    Raises:
        ValueError: if ``sites`` did not come from a strided convolution with these
            parameters, or that convolution's input sites no longer exist.
    """
    entry = sites.cache.get(("upsampling", kernel_size, stride, padding, dilation))
    fine_sites = entry[1]() if entry is not None else None
    if fine_sites is None:
        known = [key[1:] for key in sites.cache if key[0] == "upsampling"]
        raise ValueError(
            f"a transposed sparse convolution inverts a strided one with the same kernel_size, stride, "
            f"padding and dilation {(kernel_size, stride, padding, dilation)}; this tensor "
            + (f"came from strided convolutions with {known}" if known else "did not come from one")
            + " (or the strided convolution's input has been freed)")
    return entry[0], fine_sites
