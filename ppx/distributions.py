"""The eleven PPX distributions and their mapping onto ``pyro.distributions``.

One table drives both directions: the wire names each distribution by a union id
and lists its parameters in schema order; pyro names the same parameters its own
way. Parameters travel as float64 arrays. Extension kinds (``SparseNormal``, with
a ``SparseArray`` mean) follow the eleven and name the plain kind a peer without
the extension is sent instead, with every parameter densified.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Any, Optional, Sequence, Union

import numpy as np
import pyro.distributions as dist
import torch

from ppx import limits
from ppx.sparse import SparseArray, as_sparse_array, densified, value_shape
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
    kind = _BY_PYRO_CLASS.get(type(distribution))
    if kind is not None:
        return kind
    for cls in type(distribution).__mro__:
        kind = _BY_PYRO_CLASS.get(cls)
        if kind is not None:
            _BY_PYRO_CLASS[type(distribution)] = kind  # next time in one look-up
            return kind
    supported = ", ".join(kind.name for kind in KINDS + EXTENSION_KINDS)
    raise TypeError(
        f"expected one of the PPX distributions ({supported}), got {type(distribution).__name__}"
    )


def as_float64_array(value: Any) -> np.ndarray:
    """A tensor, array or number as a float64 numpy array (the wire's tensor type)."""
    if isinstance(value, torch.Tensor):
        if value.dim() == 0 and value.is_floating_point():
            return np.array(value.item(), dtype=np.float64)  # a scalar: far cheaper than via numpy()
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


def sample_shape(type_id: int, params: tuple[WireValue, ...]) -> tuple[int, ...]:
    """The shape of one draw from the distribution the wire parameters describe.

    Parameters broadcast against each other (a ``SparseArray`` by its dense shape);
    a Categorical's last axis lists its categories. Parameters that do not
    broadcast raise ``ValueError``.
    """
    kind = BY_TYPE_ID[type_id]
    shapes = [value_shape(p) for p in params]
    if kind.name == "Categorical":
        shapes = [shape[:-1] for shape in shapes]
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        shown = ", ".join(f"{name} {list(shape)}" for name, shape in zip(kind.wire_params, shapes))
        raise ValueError(f"{kind.name} parameters of shapes {shown} do not broadcast together") from None


def oversized_broadcast(type_id: int, shapes: Sequence[Sequence[int]]) -> Optional[str]:
    """Why parameters of these shapes broadcast to more elements than ``limits.MAX_TENSOR_ELEMENTS``
    allows, or None when they do not.

    A peer can send small parameters that broadcast to an enormous batch (a column
    and a row of 2**16 each make 2**32 draws). Zero extents count as one, as in the
    codec. The product of the parameters' own sizes bounds the broadcast size, so
    the common case costs a few multiplications.
    """
    bound = 1
    for shape in shapes:
        for extent in shape:
            bound *= extent or 1
    if bound <= limits.MAX_TENSOR_ELEMENTS:
        return None
    kind = BY_TYPE_ID[type_id]
    shape = sample_shape(type_id, tuple(np.broadcast_to(0.0, shape) for shape in shapes))  # views
    nominal = math.prod(extent or 1 for extent in shape)
    if nominal <= limits.MAX_TENSOR_ELEMENTS:
        return None
    return limits.tensor_too_large(f"{kind.name} parameters ({', '.join(kind.wire_params)}) broadcast",
                                   list(shape), nominal)


def _shown(name: str, array: np.ndarray, bad: np.ndarray) -> str:
    """``name = value`` for a scalar, else the first offending elements with their indices."""
    if array.ndim == 0:
        return f"{name} = {array.item()!r}"
    where = np.argwhere(bad)
    listed = ", ".join(f"{name}[{', '.join(map(str, index))}] = {array[tuple(index)].item()!r}"
                       for index in where[:3])
    return listed + (f" (and {len(where) - 3} more)" if len(where) > 3 else "")


def _check_values(kind: DistributionKind, params: tuple[np.ndarray, ...]) -> None:
    """What pyro's own validation lets through or words poorly: non-finite values, Categorical
    probabilities that are negative or all zero, and Uniform bounds out of order.

    Categorical probabilities need not sum to one: like torch (and the reference engine, which
    builds torch distributions), the engine normalises them, so a simulator may send weights.
    """
    for name, p in zip(kind.wire_params, params):
        if not (math.isfinite(p) if p.ndim == 0 else np.isfinite(p).all()):  # scalars first: the hot path
            raise ValueError(f"{kind.name}.{name} must be finite, but {_shown(name, p, ~np.isfinite(p))}")
    if kind.name == "Categorical":
        probs = params[0]
        if probs.ndim == 0 or probs.shape[-1] == 0:
            raise ValueError(f"Categorical.probs must list one probability per category, got shape "
                             f"{list(probs.shape)}")
        negative = probs < 0
        if negative.any():
            raise ValueError(f"Categorical.probs must be non-negative, but {_shown('probs', probs, negative)}")
        totals = probs.sum(axis=-1)
        empty = ~(totals > 0)
        if empty.any():
            raise ValueError(f"Categorical.probs must have a positive sum (they are normalised to one), "
                             f"but {_shown('sum(probs)', totals, empty)}")
    elif kind.name == "Uniform":
        shape = sample_shape(kind.type_id, params)
        low, high = (np.broadcast_to(p, shape) for p in params)
        disordered = ~(low < high)
        if disordered.any():
            raise ValueError(f"Uniform.low must be below Uniform.high, but {_shown('low', low, disordered)} "
                             f"and {_shown('high', high, disordered)}")


def _check_supports(kind: DistributionKind, params: tuple[np.ndarray, ...]) -> Optional[str]:
    """Which parameter lies outside its support, as pyro defines it; None when none does."""
    constraints = kind.pyro_class.arg_constraints
    if not isinstance(constraints, dict):  # a property: the constraints depend on the values (Uniform)
        return None
    for wire_name, pyro_name, p in zip(kind.wire_params, kind.pyro_params, params):
        constraint = constraints.get(pyro_name)
        if constraint is None or torch.distributions.constraints.is_dependent(constraint):
            continue
        ok = constraint.check(torch.from_numpy(np.asarray(p, dtype=np.float64))).numpy()
        if not ok.all():
            return f"{kind.name}.{wire_name} must satisfy {constraint}, but {_shown(wire_name, p, ~ok)}"
    return None


def from_wire(
    type_id: int, params: tuple[WireValue, ...], validate: bool = True
) -> torch.distributions.Distribution:
    """A pyro distribution from its wire description; bad parameters raise ``ValueError``
    naming the parameter and its offending values."""
    kind = BY_TYPE_ID.get(type_id)
    if kind is None:
        raise ValueError(f"unknown PPX distribution type {type_id}")
    if len(params) != len(kind.pyro_params):
        raise ValueError(
            f"{kind.name} expects {len(kind.pyro_params)} parameters "
            f"({', '.join(kind.wire_params)}), got {len(params)}"
        )
    if kind.sparse_params:
        return _extension_from_wire(kind, params, validate)
    params = tuple(np.asarray(densified(p), dtype=np.float64) for p in params)
    if validate:
        _check_values(kind, params)
    kwargs = {name: torch.from_numpy(p) for name, p in zip(kind.pyro_params, params)}
    try:
        return kind.pyro_class(**kwargs, validate_args=validate)
    except (ValueError, RuntimeError) as err:  # RuntimeError: torch cannot broadcast or check them
        if isinstance(err, RuntimeError):
            sample_shape(type_id, params)  # raises the readable error when they do not broadcast
        reason = _check_supports(kind, params) if isinstance(err, ValueError) else None
        if reason is None:
            shown = ", ".join(f"{name}={_brief(p)}" for name, p in zip(kind.wire_params, params))
            reason = f"invalid {kind.name} parameters ({shown}): {err}"
        raise ValueError(reason) from err


def _extension_from_wire(kind: DistributionKind, params: tuple[WireValue, ...],
                         validate: bool) -> torch.distributions.Distribution:
    """An extension kind: its sparse parameters as ``SparseArray``s, the others as tensors; the
    class checks them itself."""
    kwargs = {
        pyro_name: (p if isinstance(p, SparseArray) else SparseArray.from_dense(p)) if wire_name in kind.sparse_params
        else torch.from_numpy(np.asarray(densified(p), dtype=np.float64))
        for pyro_name, wire_name, p in zip(kind.pyro_params, kind.wire_params, params)
    }
    try:
        return kind.pyro_class(**kwargs, validate_args=validate)
    except ValueError as err:
        raise ValueError(f"invalid {kind.name} parameters: {err}") from err


def _brief(array: np.ndarray) -> str:
    return str(array.tolist()) if array.size <= 8 else f"<array of shape {list(array.shape)}>"
