"""Every engine against the Gaussian model's analytic posterior (mean 7.25, std sqrt(1/1.2)).

Tolerances come from the run's own effective sample size: the posterior mean's
Monte Carlo standard error is std / sqrt(ESS) and the standard deviation's about
std / sqrt(2 ESS); checks allow 4.5 standard errors (a chance failure rate
below 1e-5 per check).
"""

from __future__ import annotations

import math

import numpy as np
import pyro.distributions as dist
import pytest
import torch

import ppx
from inference.importance import importance_sampling
from inference.local import LocalSimulator
from inference.mcmc import metropolis_hastings
from inference.remote import RemoteSimulator
from simulators import gaussian

OBSERVED = {"obs0": 8.0, "obs1": 9.0}
TRUE_MEAN, TRUE_STD = gaussian.posterior([8.0, 9.0])


def assert_matches_analytic(mean: float, std: float, ess: float) -> None:
    assert ess > 30, f"too few effective samples ({ess:.1f}) for a meaningful check"
    assert abs(mean - TRUE_MEAN) < 4.5 * TRUE_STD / math.sqrt(ess), (mean, ess)
    assert abs(std - TRUE_STD) < 4.5 * TRUE_STD / math.sqrt(2 * ess), (std, ess)


def test_analytic_answer():
    assert TRUE_MEAN == pytest.approx(7.25)
    assert TRUE_STD == pytest.approx(math.sqrt(1 / 1.2))


def test_importance_sampling_in_process():
    torch.manual_seed(0)
    posterior = importance_sampling(LocalSimulator(gaussian.model), 20_000, OBSERVED)
    assert_matches_analytic(float(posterior.mean("mu")), float(posterior.std("mu")), posterior.ess)


def test_importance_sampling_over_ppx_batches(start_simulator):
    with RemoteSimulator(start_simulator("simulators.gaussian"), handshake_timeout=60) as simulator:
        posterior = importance_sampling(simulator, 20_000, OBSERVED, batch_size=500)
    assert posterior.num_traces == 20_000
    assert_matches_analytic(float(posterior.mean("mu")), float(posterior.std("mu")), posterior.ess)


@pytest.mark.parametrize("where", ["in-process", "remote"])
def test_random_walk_mh(where, start_simulator):
    simulator = (LocalSimulator(gaussian.model) if where == "in-process"
                 else RemoteSimulator(start_simulator("simulators.gaussian"), handshake_timeout=60))
    with simulator:
        posterior = metropolis_hastings(simulator, 3000, OBSERVED, kernel="rmh", seed=1)
    ess = float(posterior.variable_ess("mu"))
    assert 0.2 < posterior.acceptance_rate < 0.9
    assert_matches_analytic(float(posterior.mean("mu")), float(posterior.std("mu")), ess)


def test_chains_keep_each_observation_s_log_density_but_not_its_data(start_simulator):
    # A kept tau trace would otherwise hold its calorimeter image and the likelihood's mean and width.
    with RemoteSimulator(start_simulator("simulators.gaussian")) as simulator:
        posterior = metropolis_hastings(simulator, 300, OBSERVED, kernel="rmh", seed=2)
    released = [trace for trace in posterior.traces if all(c.value is None for c in trace.observes)]
    assert len(released) > 0.9 * posterior.num_traces
    for trace in released:
        mu = torch.tensor(float(trace.named("mu").value), dtype=torch.float64)
        expected = sum(float(dist.Normal(mu, gaussian.NOISE_SCALE).log_prob(torch.tensor(y, dtype=torch.float64)))
                       for y in OBSERVED.values())
        assert trace.log_likelihood == pytest.approx(expected, abs=1e-9)
    with pytest.raises(ValueError, match="observe at address .* has released its value and distribution"):
        released[0].observes[0].distribution


def test_lightweight_mh_in_process():
    # Prior proposals rarely land in this narrow posterior, so many steps are needed.
    posterior = metropolis_hastings(LocalSimulator(gaussian.model), 20_000, OBSERVED, kernel="lmh",
                                    seed=2, chains=2)
    assert_matches_analytic(float(posterior.mean("mu")), float(posterior.std("mu")),
                            float(posterior.variable_ess("mu")))


def test_unknown_observed_name_is_refused():
    with pytest.raises(ValueError, match=r"'obs9'.*named: obs0, obs1"):
        importance_sampling(LocalSimulator(gaussian.model), 10, {"obs9": 1.0})


