"""``SparseNormal``: Normal noise on every element of a mostly empty array, with an O(N) density."""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
import torch
from torch.distributions import constraints

from ppx.sparse import SparseArray, as_sparse_array

_HALF_LOG_TWO_PI = 0.5 * math.log(2 * math.pi)


class SparseNormal(torch.distributions.Distribution):
    """Independent ``Normal(loc[i], scale)`` for every element i of an array whose mean is mostly zero.

    The density of an array x is that of ``Normal(loc.to_dense(), scale)``
    summed over all elements, but it is computed only where the mean or x is
    nonzero: every other element is zero in both and adds the same constant,
    ``log N(0 | 0, scale)``. The work grows with the entries stored, not with
    the volume. On the wire this is the ``SparseNormal`` member of the
    Distribution union (extension ``sparse-tensor``); a peer without the
    extension is sent the equivalent ``Normal`` with the dense mean.

    Args:
        loc: the mean, a ``ppx.sparse.SparseArray`` or a torch sparse COO tensor.
        scale: the standard deviation, one positive number shared by every element.

    ``log_prob`` takes a ``SparseArray``, a torch sparse COO tensor or a dense
    array of the mean's shape, and returns a scalar (the whole array is one
    event). There is no ``sample``: noise on every element would make the
    array dense, so simulators pass the value they observe to ``ppx.observe``.
    """

    arg_constraints: dict = {}  # loc is not a tensor; both parameters are checked in __init__
    support = constraints.real

    def __init__(self, loc: Any, scale: Any, validate_args: Optional[bool] = None) -> None:
        sparse_loc = as_sparse_array(loc)
        if sparse_loc is None:
            raise ValueError(f"SparseNormal loc must be a SparseArray or a torch sparse COO tensor, "
                             f"got {type(loc).__name__}")
        if not np.isfinite(sparse_loc.values).all():
            bad = sparse_loc.values[~np.isfinite(sparse_loc.values)][:3].tolist()
            raise ValueError(f"SparseNormal loc must be finite, but it holds {bad}")
        scale = torch.as_tensor(scale, dtype=torch.float64)
        if scale.numel() != 1 or not bool(torch.isfinite(scale).all()) or float(scale) <= 0:
            raise ValueError(f"SparseNormal scale must be one positive finite number, got {scale.tolist()}")
        self.loc = sparse_loc
        self.scale = scale.reshape(())
        super().__init__(torch.Size(), torch.Size(sparse_loc.shape), validate_args=validate_args)

    def log_prob(self, value: Any) -> torch.Tensor:
        observed = as_sparse_array(value)
        if observed is None:
            observed = SparseArray.from_dense(torch.as_tensor(value).detach().cpu().numpy())
        if observed.shape != self.loc.shape:
            raise ValueError(f"SparseNormal of shape {list(self.loc.shape)} cannot weigh a value of shape "
                             f"{list(observed.shape)}")
        mean_keys, observed_keys = self.loc.keys(), observed.keys()
        sites = np.union1d(mean_keys, observed_keys)
        mean = np.zeros(len(sites))
        mean[np.searchsorted(sites, mean_keys)] = self.loc.values
        data = np.zeros(len(sites))
        data[np.searchsorted(sites, observed_keys)] = observed.values
        scale = float(self.scale)
        per_element = -math.log(scale) - _HALF_LOG_TWO_PI
        residual = (data - mean) / scale
        total = per_element * self.loc.size - 0.5 * float(np.dot(residual, residual))
        return torch.tensor(total, dtype=torch.float64)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        raise NotImplementedError("SparseNormal cannot sample: noise on every element would make the array "
                                  "dense; pass the simulated value to ppx.observe instead")

    def __repr__(self) -> str:
        return f"SparseNormal(loc: {self.loc!r}, scale: {float(self.scale):g})"
