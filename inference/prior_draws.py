"""Prior draws for the common distribution kinds straight from their wire parameters.

Building a pyro distribution to draw one value costs more than a whole round trip's
socket work, and a prior draw needs only the parameters and torch's generator. These
draws make the same generator calls with the same arithmetic as pyro's own
``sample``, so a seeded run gives the same values either way. Only plainly valid
parameters take this path (finite, scale positive, bounds in order); anything else,
and kinds not listed here, gives None, and the caller builds the pyro distribution,
which raises its usual error or draws as before.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np
import torch

from ppx.messages import WireDistribution


def _shape(a: np.ndarray, b: np.ndarray) -> Optional[tuple[int, ...]]:
    if a.shape == b.shape:
        return a.shape
    try:
        return np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        return None


def _finite(*arrays: np.ndarray) -> bool:
    return all(bool(np.isfinite(a).all()) for a in arrays)


def _normal(loc: np.ndarray, scale: np.ndarray) -> Optional[np.ndarray]:
    if loc.ndim == 0 and scale.ndim == 0:  # most choices: Python floats, same arithmetic
        mean, stddev = float(loc), float(scale)
        if not (math.isfinite(mean) and math.isfinite(stddev) and stddev > 0):
            return None
        return np.array(mean + torch.randn((), dtype=torch.float64).item() * stddev)
    shape = _shape(loc, scale)
    if shape is None or not _finite(loc, scale) or not (scale > 0).all():
        return None
    noise = torch.randn(shape, dtype=torch.float64).numpy()
    with np.errstate(over="ignore"):  # huge parameters overflow to inf, silently as in torch
        return np.asarray(loc + noise * scale)


def _uniform(low: np.ndarray, high: np.ndarray) -> Optional[np.ndarray]:
    if low.ndim == 0 and high.ndim == 0:
        lower, upper = float(low), float(high)
        if not (math.isfinite(lower) and math.isfinite(upper) and lower < upper):
            return None
        return np.array(lower + torch.rand((), dtype=torch.float64).item() * (upper - lower))
    shape = _shape(low, high)
    if shape is None or not _finite(low, high) or not (low < high).all():
        return None
    rand = torch.rand(shape, dtype=torch.float64).numpy()
    with np.errstate(over="ignore"):
        return np.asarray(low + rand * (high - low))


_DRAWS: dict[int, Callable[..., Optional[np.ndarray]]] = {1: _normal, 2: _uniform}
"""By PPX distribution type id: Normal and Uniform."""


def draw_prior(wire: WireDistribution) -> Optional[np.ndarray]:
    """A float64 draw from ``wire``'s distribution, or None where pyro must do it."""
    draw = _DRAWS.get(wire.type_id)
    if draw is None or len(wire.params) != 2:
        return None
    return draw(*wire.params)
