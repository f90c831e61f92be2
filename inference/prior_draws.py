"""Prior draws for the common distribution kinds straight from their wire parameters.

Building a pyro distribution to draw one value costs more than a whole round trip's
socket work, and a prior draw needs only the parameters and torch's generator. These
draws make the same generator calls with the same arithmetic as pyro's own
``sample``, so a seeded run gives the same values either way. Parameters pyro would
reject, and kinds not listed here, give None: the caller then builds the pyro
distribution, which raises its usual error or draws as before.
"""

from __future__ import annotations

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


def _normal(loc: np.ndarray, scale: np.ndarray) -> Optional[np.ndarray]:
    # pyro's constraints: loc is not NaN, scale > 0 (which NaN also fails)
    if loc.ndim == 0 and scale.ndim == 0:  # most choices: Python floats, same arithmetic
        mean, stddev = float(loc), float(scale)
        if mean != mean or not stddev > 0:
            return None
        return np.array(mean + torch.randn((), dtype=torch.float64).item() * stddev)
    shape = _shape(loc, scale)
    if shape is None or not (loc == loc).all() or not (scale > 0).all():
        return None
    noise = torch.randn(shape, dtype=torch.float64).numpy()
    with np.errstate(all="ignore"):  # inf parameters give inf or nan, silently as in torch
        return np.asarray(loc + noise * scale)


def _uniform(low: np.ndarray, high: np.ndarray) -> Optional[np.ndarray]:
    # pyro's constraint: low < high (which NaN fails)
    if low.ndim == 0 and high.ndim == 0:
        lower, upper = float(low), float(high)
        if not lower < upper:
            return None
        return np.array(lower + torch.rand((), dtype=torch.float64).item() * (upper - lower))
    shape = _shape(low, high)
    if shape is None or not (low < high).all():
        return None
    rand = torch.rand(shape, dtype=torch.float64).numpy()
    with np.errstate(all="ignore"):
        return np.asarray(low + rand * (high - low))


_DRAWS: dict[int, Callable[..., Optional[np.ndarray]]] = {1: _normal, 2: _uniform}
"""By PPX distribution type id: Normal and Uniform."""


def draw_prior(wire: WireDistribution) -> Optional[np.ndarray]:
    """A float64 draw from ``wire``'s distribution, or None where pyro must do it."""
    draw = _DRAWS.get(wire.type_id)
    if draw is None or len(wire.params) != 2:
        return None
    return draw(*wire.params)
