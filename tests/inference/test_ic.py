"""Inference compilation: training, checkpoints, and importance sampling with the network's proposals.

Tolerances follow the run's effective sample size as in the other engine tests
(4.5 standard errors).
"""

from __future__ import annotations

import math

import numpy as np
import pyro.distributions as dist
import pytest
import torch

from inference.ic import (NetworkConfig, NetworkProposal, OfflineSource, OnlineSource, Trainer, TrainingConfig,
                          load_checkpoint)
from inference.ic.network import InferenceNetwork, in_prior_units
from inference.importance import importance_sampling
from inference.local import LocalSimulator
from inference.pool import SimulatorPool
from inference.trace import RECORD_SAMPLE
from inference.trace_file import write_traces
import ppx
from simulators import branching, gaussian

SMALL = NetworkConfig(lstm_dim=64, observation_dim=64, components=5)


def train(model, num_traces: int, checkpoint=None, seed: int = 0) -> Trainer:
    torch.manual_seed(seed)
    source = OnlineSource(LocalSimulator(model), batch_size=64)
    try:
        trainer = Trainer(source, SMALL, TrainingConfig(validate_every=5000), checkpoint=checkpoint)
        trainer.train(num_traces, progress_bar=False)
    finally:
        source.close()
    return trainer


@pytest.fixture(scope="module")
def gaussian_trainer(tmp_path_factory):
    return train(gaussian.model, 16_000, checkpoint=tmp_path_factory.mktemp("ic") / "gaussian.ckpt")


def test_gaussian_ic_reaches_half_the_traces_as_effective_samples(gaussian_trainer):
    torch.manual_seed(1)
    observed = {"obs0": 8.0, "obs1": 9.0}
    network, _ = load_checkpoint(gaussian_trainer.checkpoint)
    posterior = importance_sampling(LocalSimulator(gaussian.model), 1000, observed,
                                    proposal=NetworkProposal(network, {k: np.array(v) for k, v in observed.items()}))
    assert posterior.engine == "ic"
    assert posterior.ess_fraction >= 0.5
    mean, std = gaussian.posterior([8.0, 9.0])
    ess = posterior.ess
    assert abs(float(posterior.mean("mu")) - mean) < 4.5 * std / math.sqrt(ess)
    assert abs(float(posterior.std("mu")) - std) < 4.5 * std / math.sqrt(2 * ess)


def test_validation_loss_falls(gaussian_trainer):
    validation = [loss for _, loss in gaussian_trainer.progress["validation"]]
    assert validation[-1] < validation[0] - 0.5


def test_checkpoint_reloads_weights_only_and_resumes(gaussian_trainer, tmp_path):
    content = torch.load(gaussian_trainer.checkpoint, weights_only=True)
    assert [a["key"] for a in content["addresses"]] == ["mu__Normal__0"]
    resumed_path = tmp_path / "resumed.ckpt"
    resumed_path.write_bytes(gaussian_trainer.checkpoint.read_bytes())
    source = OnlineSource(LocalSimulator(gaussian.model), batch_size=64)
    try:
        trainer = Trainer(source, checkpoint=str(resumed_path), resume=True)
        before = {k: v.clone() for k, v in trainer.network.state_dict().items()}
        progress = trainer.train(gaussian_trainer.progress["traces"] + 640, progress_bar=False)
    finally:
        source.close()
    assert progress["traces"] == gaussian_trainer.progress["traces"] + 640
    assert any(not torch.equal(before[k], v) for k, v in trainer.network.state_dict().items())
    assert torch.load(resumed_path, weights_only=True)["progress"]["traces"] == progress["traces"]


@pytest.fixture(scope="module")
def branching_trainer():
    return train(branching.model, 6000)  # 16-22x prior IS's ESS fraction below (seeds 0, 1), 19x at 10k


def test_branching_ic_beats_prior_importance_sampling_tenfold(branching_trainer):
    trainer = branching_trainer
    simulator = LocalSimulator(branching.model)
    observed = {"obs": 10.0}  # far in the tail of the prior's simulated data: held out in effect
    torch.manual_seed(2)
    prior = importance_sampling(simulator, 10_000, observed)
    ic = importance_sampling(simulator, 1000, observed,
                             proposal=NetworkProposal(trainer.network, {"obs": np.array(10.0)}))
    assert ic.ess_fraction >= 10 * prior.ess_fraction
    exact = branching.exact_posterior(observed)
    assert abs(float(ic.mean("count")) - exact["count_mean"]) < 4.5 * exact["count_std"] / math.sqrt(ic.ess)
    probabilities = ic.probabilities("count")
    # In the far tail (p ~ 1e-4) the normal approximation fails: whether one trace lands on a
    # count moves its estimate by that trace's weight, so no estimate is finer than the largest.
    resolution = float(ic.weights().max())
    for count, p in exact["count"].items():
        assert abs(probabilities.get(count, 0.0) - p) < 4.5 * math.sqrt(p * (1 - p) / ic.ess) + resolution


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_offline_training_from_trace_files(tmp_path, precision):
    simulator = LocalSimulator(gaussian.model)
    paths = [tmp_path / "a.h5", tmp_path / "b.h5"]
    for path in paths:
        write_traces(path, simulator.prior(640), model_name="gaussian", precision=precision)
    source = OfflineSource(paths, batch_size=64, seed=0)
    assert len(source) == 1280
    trainer = Trainer(source, SMALL, TrainingConfig(validation_size=64, validate_every=640))
    progress = trainer.train(2560, progress_bar=False)
    assert source.epoch >= 2
    assert progress["validation"][-1][1] < progress["validation"][0][1]


