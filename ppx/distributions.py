"""The eleven PPX distributions and their mapping onto ``pyro.distributions``.

One table drives both directions: the wire names each distribution by a union id
and lists its parameters in schema order; pyro names the same parameters its own
way. Parameters travel as float64 arrays. Extension kinds (``SparseNormal``, with
a ``SparseArray`` mean) follow the eleven and name the plain kind a peer without
the extension is sent instead, with every parameter densified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import pyro.distributions as dist
import torch

from ppx.sparse import SparseArray, as_sparse_array, densified
from ppx.sparse_normal import SparseNormal


@dataclass(frozen=True)
class DistributionKind:
    """One row of the PPX distribution table."""

    type_id: int
    name: str
    wire_params: tuple[str, ...]
    pyro_class: type
    pyro_params: tuple[str, ...]
    discrete: bool
    sparse_params: tuple[str, ...] = ()
    """Wire parameters that travel as SparseTensor tables (extension kinds only)."""
    plain_type_id: int = 0
    """For an extension kind: the plain PPX kind sent to peers without the extension."""


KINDS: tuple[DistributionKind, ...] = (
    DistributionKind(1, "Normal", ("mean", "stddev"), dist.Normal, ("loc", "scale"), False),
    DistributionKind(2, "Uniform", ("low", "high"), dist.Uniform, ("low", "high"), False),
    DistributionKind(3, "Categorical", ("probs",), dist.Categorical, ("probs",), True),
    DistributionKind(4, "Poisson", ("rate",), dist.Poisson, ("rate",), True),
    DistributionKind(5, "Bernoulli", ("probs",), dist.Bernoulli, ("probs",), True),
    DistributionKind(6, "Beta", ("concentration1", "concentration0"), dist.Beta,
                     ("concentration1", "concentration0"), False),
    DistributionKind(7, "Exponential", ("rate",), dist.Exponential, ("rate",), False),
    DistributionKind(8, "Gamma", ("concentration", "rate"), dist.Gamma,
                     ("concentration", "rate"), False),
    DistributionKind(9, "LogNormal", ("loc", "scale"), dist.LogNormal, ("loc", "scale"), False),
    DistributionKind(10, "Binomial", ("total_count", "probs"), dist.Binomial,
                     ("total_count", "probs"), True),
    DistributionKind(11, "Weibull", ("scale", "concentration"), dist.Weibull,
                     ("scale", "concentration"), False),
)

EXTENSION_KINDS: tuple[DistributionKind, ...] = (
    DistributionKind(12, "SparseNormal", ("mean", "stddev"), SparseNormal, ("loc", "scale"), False,
                     sparse_params=("mean",), plain_type_id=1),
)
"""Kinds of the ``sparse-tensor`` extension; ``KINDS`` stays the plain PPX table."""

BY_TYPE_ID: dict[int, DistributionKind] = {kind.type_id: kind for kind in KINDS + EXTENSION_KINDS}
BY_NAME: dict[str, DistributionKind] = {kind.name: kind for kind in KINDS + EXTENSION_KINDS}
_BY_PYRO_CLASS: dict[type, DistributionKind] = {kind.pyro_class: kind for kind in KINDS + EXTENSION_KINDS}


def kind_of(distribution: torch.distributions.Distribution) -> DistributionKind:
    """The PPX kind of a pyro/torch distribution, looking through pyro's subclasses."""
    for cls in type(distribution).__mro__:
        kind = _BY_PYRO_CLASS.get(cls)
        if kind is not None:
            return kind
    supported = ", ".join(kind.name for kind in KINDS + EXTENSION_KINDS)
    raise TypeError(
        f"expected one of the PPX distributions ({supported}), got {type(distribution).__name__}"
    )


def as_float64_array(value: Any) -> np.ndarray:
    """A tensor, array or number as a float64 numpy array (the wire's tensor type)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy().astype(np.float64, copy=False)
    return np.asarray(value, dtype=np.float64)


WireValue = Union[np.ndarray, SparseArray]
"""A tensor as it travels: a float64 array, or a ``SparseArray`` under the ``sparse-tensor`` extension."""


def as_wire_value(value: Any) -> WireValue:
    """A ``SparseArray`` for sparse values (``SparseArray``, torch sparse COO), else a float64 array."""
    sparse = as_sparse_array(value)
    return as_float64_array(value) if sparse is None else sparse


def to_wire(distribution: torch.distributions.Distribution) -> tuple[int, tuple[WireValue, ...]]:
    """The union id and parameters (float64 arrays, ``SparseArray`` where the kind's schema has a
    SparseTensor) that describe ``distribution`` on the wire."""
    kind = kind_of(distribution)
    params = tuple(
        as_wire_value(getattr(distribution, name)) for name in kind.pyro_params
    )
    return kind.type_id, params


def to_plain_wire(type_id: int, params: tuple[WireValue, ...]) -> tuple[int, tuple[np.ndarray, ...]]:
    """What a peer without the ``sparse-tensor`` extension is sent: an extension kind becomes its
    plain equivalent (``SparseNormal`` a ``Normal``) and every sparse parameter its dense array."""
    kind = BY_TYPE_ID.get(type_id)
    if kind is not None and kind.plain_type_id:
        type_id = kind.plain_type_id
    return type_id, tuple(densified(p) for p in params)


def from_wire(
    type_id: int, params: tuple[WireValue, ...], validate: bool = True
) -> torch.distributions.Distribution:
    """A pyro distribution from its wire description; bad parameters raise ``ValueError``."""
    kind = BY_TYPE_ID.get(type_id)
    if kind is None:
        raise ValueError(f"unknown PPX distribution type {type_id}")
    if len(params) != len(kind.pyro_params):
        raise ValueError(
            f"{kind.name} expects {len(kind.pyro_params)} parameters "
            f"({', '.join(kind.wire_params)}), got {len(params)}"
        )
    kwargs = {
        pyro_name: (p if isinstance(p, SparseArray) else SparseArray.from_dense(p)) if wire_name in kind.sparse_params
        else torch.from_numpy(np.asarray(densified(p), dtype=np.float64))
        for pyro_name, wire_name, p in zip(kind.pyro_params, kind.wire_params, params)
    }
    try:
        return kind.pyro_class(**kwargs, validate_args=validate)
    except ValueError as err:
        shown = ", ".join(f"{name}={p!r}" if isinstance(p, SparseArray) else f"{name}={np.asarray(p).tolist()}"
                          for name, p in zip(kind.wire_params, params))
        raise ValueError(f"invalid {kind.name} parameters ({shown}): {err}") from err
