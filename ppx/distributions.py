"""The eleven PPX distributions and their mapping onto ``pyro.distributions``.

One table drives both directions: the wire names each distribution by a union id
and lists its parameters in schema order; pyro names the same parameters its own
way. Parameters travel as float64 arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyro.distributions as dist
import torch


@dataclass(frozen=True)
class DistributionKind:
    """One row of the PPX distribution table."""

    type_id: int
    name: str
    wire_params: tuple[str, ...]
    pyro_class: type
    pyro_params: tuple[str, ...]
    discrete: bool


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

BY_TYPE_ID: dict[int, DistributionKind] = {kind.type_id: kind for kind in KINDS}
BY_NAME: dict[str, DistributionKind] = {kind.name: kind for kind in KINDS}
_BY_PYRO_CLASS: dict[type, DistributionKind] = {kind.pyro_class: kind for kind in KINDS}


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
    supported = ", ".join(kind.name for kind in KINDS)
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


def to_wire(distribution: torch.distributions.Distribution) -> tuple[int, tuple[np.ndarray, ...]]:
    """The union id and float64 parameter arrays that describe ``distribution`` on the wire."""
    kind = kind_of(distribution)
    params = tuple(
        as_float64_array(getattr(distribution, name)) for name in kind.pyro_params
    )
    return kind.type_id, params


def from_wire(
    type_id: int, params: tuple[np.ndarray, ...], validate: bool = True
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
    kwargs = {name: torch.from_numpy(np.asarray(p, dtype=np.float64)) for name, p in zip(kind.pyro_params, params)}
    try:
        return kind.pyro_class(**kwargs, validate_args=validate)
    except ValueError as err:
        shown = ", ".join(f"{name}={np.asarray(p).tolist()}" for name, p in zip(kind.wire_params, params))
        raise ValueError(f"invalid {kind.name} parameters ({shown}): {err}") from err
