"""ppx.distributions.from_wire: parameters from an untrusted peer are checked and named."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ppx.distributions import BY_NAME, from_wire, oversized_broadcast, sample_shape


def wire(kind: str, *params) -> tuple[int, tuple[np.ndarray, ...]]:
    return BY_NAME[kind].type_id, tuple(np.asarray(p, dtype=np.float64) for p in params)


OUT_OF_SUPPORT = {
    "negative stddev": (wire("Normal", 0.0, -1.0), r"Normal\.stddev must satisfy GreaterThan.*stddev = -1\.0"),
    "zero stddev": (wire("Normal", 0.0, 0.0), r"Normal\.stddev .*stddev = 0\.0"),
    "one bad stddev of many": (wire("Normal", [0.0, 0.0, 0.0], [1.0, -2.0, 1.0]), r"stddev\[1\] = -2\.0"),
    "NaN mean": (wire("Normal", np.nan, 1.0), r"Normal\.mean must be finite, but mean = nan"),
    "infinite mean": (wire("Normal", np.inf, 1.0), r"Normal\.mean must be finite, but mean = inf"),
    "infinite Poisson rate": (wire("Poisson", np.inf), r"Poisson\.rate must be finite"),
    "negative Poisson rate": (wire("Poisson", -0.5), r"Poisson\.rate .*rate = -0\.5"),
    "Uniform low above high": (wire("Uniform", 2.0, 1.0), r"Uniform\.low must be below Uniform\.high, "
                                                          r"but low = 2\.0 and high = 1\.0"),
    "Uniform low equal to high": (wire("Uniform", [0.0, 1.0], 1.0), r"low\[1\] = 1\.0 and high\[1\] = 1\.0"),
    "all-zero probabilities": (wire("Categorical", [0.0, 0.0]),
                               r"Categorical\.probs must have a positive sum .*sum\(probs\) = 0\.0"),
    "one all-zero row": (wire("Categorical", [[0.5, 0.5], [0.0, 0.0]]), r"sum\(probs\)\[1\] = 0\.0"),
    "negative probability": (wire("Categorical", [-0.5, 1.5]), r"non-negative, but probs\[0\] = -0\.5"),
    "no categories": (wire("Categorical", np.zeros(0)), r"one probability per category, got shape \[0\]"),
    "scalar probabilities": (wire("Categorical", 1.0), r"one probability per category, got shape \[\]"),
    "Bernoulli probability above one": (wire("Bernoulli", 1.5), r"Bernoulli\.probs .*probs = 1\.5"),
    "fractional Binomial count": (wire("Binomial", 2.5, 0.5), r"Binomial\.total_count .*total_count = 2\.5"),
    "zero Beta concentration": (wire("Beta", 0.0, 1.0), r"Beta\.concentration1 .*concentration1 = 0\.0"),
    "negative Exponential rate": (wire("Exponential", -1.0), r"Exponential\.rate"),
    "zero Gamma rate": (wire("Gamma", 1.0, 0.0), r"Gamma\.rate"),
    "negative LogNormal scale": (wire("LogNormal", 0.0, -1.0), r"LogNormal\.scale"),
    "negative Weibull scale": (wire("Weibull", -1.0, 1.0), r"Weibull\.scale"),
    "shapes that do not broadcast": (wire("Normal", np.zeros(3), np.ones(4)),
                                     r"Normal parameters of shapes mean \[3\], stddev \[4\] do not broadcast"),
    "empty Beta parameters": (wire("Beta", np.zeros(0), np.zeros(0)),  # torch's own check raises RuntimeError
                              r"invalid Beta parameters \(concentration1=\[\], concentration0=\[\]\)"),
}


@pytest.mark.parametrize("description", OUT_OF_SUPPORT)
def test_parameters_out_of_support_name_the_parameter_and_value(description: str) -> None:
    (type_id, params), message = OUT_OF_SUPPORT[description]
    with pytest.raises(ValueError, match=message):
        from_wire(type_id, params)


@pytest.mark.parametrize("type_id, params", [
    wire("Normal", [0.0, 1.0], 2.0),
    wire("Uniform", -1.0, [0.0, 3.0]),
    wire("Categorical", np.float32([0.1] * 10).astype(np.float64)),  # float32 rounding: sums to 1.0000001
    wire("Categorical", [[0.25, 0.75], [1.0, 0.0]]),
    wire("Poisson", 0.0),
    wire("Binomial", [0.0, 10.0], 1.0),
], ids=["Normal", "Uniform", "Categorical from float32", "Categorical batch", "Poisson zero rate", "Binomial"])
def test_valid_parameters_are_accepted(type_id: int, params: tuple[np.ndarray, ...]) -> None:
    from_wire(type_id, params)


def test_categorical_weights_are_normalised_as_torch_does() -> None:
    # A plain PPX simulator may send weights; the reference engine's torch Categorical normalises them.
    categorical = from_wire(*wire("Categorical", [[1.0, 3.0], [2.0, 0.0]]))
    assert torch.allclose(categorical.probs, torch.tensor([[0.25, 0.75], [1.0, 0.0]], dtype=torch.float64))
    assert categorical.log_prob(torch.tensor([1.0, 0.0])).tolist() == pytest.approx([math.log(0.75), 0.0])


def test_sample_shape_broadcasts_parameters_and_drops_the_category_axis() -> None:
    assert sample_shape(*wire("Normal", np.zeros((3, 1)), np.ones(2))) == (3, 2)
    assert sample_shape(*wire("Categorical", np.full((4, 3), 1 / 3))) == (4,)
    assert sample_shape(*wire("Poisson", 1.0)) == ()


def test_broadcast_beyond_the_cap_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ppx.limits.MAX_TENSOR_ELEMENTS", 100)
    assert oversized_broadcast(1, [(10, 1), (1, 10)]) is None
    message = oversized_broadcast(1, [(11, 1), (1, 10)])
    assert message is not None and "Normal parameters (mean, stddev) broadcast" in message
    assert "[11, 10]" in message and "limit of 100" in message
