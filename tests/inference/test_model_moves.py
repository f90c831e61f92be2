"""Model moves in the SMC and joint-RMH engines (``inference.smc.ModelMove``) against exact posteriors.

Tolerances as in ``test_joint_mcmc`` and ``test_smc``: 4 standard errors, with
ArviZ's ESS across chains or a quarter of SMC's particles as the effective samples.
"""

from __future__ import annotations

import json
import math

import numpy as np

from inference.joint_mcmc import joint_metropolis_hastings
from inference.local import LocalSimulator
from inference.smc import tempered_smc
from tests.inference.test_cli import ppx
from tests.inference.test_smc import bounded_ridge_model, two_mode_model


class Flip:
    """x -> -x: an involution with unit Jacobian, which crosses between two_mode_model's modes."""

    def propose(self, trace, rng):
        x = trace.named("x")
        return {x.key: -np.asarray(x.value)}, 0.0


class ScaleAlongRidge:
    """a -> a e^u with b moved to keep a + b: a multiplicative step, whose proposal ratio a' / a the
    acceptance needs (the Jacobian of the walk in log a)."""

    def propose(self, trace, rng):
        a, b = trace.named("a"), trace.named("b")
        new_a = float(a.value) * math.exp(rng.normal(0.0, 0.5))
        return ({a.key: np.array(new_a), b.key: np.array(float(b.value) + float(a.value) - new_a)},
                math.log(new_a) - math.log(float(a.value)))


class Never:
    def propose(self, trace, rng):
        return None


class Outside:
    """Every step leaves the support: rejected without a run."""

    def propose(self, trace, rng):
        x = trace.named("x")
        return {x.key: np.asarray(x.value)}, -math.inf


def _starts_in_one_mode(simulator: LocalSimulator, count: int) -> dict:
    """Prior traces with x > 0 and their likelihoods as weights, so that the first joint steps are
    measured on the one mode."""
    traces = [trace for trace in simulator.prior(40 * count, {"y": 4.0}) if float(trace.named("x").value) > 0]
    return {"starts": traces, "start_log_weights": np.array([trace.log_likelihood for trace in traces])}


def test_a_model_move_carries_chains_between_modes_they_cannot_leave_alone():
    simulator = LocalSimulator(two_mode_model)
    starts = _starts_in_one_mode(simulator, 4)
    alone = joint_metropolis_hastings(simulator, 2000, {"y": 4.0}, chains=4, **starts, seed=0)
    assert float(np.mean(alone.values("x") > 0)) == 1.0  # the modes are 4 apart, 0.025 wide
    assert alone.model_move_acceptance is None
    flipped = joint_metropolis_hastings(simulator, 2000, {"y": 4.0}, chains=4, **starts, seed=0,
                                        model_moves=[Flip()])
    share = float(np.mean(flipped.values("x") > 0))
    # Each flip is accepted (the target is symmetric), so the chains alternate modes every third
    # step and the share sits within a few per cent of 1/2.
    assert abs(share - 0.5) < 0.05
    assert flipped.model_move_acceptance > 0.99


def test_a_model_moves_proposal_ratio_enters_the_acceptance():
    a = np.linspace(0.0, 3.0, 30_001)
    density = (3.0 - a) * np.exp(-(3.0 - a))  # p(a | y = 3): the Gamma density of b = 3 - a
    mean = float((a * density).sum() / density.sum())
    std = math.sqrt(float((a ** 2 * density).sum() / density.sum()) - mean ** 2)
    posterior = joint_metropolis_hastings(LocalSimulator(bounded_ridge_model), 4000, {"y": 3.0}, chains=4, seed=1,
                                          model_moves=[ScaleAlongRidge()])
    ess = float(np.ravel(posterior.variable_ess("a"))[0])
    assert abs(float(posterior.mean("a")) - mean) < 4 * std / math.sqrt(ess)
    assert abs(float(posterior.std("a")) - std) < 4 * std / math.sqrt(2 * ess)
    assert 0.1 < posterior.model_move_acceptance < 0.95


def test_smc_takes_model_moves_and_reports_their_acceptance_per_stage():
    smc = tempered_smc(LocalSimulator(two_mode_model), 400, {"y": 4.0}, moves=6, seed=2, model_moves=[Flip()])
    share = float(np.sum(smc.weights() * (smc.values("x") > 0)))
    assert abs(share - 0.5) < 4 * math.sqrt(0.25 / (400 / 4))
    assert len(smc.model_move_acceptance) == len(smc.acceptance_rates)
    assert all(rate > 0.99 for rate in smc.model_move_acceptance)


def test_moves_that_do_not_apply_or_leave_the_support_change_nothing():
    simulator = LocalSimulator(two_mode_model)
    starts = _starts_in_one_mode(simulator, 4)
    never = joint_metropolis_hastings(simulator, 400, {"y": 4.0}, chains=4, **starts, seed=3,
                                      model_moves=[Never()])
    assert never.model_move_acceptance is None
    outside = joint_metropolis_hastings(simulator, 400, {"y": 4.0}, chains=4, **starts, seed=3,
                                        model_moves=[Outside()])
    assert outside.model_move_acceptance == 0.0
    assert float(np.mean(outside.values("x") > 0)) == 1.0


def test_the_posterior_command_takes_model_moves_by_name():
    run = ppx("posterior", "--model", "tests.inference.test_smc:two_mode_model", "--observe", "y=4",
              "--engine", "smc", "-n", "200", "--moves", "3", "--seed", "5", "--json", "--quiet",
              "--model-move", "tests.inference.test_model_moves:Flip")
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert len(summary["model_move_acceptance"]) == summary["stages"]
    assert min(summary["model_move_acceptance"]) > 0.99
