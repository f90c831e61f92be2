"""Engines against the branching model's exact posterior, computed by enumeration.

The model's trace structure depends on the Poisson count, so MH moves change the
number of sites. Tolerances: a posterior probability p is estimated with
standard error sqrt(p (1 - p) / ESS) and the mean count with std / sqrt(ESS);
checks allow 4.5 standard errors.
"""

from __future__ import annotations

import math

import pytest

from inference.importance import importance_sampling
from inference.local import LocalSimulator
from inference.mcmc import metropolis_hastings
from inference.pool import SimulatorPool
from simulators import branching

OBSERVED = branching.DEFAULT_OBSERVATION
EXACT = branching.exact_posterior(OBSERVED)


def assert_count_posterior_matches(posterior, ess: float) -> None:
    assert ess > 50, f"too few effective samples ({ess:.0f})"
    mean_error = 4.5 * EXACT["count_std"] / math.sqrt(ess)
    assert abs(float(posterior.mean("count")) - EXACT["count_mean"]) < mean_error
    estimated = posterior.probabilities("count")
    for count in range(0, 8):
        p = EXACT["count"][count]
        assert abs(estimated.get(count, 0.0) - p) < 4.5 * math.sqrt(p * (1 - p) / ess) + 1e-3, count


def test_importance_sampling_over_a_pool_matches_enumeration():
    with SimulatorPool("python -m simulators.branching", workers=2) as pool:
        posterior = importance_sampling(pool, 10_000, OBSERVED, batch_size=500)
    assert posterior.num_traces == 10_000
    assert_count_posterior_matches(posterior, posterior.ess)
    # Traces without a soft branch have no `level`: its presence is P(count < 3).
    assert posterior.presence("level") == pytest.approx(sum(EXACT["level"].values()), abs=0.05)


def test_lightweight_mh_matches_enumeration_across_changing_structure():
    posterior = metropolis_hastings(LocalSimulator(branching.model), 8000, OBSERVED, kernel="lmh",
                                    chains=2, seed=5)
    assert_count_posterior_matches(posterior, float(posterior.variable_ess("count")))
