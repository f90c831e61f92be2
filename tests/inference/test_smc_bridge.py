"""Tempered SMC started from a proposal q (``tempered_smc(..., bridge=...)``), the IC network's or a known one.

The exact Gaussian posterior and evidence are the checks, with test_smc's
tolerances: a quarter of the particles counted as effective, 4 standard errors.
On the Gaussian a Normal q keeps every rung q ** (1 - beta) p(x, y) ** beta
Normal, so the moves' target on a rung is known exactly too.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import torch
from scipy.stats import binom

from inference.controllers import Replay
from inference.ic.adapt import Adaptation, adapt
from inference.ic.bridge import NetworkBridge
from inference.ic.proposal import NetworkProposal
from inference.importance import importance_sampling
from inference.local import LocalSimulator
from inference.smc import _move, Particle, StepSizes, tempered_smc
from simulators import branching, gaussian
from tests.inference.networks import barely_train

OBSERVED = {"obs0": 8.0, "obs1": 9.0}
MU = "mu__Normal__0"


class NormalBridge:
    """q(mu) = Normal(mean, std) for the Gaussian model."""

    def __init__(self, mean: float, std: float) -> None:
        self.q = torch.distributions.Normal(torch.tensor(mean, dtype=torch.float64), torch.tensor(std, dtype=torch.float64))

    def draw(self, simulator, num_traces, observations):
        return runs_at(simulator, self.q.sample((num_traces,)).numpy(), observations)

    def log_density_ratio(self, traces):
        mu = torch.tensor([float(trace.named("mu").value) for trace in traces], dtype=torch.float64)
        return (self.q.log_prob(mu) - gaussian.PRIOR.log_prob(mu)).numpy()

    def rung(self, beta: float) -> tuple[float, float]:
        """Mean and std of q ** (1 - beta) p(mu, y) ** beta given OBSERVED."""
        posterior_mean, posterior_std = gaussian.posterior(list(OBSERVED.values()))
        q_precision, p_precision = (1 - beta) / float(self.q.scale) ** 2, beta / posterior_std ** 2
        mean = (q_precision * float(self.q.loc) + p_precision * posterior_mean) / (q_precision + p_precision)
        return mean, (q_precision + p_precision) ** -0.5


def runs_at(simulator, values, observations):
    return simulator.run_many([Replay({MU: np.asarray(v, dtype=np.float64)}) for v in values], observations)


def exact_log_evidence(observations: list[float]) -> float:
    count = len(observations)
    covariance = gaussian.PRIOR_STD ** 2 * np.ones((count, count)) + gaussian.NOISE_STD ** 2 * np.eye(count)
    evidence = torch.distributions.MultivariateNormal(torch.full((count,), gaussian.PRIOR_MEAN, dtype=torch.float64),
                                                      torch.as_tensor(covariance))
    return float(evidence.log_prob(torch.tensor(observations, dtype=torch.float64)))


def test_the_density_ratio_is_the_one_the_proposal_drew_with(barely_trained):
    torch.manual_seed(4)
    drawn = importance_sampling(LocalSimulator(gaussian.model), 50, OBSERVED,
                                proposal=NetworkProposal(barely_trained, OBSERVED))
    ratios = NetworkBridge(barely_trained, OBSERVED).log_density_ratio(drawn.traces)
    # log w = log p(y | x) - (log q(x) - log p(x)), with log q as the proposal reported it while drawing.
    log_likelihoods = np.array([trace.log_likelihood for trace in drawn.traces])
    np.testing.assert_allclose(log_likelihoods - ratios, drawn.log_weights, atol=1e-6)
    assert np.ptp(ratios) > 0.1, "a ratio that never varies would make the check empty"


def test_a_ladder_from_the_adapted_network_is_short_and_exact(barely_trained):
    torch.manual_seed(6)
    simulator = LocalSimulator(gaussian.model)
    adapted = adapt(barely_trained, simulator, OBSERVED, Adaptation(rounds=4, traces_per_round=150))
    bridged = tempered_smc(simulator, 200, OBSERVED, moves=5, seed=1,
                           bridge=NetworkBridge(adapted.network, OBSERVED))
    from_prior = tempered_smc(simulator, 200, OBSERVED, moves=5, seed=1)
    assert len(bridged.temperatures) < len(from_prior.temperatures)
    assert bridged.temperatures[0] == 0.0 and bridged.temperatures[-1] == 1.0
    mean, std = gaussian.posterior([8.0, 9.0])
    effective = 200 / 4
    assert abs(float(bridged.mean("mu")) - mean) < 4 * std / math.sqrt(effective)
    assert abs(float(bridged.std("mu")) - std) < 4 * std / math.sqrt(2 * effective)
    # q is normalised, so the product of the stages' mean weights still estimates p(y).
    assert abs(bridged.log_evidence - exact_log_evidence([8.0, 9.0])) < 0.8
    assert bridged.simulator_runs == 200 * (1 + 5 * len(bridged.acceptance_rates))


def test_a_barely_trained_bridge_on_a_changing_structure_matches_enumeration():
    network = barely_train(branching.model).network
    observed = {"obs": 10.0}
    posterior = tempered_smc(LocalSimulator(branching.model), 300, observed, moves=10, seed=3,
                             bridge=NetworkBridge(network, observed))
    exact = branching.exact_posterior(observed)
    effective = 300 // 4
    assert abs(float(posterior.mean("count")) - exact["count_mean"]) < 4 * exact["count_std"] / math.sqrt(effective)
    probabilities = posterior.probabilities("count")
    for count, p in exact["count"].items():
        # Exact binomial bands at the two-sided 4-sigma level: a resampled lineage lands in a tail
        # count (p ~ 0.002) as a clump of copies, where the normal approximation is far too narrow.
        low, high = binom.ppf(3e-5, effective, p) / effective, binom.isf(3e-5, effective, p) / effective
        assert low - 0.01 <= probabilities.get(count, 0.0) <= high + 0.01, (count, p)


def test_the_moves_keep_a_rung_between_q_and_the_posterior_invariant():
    bridge, beta = NormalBridge(5.0, 0.3), 0.5
    mean, std = bridge.rung(beta)
    simulator = LocalSimulator(gaussian.model)
    rng = np.random.default_rng(0)
    traces = runs_at(simulator, rng.normal(mean, std, 400), OBSERVED)
    steps = StepSizes()
    steps.measure(traces, np.ones(len(traces)))
    particles = [Particle(trace, steps, rng, beta, ratio)
                 for trace, ratio in zip(traces, bridge.log_density_ratio(traces))]
    acceptance, _ = _move(simulator, particles, OBSERVED, 30, bridge)
    assert acceptance > 0.2
    moved = np.array([float(p.trace.named("mu").value) for p in particles])
    # 400 independent chains started on the rung stay on it; moves on the prior's rung,
    # p(mu) p(y | mu) ** beta, would widen them to std 1.2 around 7.1.
    assert abs(moved.mean() - mean) < 4 * std / math.sqrt(400)
    assert abs(moved.std() - std) < 4 * std / math.sqrt(2 * 400)
    np.testing.assert_allclose([p.density_ratio for p in particles],
                               bridge.log_density_ratio([p.trace for p in particles]))


def test_a_ladder_from_a_narrow_misplaced_q_reaches_the_exact_posterior_and_evidence():
    bridge = NormalBridge(5.0, 0.3)
    posterior = tempered_smc(LocalSimulator(gaussian.model), 200, OBSERVED, moves=10, seed=2, bridge=bridge)
    assert len(posterior.temperatures) > 3
    mean, std = gaussian.posterior([8.0, 9.0])
    effective = 200 / 4
    assert abs(float(posterior.mean("mu")) - mean) < 4 * std / math.sqrt(effective)
    assert abs(float(posterior.std("mu")) - std) < 4 * std / math.sqrt(2 * effective)
    assert abs(posterior.log_evidence - exact_log_evidence([8.0, 9.0])) < 0.8


def test_the_posterior_command_climbs_from_the_adapted_network(barely_trained_checkpoint):
    run = subprocess.run([sys.executable, "-m", "inference", "posterior", "--model", "simulators.gaussian:model",
                          "--observe", "obs0=8", "--observe", "obs1=9", "--engine", "smc",
                          "--network", str(barely_trained_checkpoint), "--adapt-rounds", "3",
                          "--adapt-traces", "100", "-n", "200", "--moves", "5", "--seed", "1", "--json", "--quiet"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["engine"] == "smc-ic"
    assert summary["adaptation"]["runs"] == 300 and len(summary["adaptation"]["records"]) == 3
    assert summary["simulator_runs"] == 300 + 200 * (1 + 5 * summary["stages"])
    mean, std = gaussian.posterior([8.0, 9.0])
    assert abs(summary["variables"]["mu"]["mean"] - mean) < 4 * std / math.sqrt(200 / 4)
