"""Tempered sequential Monte Carlo against exact posteriors and evidences.

Tolerances. Resampling copies particles and the moves separate the copies only
in part, so the particles' Kish ESS overstates their information; the checks
count a quarter of the particles as effective samples and allow 4 standard
errors. Where a figure's spread between runs was measured (the mode share, the
log evidence), the tolerance is 4 of those standard deviations.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pyro.distributions as dist
import pytest
import torch

import ppx
from inference.local import LocalSimulator
from inference.mcmc import metropolis_hastings
from inference.smc import next_increment, systematic_resample, tempered_smc
from simulators import branching, gaussian
from tests.inference.test_cli import ppx as run_ppx


def _f(value: float) -> torch.Tensor:
    return torch.tensor(value, dtype=torch.float64)


def _normal(mean: float, std: float) -> dist.Normal:
    return dist.Normal(torch.tensor(mean, dtype=torch.float64), torch.tensor(std, dtype=torch.float64))


def narrow_model():
    """mu ~ Normal(0, 10), y ~ Normal(mu, 0.01): a posterior a thousand times narrower than the prior."""
    mu = ppx.sample(_normal(0.0, 10.0), name="mu")
    ppx.observe(dist.Normal(mu, torch.tensor(0.01, dtype=torch.float64)), name="y")


def two_mode_model():
    """x ~ Normal(0, 3), y ~ Normal(x^2, 0.1): given y = 4, modes of equal mass at x = -2 and +2."""
    x = ppx.sample(_normal(0.0, 3.0), name="x")
    ppx.observe(dist.Normal(x * x, torch.tensor(0.1, dtype=torch.float64)), name="y")


def ridge_model():
    """a, b ~ Normal(0, 5), y ~ Normal(a + b, 0.005): a ridge, wide along a - b and narrow across."""
    a = ppx.sample(_normal(0.0, 5.0), name="a")
    b = ppx.sample(_normal(0.0, 5.0), name="b")
    ppx.observe(dist.Normal(a + b, torch.tensor(0.005, dtype=torch.float64)), name="y")


def bounded_ridge_model():
    """a ~ Uniform(0, 4), b ~ Gamma(2, 1), y ~ Normal(a + b, 0.01): a ridge on bounded supports,
    where each step's change of variables enters the acceptance ratio."""
    a = ppx.sample(dist.Uniform(_f(0.0), _f(4.0)), name="a")
    b = ppx.sample(dist.Gamma(_f(2.0), _f(1.0)), name="b")
    ppx.observe(dist.Normal(a + b, _f(0.01)), name="y")


def _two_mode_exact(y: float) -> tuple[float, float]:
    """log p(y) and E|x| given y for ``two_mode_model``, by quadrature on a fine grid."""
    grid = np.linspace(-15.0, 15.0, 600_001)
    log_density = (-grid ** 2 / 18 - 0.5 * math.log(2 * math.pi * 9)
                   - (y - grid ** 2) ** 2 / 0.02 - 0.5 * math.log(2 * math.pi * 0.01))
    density = np.exp(log_density)
    return math.log(density.sum() * (grid[1] - grid[0])), float((np.abs(grid) * density).sum() / density.sum())


def test_next_increment_keeps_the_asked_effective_sample_size():
    log_likelihoods = np.random.default_rng(0).normal(0.0, 100.0, size=500)
    increment = next_increment(log_likelihoods, 1.0, 0.5)
    weights = np.exp(increment * log_likelihoods - np.max(increment * log_likelihoods))
    assert 0 < increment < 0.1
    assert weights.sum() ** 2 / np.sum(weights ** 2) / 500 == pytest.approx(0.5, abs=1e-6)
    # When the whole remaining rise keeps the ESS, the ladder ends.
    assert next_increment(np.zeros(10), 0.3, 0.5) == 0.3


def test_systematic_resampling_gives_each_particle_floor_or_ceil_of_its_expected_offspring():
    weights = np.array([0.5, 0.3, 0.15, 0.05])
    for seed in range(20):
        counts = np.bincount(systematic_resample(weights, np.random.default_rng(seed)), minlength=4)
        assert counts.sum() == 4
        assert np.all(np.abs(counts - 4 * weights) < 1)


def test_a_posterior_a_thousand_times_narrower_than_the_prior_and_its_evidence():
    posterior = tempered_smc(LocalSimulator(narrow_model), 200, {"y": 3.0}, moves=10, seed=1)
    precision = 1 / 10.0 ** 2 + 1 / 0.01 ** 2
    mean, std = 3.0 / 0.01 ** 2 / precision, precision ** -0.5
    effective = 200 / 4
    assert abs(float(posterior.mean("mu")) - mean) < 4 * std / math.sqrt(effective)
    assert abs(float(posterior.std("mu")) - std) < 4 * std / math.sqrt(2 * effective)
    # Reaching it took a ladder of several stages, each keeping half the particles' ESS.
    assert len(posterior.temperatures) > 4 and posterior.temperatures[-1] == 1.0
    assert np.all(np.diff(posterior.temperatures) > 0)
    # The step sizes followed the narrowing targets: the last stage still accepts.
    assert 0.2 < posterior.acceptance_rates[-1] < 0.7
    exact_log_evidence = float(_normal(0.0, math.sqrt(10.0 ** 2 + 0.01 ** 2)).log_prob(torch.tensor(3.0)))
    assert posterior.log_evidence == pytest.approx(exact_log_evidence, abs=0.8)  # 4 x the 0.2 spread measured
    assert posterior.simulator_runs == 200 * (1 + 10 * len(posterior.acceptance_rates))