def test_non_finite_observation_is_refused():
    with pytest.raises(ValueError, match="obs0.*NaN"):
        importance_sampling(LocalSimulator(gaussian.model), 10, {"obs0": np.nan})


def narrow_model():
    """mu ~ Normal(0, 10), one observation with std 0.1: a posterior a hundred times narrower than the prior."""
    mu = ppx.sample(dist.Normal(torch.tensor(0.0, dtype=torch.float64), torch.tensor(10.0, dtype=torch.float64)),
                    name="mu")
    ppx.observe(dist.Normal(mu, torch.tensor(0.1, dtype=torch.float64)), name="y")
    return mu


def test_random_walk_mh_tunes_its_step_to_a_posterior_far_narrower_than_the_prior():
    observed = {"y": 3.0}
    precision = 1 / 10.0 ** 2 + 1 / 0.1 ** 2
    mean, std = 3.0 / 0.1 ** 2 / precision, precision ** -0.5
    fixed = metropolis_hastings(LocalSimulator(narrow_model), 2000, observed, kernel="rmh", seed=3, adapt=False)
    tuned = metropolis_hastings(LocalSimulator(narrow_model), 2000, observed, kernel="rmh", seed=3,
                                burn_in=1000)
    # A step of half the prior's std (5) accepts about std / 5 of the time; the tuned step about 0.44.
    assert fixed.acceptance_rate < 0.1
    assert 0.3 < tuned.acceptance_rate < 0.6
    ess = float(tuned.variable_ess("mu"))
    assert ess > 300  # the untuned chain keeps a few dozen distinct values at most
    # Tolerance: 4 standard errors of the chain mean, and of the std with n_eff samples.
    assert abs(float(tuned.mean("mu")) - mean) < 4 * std / math.sqrt(ess)
    assert abs(float(tuned.std("mu")) - std) < 4 * std / math.sqrt(2 * ess)


def test_chains_can_start_from_given_traces():
    simulator = LocalSimulator(narrow_model)
    near = [t for t in simulator.prior(2000, {"y": 3.0}) if abs(float(t.named("mu").value) - 3.0) < 0.3]
    far = simulator.prior(50, {"y": 3.0})
    far = [t for t in far if abs(float(t.named("mu").value) - 3.0) > 5.0]
    # With no burn-in and the fixed step, the first kept samples are where the chain started.
    started = metropolis_hastings(simulator, 20, {"y": 3.0}, kernel="rmh", burn_in=0, adapt=False, seed=4,
                                  starts=far + near[:1], chains=1)
    assert abs(float(started.values("mu")[0]) - 3.0) < 0.3  # the most probable start was taken
    with pytest.raises(ValueError, match="2 chains need at least as many starting traces, got 1"):
        metropolis_hastings(simulator, 20, {"y": 3.0}, starts=near[:1], chains=2)


def edge_averse_model():
    """A LogNormal site that the model, like a simulator computing with it, cannot run at 0 or infinity."""
    zero = torch.tensor(0.0, dtype=torch.float64)
    factor = ppx.sample(dist.LogNormal(zero, zero + 1.0), name="factor")
    if not 0.0 < float(factor) < math.inf:
        raise ValueError(f"factor = {float(factor)} is on the edge of its support")
    ppx.observe(dist.Normal(torch.log(factor), 1.0), name="y")


def test_random_walk_steps_that_round_onto_the_support_edge_are_rejected_unrun():
    # Steps of 1,000 in log units: exp() of a move beyond 709 overflows, below -745 rounds to 0.
    chain = metropolis_hastings(LocalSimulator(edge_averse_model), 400, {"y": 0.5}, kernel="rmh", scale=1000.0,
                                adapt=False, chains=1, seed=1)
    values = chain.values("factor")
    assert np.all((values > 0) & np.isfinite(values))
    assert chain.acceptance_rate < 0.05
    # Tuned, the step shrinks from 1,000 to where moves land inside: the chain accepts near the target rate.
    tuned = metropolis_hastings(LocalSimulator(edge_averse_model), 1000, {"y": 0.5}, kernel="rmh", scale=1000.0,
                                chains=1, seed=1, burn_in=2000)
    assert 0.3 < tuned.acceptance_rate < 0.6
