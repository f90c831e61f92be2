"""inference.prior_draws: prior draws without pyro objects, value for value what pyro draws."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inference.prior_draws import draw_prior
from ppx.distributions import KINDS, from_wire
from ppx.messages import WireDistribution

SHAPES = [((), ()), ((3,), ()), ((), (2,)), ((2, 1), (3,)), ((0,), ()), ((20,), (20,))]


@pytest.mark.parametrize("type_id, first, second",
                         [(1, -1.5, 0.7), (2, -1.5, 0.7), (1, 1e300, 1e300), (2, -1.7e308, 1.7e308)])
@pytest.mark.parametrize("shapes", SHAPES, ids=str)
def test_same_values_as_pyro_under_the_same_seed(type_id, first, second, shapes) -> None:
    params = (np.full(shapes[0], first), np.full(shapes[1], second))
    torch.manual_seed(7)
    drawn = draw_prior(WireDistribution(type_id, params))
    torch.manual_seed(7)
    expected = from_wire(type_id, params).sample().numpy()
    assert isinstance(drawn, np.ndarray) and drawn.dtype == np.float64
    assert drawn.shape == expected.shape and drawn.tobytes() == expected.tobytes()


@pytest.mark.parametrize("type_id, params", [
    (1, (np.array(np.nan), np.array(1.0))), (1, (np.array(0.0), np.array(0.0))),
    (1, (np.array(0.0), np.array(-1.0))), (1, (np.zeros(2), np.array([1.0, np.nan]))),
    (2, (np.array(1.0), np.array(1.0))), (2, (np.array(np.nan), np.array(1.0))),
    (2, (np.zeros(2), np.array([1.0, -1.0]))),
    (1, (np.zeros(2), np.ones(3))),  # shapes that do not broadcast
])
def test_parameters_pyro_rejects_are_left_to_pyro(type_id, params) -> None:
    assert draw_prior(WireDistribution(type_id, params)) is None
    with pytest.raises((ValueError, RuntimeError)):  # torch raises RuntimeError for the shapes
        from_wire(type_id, params)


@pytest.mark.parametrize("type_id", [1, 2])
@pytest.mark.parametrize("params", [(np.inf, 1.0), (0.0, np.inf), (-np.inf, 0.0), (np.zeros(2), np.full(2, np.inf))],
                         ids=str)
def test_infinite_parameters_are_left_to_pyro(type_id, params) -> None:
    """Only plainly valid parameters take the fast path; pyro decides (and any stricter check
    in from_wire applies) for the rest."""
    assert draw_prior(WireDistribution(type_id, tuple(np.asarray(p) for p in params))) is None


@pytest.mark.parametrize("kind", [kind for kind in KINDS if kind.name not in ("Normal", "Uniform")],
                         ids=lambda kind: kind.name)
def test_other_kinds_are_left_to_pyro(kind) -> None:
    params = tuple(np.array(0.5) for _ in kind.wire_params)
    assert draw_prior(WireDistribution(kind.type_id, params)) is None


def test_a_wrong_number_of_parameters_is_left_to_pyro() -> None:
    assert draw_prior(WireDistribution(1, (np.array(0.0),))) is None