def test_both_modes_keep_their_mass_where_rmh_chains_stay_in_one():
    log_evidence, mean_abs = _two_mode_exact(4.0)
    posterior = tempered_smc(LocalSimulator(two_mode_model), 200, {"y": 4.0}, moves=10, seed=2)
    x, weights = posterior.values("x"), posterior.weights("x")
    # Over twelve seeds the positive mode's share had standard deviation 0.074.
    assert abs(float(weights[x > 0].sum()) - 0.5) < 0.3
    assert abs(float(np.sum(weights * np.abs(x))) - mean_abs) < 4 * 0.025 / math.sqrt(50)
    assert posterior.log_evidence == pytest.approx(log_evidence, abs=0.8)
    # Chains started from the best prior traces all sit in the mode those were in, and agree there.
    chains = metropolis_hastings(LocalSimulator(two_mode_model), 800, {"y": 4.0}, chains=4, seed=0)
    positive = float(np.mean(chains.values("x") > 0))
    assert positive in (0.0, 1.0)


def test_joint_steps_follow_a_ridge_that_single_site_steps_cannot():
    y = 2.0
    precision = np.eye(2) / 25.0 + np.ones((2, 2)) / 0.005 ** 2
    covariance = np.linalg.inv(precision)
    mean_a, std_a = float((covariance @ np.full(2, y / 0.005 ** 2))[0]), math.sqrt(covariance[0, 0])
    posterior = tempered_smc(LocalSimulator(ridge_model), 200, {"y": y}, moves=10, seed=0)
    assert abs(float(posterior.mean("a")) - mean_a) < 4 * std_a / math.sqrt(200 / 4)
    # Over six seeds std(a) had spread 0.17 around the exact 3.54; with single-site steps only it
    # came out at 2.4-3.3 (0.8 low on average), the ridge's spread kept only by the prior's ancestors.
    assert float(posterior.std("a")) == pytest.approx(std_a, abs=4 * 0.17)


def test_joint_steps_on_bounded_supports_carry_their_change_of_variables():
    # Given y = 3 the ridge leaves p(a | y) proportional to the Gamma density of b = 3 - a, on 0 < a < 3.
    a = np.linspace(0.0, 3.0, 30_001)
    density = (3.0 - a) * np.exp(-(3.0 - a))
    mean = float((a * density).sum() / density.sum())
    std = math.sqrt(float((a ** 2 * density).sum() / density.sum()) - mean ** 2)
    posterior = tempered_smc(LocalSimulator(bounded_ridge_model), 200, {"y": 3.0}, moves=10, seed=0)
    # With the Jacobian's sign flipped, the same run put E[a] at 0.03 (and at 0.02-1.6 on other seeds).
    assert abs(float(posterior.mean("a")) - mean) < 4 * std / math.sqrt(200 / 4)


def test_discrete_sites_and_changing_structure_match_enumeration():
    exact = branching.exact_posterior(branching.DEFAULT_OBSERVATION)
    posterior = tempered_smc(LocalSimulator(branching.model), 400, branching.DEFAULT_OBSERVATION, moves=5, seed=3)
    effective = 400 / 4
    assert abs(float(posterior.mean("count")) - exact["count_mean"]) < 4 * exact["count_std"] / math.sqrt(effective)
    estimated = posterior.probabilities("count")
    for count in range(8):
        p = exact["count"][count]
        assert abs(estimated.get(count, 0.0) - p) < 4 * math.sqrt(p * (1 - p) / effective) + 1e-3, count


@pytest.mark.parametrize("kwargs, message", [
    ({"num_particles": 1}, "num_particles must be at least 2, got 1"),
    ({"moves": 0}, "moves must be at least 1, got 0"),
    ({"ess_fraction": 1.0}, "ess_fraction must lie strictly between 0 and 1, got 1.0"),
])
def test_bad_settings_are_refused_by_name(kwargs, message):
    settings = {"num_particles": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        tempered_smc(LocalSimulator(gaussian.model), observations={"obs0": 8.0, "obs1": 9.0}, **settings)


def test_a_ladder_longer_than_allowed_stops_with_a_clear_error():
    with pytest.raises(RuntimeError, match="max_stages=2 at beta"):
        tempered_smc(LocalSimulator(narrow_model), 20, {"y": 3.0}, moves=1, max_stages=2, seed=0)


def test_the_posterior_command_runs_smc():
    run = run_ppx("posterior", "--model", "simulators.gaussian:model", "--observe", "obs0=8", "--observe", "obs1=9",
                  "--engine", "smc", "-n", "200", "--moves", "5", "--seed", "4", "--json", "--quiet")
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    mean, std = gaussian.posterior([8, 9])
    assert summary["engine"] == "smc" and summary["traces"] == 200
    assert abs(summary["variables"]["mu"]["mean"] - mean) < 4 * std / math.sqrt(200 / 4)
    assert summary["stages"] == len(summary["acceptance_rates"]) == len(summary["temperatures"]) - 1
    assert summary["simulator_runs"] == 200 * (1 + 5 * summary["stages"])
