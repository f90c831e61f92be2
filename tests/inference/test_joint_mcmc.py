"""RMH with joint steps (``joint_metropolis_hastings``) against exact posteriors.

Tolerances: 4 standard errors, counting ArviZ's ESS across the chains as the
effective samples (for a standard deviation, sqrt(2 ESS) of them).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from inference.joint_mcmc import _starting_indices, joint_metropolis_hastings
from inference.local import LocalSimulator
from inference.mcmc import metropolis_hastings
from simulators import branching, gaussian
from tests.inference.test_smc import bounded_ridge_model, ridge_model


def _ridge_posterior_of_a(y: float) -> tuple[float, float]:
    precision = np.eye(2) / 25.0 + np.ones((2, 2)) / 0.005 ** 2
    covariance = np.linalg.inv(precision)
    return float((covariance @ np.full(2, y / 0.005 ** 2))[0]), math.sqrt(covariance[0, 0])


def test_joint_steps_mix_along_a_ridge_where_single_site_chains_stick():
    mean, std = _ridge_posterior_of_a(2.0)
    joint = joint_metropolis_hastings(LocalSimulator(ridge_model), 4000, {"y": 2.0}, chains=4, seed=0)
    ess = float(np.ravel(joint.variable_ess("a"))[0])
    assert ess > 30  # seeds 0-2: 50-165
    assert float(np.ravel(joint.variable_rhat("a"))[0]) < 1.1
    assert abs(float(joint.mean("a")) - mean) < 4 * std / math.sqrt(ess)
    assert abs(float(joint.std("a")) - std) < 4 * std / math.sqrt(2 * ess)
    # The same budget of single-site steps: seeds 0-2 gave ESS 4.4-4.5.
    single = metropolis_hastings(LocalSimulator(ridge_model), 4000, {"y": 2.0}, chains=4, burn_in=800, seed=0)
    assert float(np.ravel(single.variable_ess("a"))[0]) < ess / 3


def test_joint_steps_on_bounded_supports_carry_their_change_of_variables():
    a = np.linspace(0.0, 3.0, 30_001)
    density = (3.0 - a) * np.exp(-(3.0 - a))  # p(a | y = 3): the Gamma density of b = 3 - a
    mean = float((a * density).sum() / density.sum())
    std = math.sqrt(float((a ** 2 * density).sum() / density.sum()) - mean ** 2)
    posterior = joint_metropolis_hastings(LocalSimulator(bounded_ridge_model), 4000, {"y": 3.0}, chains=4, seed=1)
    ess = float(np.ravel(posterior.variable_ess("a"))[0])
    assert abs(float(posterior.mean("a")) - mean) < 4 * std / math.sqrt(ess)


def test_discrete_sites_and_changing_structure_match_enumeration():
    exact = branching.exact_posterior(branching.DEFAULT_OBSERVATION)
    posterior = joint_metropolis_hastings(LocalSimulator(branching.model), 4000, branching.DEFAULT_OBSERVATION,
                                          chains=4, seed=2)
    ess = float(np.ravel(posterior.variable_ess("count"))[0])
    assert abs(float(posterior.mean("count")) - exact["count_mean"]) < 4 * exact["count_std"] / math.sqrt(ess)
    estimated = posterior.probabilities("count")
    for count in range(8):
        p = exact["count"][count]
        assert abs(estimated.get(count, 0.0) - p) < 4 * math.sqrt(p * (1 - p) / ess) + 0.01, count


def test_weighted_starts_seed_the_chains_and_the_first_steps():
    simulator = LocalSimulator(gaussian.model)
    observed = {"obs0": 8.0, "obs1": 9.0}
    starts = simulator.prior(200, observed)
    log_weights = np.array([trace.log_likelihood for trace in starts])
    posterior = joint_metropolis_hastings(simulator, 2000, observed, chains=4, starts=starts,
                                          start_log_weights=log_weights, seed=3)
    mean, std = gaussian.posterior([8.0, 9.0])
    ess = float(np.ravel(posterior.variable_ess("mu"))[0])
    assert abs(float(posterior.mean("mu")) - mean) < 4 * std / math.sqrt(ess)


def test_chains_start_from_distinct_weighted_traces_before_any_weightless_one():
    rng = np.random.default_rng(0)
    log_weights = np.array([-np.inf, 0.0, -np.inf, 1.0, 0.5, -np.inf, 2.0])
    for _ in range(20):
        chosen = _starting_indices(log_weights, 4, rng)
        assert sorted(chosen) == [1, 3, 4, 6]
    topped_up = _starting_indices(np.array([0.0, -np.inf, -np.inf]), 2, rng)
    assert len(set(topped_up)) == 2 and 0 in topped_up


@pytest.mark.parametrize("kwargs, message", [
    ({"num_traces": 0}, "num_traces, thin and retune_every must be at least 1, got 0, 1 and 50"),
    ({"retune_every": 0}, "got 100, 1 and 0"),
    ({"chains": 3, "starts": "two"}, "3 chains need at least as many starting traces, got 2"),
    ({"start_log_weights": np.zeros(5)}, "start_log_weights must hold one number per start (100), got shape (5,)"),
])
def test_bad_settings_are_refused_by_name(kwargs, message):
    simulator = LocalSimulator(gaussian.model)
    observed = {"obs0": 8.0, "obs1": 9.0}
    settings = {"num_traces": 100, **kwargs}
    if settings.get("starts") == "two":
        settings["starts"] = simulator.prior(2, observed)
    if "start_log_weights" in settings:
        settings["starts"] = simulator.prior(100, observed)
    with pytest.raises(ValueError) as raised:
        joint_metropolis_hastings(simulator, settings.pop("num_traces"), observed, **settings)
    assert message in str(raised.value)


@pytest.mark.parametrize("network", [False, True])
def test_the_posterior_command_runs_joint_rmh_from_prior_or_ic_draws(network, barely_trained_checkpoint):
    starting = ["--network", str(barely_trained_checkpoint)] if network else []
    run = subprocess.run([sys.executable, "-m", "inference", "posterior", "--model", "simulators.gaussian:model",
                          "--observe", "obs0=8", "--observe", "obs1=9", "--engine", "rmh-joint", *starting,
                          "--start-traces", "200", "-n", "2000", "--chains", "4", "--seed", "2", "--json", "--quiet"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["engine"] == "rmh-joint" and summary["traces"] == 2000
    mean, std = gaussian.posterior([8.0, 9.0])
    mu = summary["variables"]["mu"]
    assert mu["r_hat"] < 1.1
    assert abs(mu["mean"] - mean) < 4 * std / math.sqrt(mu["ess"])
