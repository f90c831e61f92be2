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