def test_pool_answers_proposals_of_several_traces_in_one_batch(gaussian_trainer, monkeypatch):
    from inference.ic import proposal as proposal_module
    batch_sizes = []
    original = proposal_module._advance

    def counting(requests):
        batch_sizes.append(len(requests))
        return original(requests)

    monkeypatch.setattr(proposal_module, "_advance", counting)
    observed = {"obs0": np.array(8.0), "obs1": np.array(9.0)}
    with SimulatorPool("python -m simulators.gaussian", workers=2) as pool:
        posterior = importance_sampling(pool, 200, observed,
                                        proposal=NetworkProposal(gaussian_trainer.network, observed))
    assert posterior.num_traces == 200 and sum(batch_sizes) == 200
    # Without waiting for each other the two copies drift apart and share about one call in ten.
    shared = sum(size for size in batch_sizes if size == 2)
    assert shared >= 100, f"only {shared} of 200 proposals shared a network call"


def test_batched_proposals_score_each_trace_as_training_does(branching_trainer):
    """Proposals answered together, at whatever mix of addresses the copies reached, give
    every sample the log density that the training loss assigns it one trace at a time."""
    network = branching_trainer.network
    observed = {"obs": np.array(6.0)}
    with SimulatorPool("python -m simulators.branching", workers=2) as pool:
        posterior = importance_sampling(pool, 120, observed, proposal=NetworkProposal(network, observed))
    compared = 0
    with torch.no_grad():
        for trace in posterior.traces:
            proposed = [c for c in trace.choices if c.kind == RECORD_SAMPLE and c.control]
            if any(c.proposal_log_prob is None for c in proposed):
                continue  # an address the network had not seen: drawn from the prior
            assert sum(c.proposal_log_prob for c in proposed) == pytest.approx(
                -float(network.loss([trace])), rel=1e-4, abs=1e-4)
            compared += 1
    assert compared >= 100


def chain_of_scaled_priors():
    """Each latent's prior sits on its own scale, and the next one's depends on it."""
    energy = ppx.sample(dist.Uniform(torch.tensor(30.0, dtype=torch.float64), torch.tensor(50.0, dtype=torch.float64)),
                        name="energy")
    offset = ppx.sample(dist.Normal(energy / 10, torch.tensor(0.5, dtype=torch.float64)), name="offset")
    gain = ppx.sample(dist.LogNormal(torch.tensor(0.0, dtype=torch.float64), torch.tensor(0.2, dtype=torch.float64)),
                      name="gain")
    ppx.observe(dist.Normal(gain * (energy + offset), torch.tensor(1.0, dtype=torch.float64)), name="reading")


def test_proposals_read_earlier_values_in_prior_units_as_training_does():
    """Uniform, Normal and LogNormal values reach the next step relative to their priors, in
    training and in proposals alike: every trace's proposal log density equals its training loss."""
    torch.manual_seed(2)
    simulator = LocalSimulator(chain_of_scaled_priors)
    network = InferenceNetwork.for_traces(SMALL, simulator.prior(64))
    posterior = importance_sampling(simulator, 20, {"reading": 50.0},
                                    proposal=NetworkProposal(network, {"reading": np.array(50.0)}))
    with torch.no_grad():
        for trace in posterior.traces:
            proposed = [c.proposal_log_prob for c in trace.choices if c.kind == RECORD_SAMPLE and c.control]
            assert len(proposed) == 3
            assert sum(proposed) == pytest.approx(-float(network.loss([trace])), rel=1e-6, abs=1e-6)


def test_values_in_prior_units():
    f64 = torch.float64
    uniform = in_prior_units("Uniform", torch.tensor([[30.0, 40.0, 50.0]], dtype=f64),
                             (torch.full((1, 3), 30.0, dtype=f64), torch.full((1, 3), 50.0, dtype=f64)))
    assert uniform.tolist() == [[-1.0, 0.0, 1.0]]
    normal = in_prior_units("Normal", torch.tensor([[5.0]], dtype=f64),
                            (torch.tensor([[4.0]], dtype=f64), torch.tensor([[0.5]], dtype=f64)))
    assert normal.item() == pytest.approx(2.0)
    lognormal = in_prior_units("LogNormal", torch.tensor([[math.e]], dtype=f64),
                               (torch.tensor([[0.0]], dtype=f64), torch.tensor([[0.5]], dtype=f64)))
    assert lognormal.item() == pytest.approx(2.0)
    counts = torch.tensor([[3.0]], dtype=f64)
    assert in_prior_units("Poisson", counts, (torch.tensor([[4.0]], dtype=f64),)).item() == 3.0


def test_loss_split_by_address_adds_up_to_the_loss(branching_trainer):
    traces = LocalSimulator(branching.model).prior(64)
    network = branching_trainer.network
    network.learn_addresses(traces)
    per_address: dict[str, float] = {}
    with torch.no_grad():
        loss = float(network.loss(traces, per_address=per_address))
    assert len(per_address) >= 2 and "count__Poisson__0" in per_address
    assert sum(per_address.values()) / len(traces) == pytest.approx(loss, rel=1e-9)
