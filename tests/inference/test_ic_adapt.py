"""Fitting the IC network to one event before importance sampling (``inference.ic.adapt``).

The networks here are trained for ten steps only, so that their proposals are
poor where the Gaussian's observations lie in the prior's tail; the analytic
posterior is the check, with tolerances of 4.5 standard errors at the run's ESS,
as in the other engine tests.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from inference.ic import NetworkProposal
from inference.ic.adapt import (Adaptation, adapt, adapted_importance_sampling, kish_ess,
                                 mixture_log_weights, tempering_power)
from inference.importance import importance_sampling
from inference.local import LocalSimulator
from inference.trace import RECORD_SAMPLE
from simulators import branching, gaussian
from tests.inference.networks import barely_train

OBSERVED = {"obs0": 8.0, "obs1": 9.0}


def test_adapted_proposals_reach_the_exact_posterior_with_many_more_traces_effective(barely_trained):
    torch.manual_seed(5)
    simulator = LocalSimulator(gaussian.model)
    proposal = NetworkProposal(barely_trained, {k: np.array(v) for k, v in OBSERVED.items()})
    plain = importance_sampling(simulator, 600, OBSERVED, proposal=proposal)
    adapted = adapted_importance_sampling(simulator, barely_trained, 600, OBSERVED,
                                          Adaptation(rounds=5, traces_per_round=150))
    assert plain.ess_fraction < 0.1
    # 0.074-0.11 over seeds 5-10 (the same with one or two torch threads), 7-13 times the plain
    # network's 0.0066-0.012
    assert adapted.ess_fraction > max(0.05, 5 * plain.ess_fraction)
    assert adapted.engine == "ic-adapted"
    assert adapted.adaptation["runs"] == 750
    alphas = [r["alpha"] for r in adapted.adaptation["records"]]
    assert alphas[-1] > alphas[0]
    mean, std = gaussian.posterior([8.0, 9.0])
    ess = adapted.ess
    assert abs(float(adapted.mean("mu")) - mean) < 4.5 * std / math.sqrt(ess)
    assert abs(float(adapted.std("mu")) - std) < 4.5 * std / math.sqrt(2 * ess)


def test_keeping_the_rounds_weighs_every_trace_against_all_copies_and_stays_exact(barely_trained):
    runs = {}
    for keep_rounds in (False, True):
        torch.manual_seed(5)  # the same rounds and final draw both times
        runs[keep_rounds] = adapted_importance_sampling(LocalSimulator(gaussian.model), barely_trained, 600,
                                                        OBSERVED, Adaptation(rounds=5, traces_per_round=150),
                                                        keep_rounds=keep_rounds)
    final, kept = runs[False], runs[True]
    assert (len(final), len(kept)) == (600, 750 + 600)
    assert [float(t.named("mu").value) for t in kept.traces[-600:]] == [float(t.named("mu").value)
                                                                        for t in final.traces]
    assert kept.ess > final.ess
    mean, std = gaussian.posterior([8.0, 9.0])
    assert abs(float(kept.mean("mu")) - mean) < 4.5 * std / math.sqrt(kept.ess)
    assert abs(float(kept.std("mu")) - std) < 4.5 * std / math.sqrt(2 * kept.ess)


def test_mixture_weights_of_one_draw_are_its_own(barely_trained):
    network = barely_trained
    torch.manual_seed(3)
    adapted = adapt(network, LocalSimulator(gaussian.model), OBSERVED, Adaptation(rounds=1, traces_per_round=40))
    traces, log_weights = adapted.draws[0]
    only_copy = dataclasses.replace(adapted, states=adapted.states[:1])
    np.testing.assert_allclose(mixture_log_weights(only_copy, adapted.draws), log_weights, atol=1e-9)
    # The same traces counted as drawn by the first copy and by the fitted one, equally often:
    # those the first drew are weighed against the average of the two copies' densities.
    both = mixture_log_weights(adapted, [adapted.draws[0], adapted.draws[0]])
    with torch.no_grad():
        log_q_first = network.log_q(traces, adapted.embedding).numpy()
        log_q_fitted = adapted.network.log_q(traces, adapted.embedding).numpy()
    assert np.abs(log_q_fitted - log_q_first).max() > 0.1, "the fit moved nothing: the check would be empty"
    expected = log_weights - np.logaddexp(0.0, log_q_fitted - log_q_first) + math.log(2)
    np.testing.assert_allclose(both[:40], expected, atol=1e-6)


def test_adaptation_keeps_a_changing_trace_structure_exact():
    network = barely_train(branching.model).network
    observed = {"obs": 10.0}  # far in the tail of the prior's simulated data
    torch.manual_seed(2)
    adapted = adapted_importance_sampling(LocalSimulator(branching.model), network, 1000, observed,
                                          Adaptation(rounds=5, traces_per_round=150))
    exact = branching.exact_posterior(observed)
    assert adapted.ess > 100
    assert abs(float(adapted.mean("count")) - exact["count_mean"]) < 4.5 * exact["count_std"] / math.sqrt(adapted.ess)
    probabilities = adapted.probabilities("count")
    resolution = float(adapted.weights().max())  # as in test_ic: no estimate is finer than the largest weight
    for count, p in exact["count"].items():
        assert abs(probabilities.get(count, 0.0) - p) < 4.5 * math.sqrt(p * (1 - p) / adapted.ess) + resolution


def test_posterior_command_adapts_the_network_and_reports_its_rounds(barely_trained_checkpoint):
    run = subprocess.run([sys.executable, "-m", "inference", "posterior", "--model", "simulators.gaussian:model",
                          "--observe", "obs0=8", "--observe", "obs1=9", "--engine", "ic",
                          "--network", str(barely_trained_checkpoint), "--adapt-rounds", "5",
                          "--adapt-traces", "150", "--adapt-steps", "30", "--adapt-keep-rounds", "-n", "600",
                          "--seed", "1", "--json", "--quiet"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["engine"] == "ic-adapted"
    assert summary["traces"] == 750 + 600 and summary["adaptation"]["kept_rounds"]
    assert len(summary["adaptation"]["records"]) == 5 and summary["adaptation"]["runs"] == 750
    assert summary["adaptation"]["steps_per_round"] == 30
    mean, std = gaussian.posterior([8.0, 9.0])
    assert abs(summary["variables"]["mu"]["mean"] - mean) < 4.5 * std / math.sqrt(summary["ess"])


def test_adaptation_leaves_the_trained_network_untouched(barely_trained):
    before = {name: p.detach().clone() for name, p in barely_trained.named_parameters()}
    adapted_importance_sampling(LocalSimulator(gaussian.model), barely_trained, 10, OBSERVED,
                                Adaptation(rounds=1, traces_per_round=20, steps_per_round=3))
    assert all(torch.equal(before[name], p) for name, p in barely_trained.named_parameters())


def test_log_q_scores_a_trace_as_the_proposal_that_drew_it(barely_trained):
    torch.manual_seed(5)
    observations = {k: np.array(v) for k, v in OBSERVED.items()}
    drawn = importance_sampling(LocalSimulator(gaussian.model), 20, OBSERVED,
                                proposal=NetworkProposal(barely_trained, observations))
    recorded = [sum(c.proposal_log_prob for c in t.choices if c.kind == RECORD_SAMPLE and c.control)
                for t in drawn.traces]
    with torch.no_grad():
        embedding = barely_trained.embed_observations([observations])
        scored = barely_trained.log_q(drawn.traces, embedding)
    # The proposal samples in float32 heads' precision; the scores agree far inside any weight's spread.
    np.testing.assert_allclose(scored.numpy(), recorded, atol=1e-4)


def test_tempering_power_keeps_the_asked_ess():
    log_weights = np.random.default_rng(0).normal(0.0, 5.0, 400)
    alpha = tempering_power(log_weights, 100)
    assert 0 < alpha < 1
    assert kish_ess(alpha * log_weights) == pytest.approx(100, rel=1e-3)
    assert tempering_power(np.zeros(50), 25) == 1.0


@pytest.mark.parametrize("field, value", [("rounds", -1), ("traces_per_round", 0), ("steps_per_round", 1.5),
                                          ("learning_rate", 0.0), ("tempered_ess", 1.5), ("batch_size", 0)])
def test_bad_settings_name_the_field_and_value(field, value):
    with pytest.raises(ValueError, match=f"Adaptation.{field} .*{value}"):
        Adaptation(**{field: value})
