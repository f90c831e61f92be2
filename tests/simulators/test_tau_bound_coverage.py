"""The acceptance run's expected coverage near the prior's bounds (benchmarks.tau_bound_coverage)."""

import numpy as np
import pytest

from benchmarks.tau_bound_coverage import coverage_probability, true_momenta
from benchmarks.tau_inference import FIRST_EVENT_SEED
from simulators import tau_decay


@pytest.mark.parametrize("level", [0.68, 0.95])
def test_an_interior_truth_observed_sharply_is_covered_at_the_nominal_rate(level):
    chance = coverage_probability(0.0, 0.05, -3.0, 3.0, level, np.random.default_rng(0))
    assert chance == pytest.approx(level, abs=0.015)  # 20,000 draws: standard error 0.003


def test_a_truth_on_the_bound_is_never_inside_a_central_interval():
    assert coverage_probability(3.0, 0.5, -3.0, 3.0, 0.68, np.random.default_rng(0)) == 0.0
    assert coverage_probability(2.98, 0.5, -3.0, 3.0, 0.68, np.random.default_rng(0)) < 0.1


def test_over_truths_drawn_from_the_prior_the_exact_posterior_is_calibrated():
    rng = np.random.default_rng(1)
    truths = rng.uniform(-3.0, 3.0, size=300)
    chances = [coverage_probability(truth, 0.8, -3.0, 3.0, 0.68, rng, draws=2_000) for truth in truths]
    # the truths' spread dominates: chances run from 0 to about 0.7, sd about 0.2 / sqrt(300)
    assert np.mean(chances) == pytest.approx(0.68, abs=0.03)
    assert min(chances) < 0.3 < 0.6 < max(chances)


def test_true_momenta_are_those_of_the_held_out_event():
    truth, _ = tau_decay.generate_event(FIRST_EVENT_SEED + 3, image_source="likelihood")
    assert true_momenta(3) == {name: truth[name] for name in ("px", "py", "pz")}
