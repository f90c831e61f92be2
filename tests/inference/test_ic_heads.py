"""Every PPX distribution gets a proposal head that trains, samples inside the prior's support,
and yields finite importance weights; images get a convolutional embedding."""

from __future__ import annotations

import math

import numpy as np
import pyro.distributions as dist
import pytest
import torch

import ppx
from inference.ic import NetworkConfig, NetworkProposal, Trainer, TrainingConfig
from inference.importance import importance_sampling
from inference.local import LocalSimulator

F64 = torch.float64


def t(value) -> torch.Tensor:
    return torch.tensor(value, dtype=F64)


PRIORS = {
    "Normal": lambda: dist.Normal(t(0.0), t(1.0)),
    "Uniform": lambda: dist.Uniform(t(-2.0), t(3.0)),
    "Categorical": lambda: dist.Categorical(probs=t([0.2, 0.5, 0.3])),
    "Poisson": lambda: dist.Poisson(t(4.0)),
    "Bernoulli": lambda: dist.Bernoulli(probs=t(0.3)),
    "Beta": lambda: dist.Beta(t(2.0), t(3.0)),
    "Exponential": lambda: dist.Exponential(t(0.5)),
    "Gamma": lambda: dist.Gamma(t(2.0), t(1.0)),
    "LogNormal": lambda: dist.LogNormal(t(0.0), t(0.5)),
    "Binomial": lambda: dist.Binomial(t(10.0), t(0.4)),
    "Weibull": lambda: dist.Weibull(t(1.5), t(2.0)),
}


def model_with(kind: str):
    def model():
        x = ppx.sample(PRIORS[kind](), name="x")
        ppx.observe(dist.Normal(x.to(F64), t(0.5)), name="y")
        return x
    return model


class Batches:
    def __init__(self, simulator: LocalSimulator) -> None:
        self.simulator = simulator

    def next_batch(self):
        return self.simulator.prior(64)


@pytest.mark.parametrize("kind", sorted(PRIORS))
def test_head_trains_and_proposes_inside_the_support(kind):
    torch.manual_seed(0)
    simulator = LocalSimulator(model_with(kind))
    trainer = Trainer(Batches(simulator), NetworkConfig(lstm_dim=16, observation_dim=16, components=3),
                      TrainingConfig(validation_size=128, validate_every=640))
    progress = trainer.train(1280, progress_bar=False)
    assert trainer.network.addresses[0].kind == kind
    assert progress["validation"][-1][1] < progress["validation"][0][1]
    observed = {"y": 1.0}
    posterior = importance_sampling(simulator, 200, observed,
                                    proposal=NetworkProposal(trainer.network, {"y": np.array(1.0)}))
    prior = PRIORS[kind]()
    values = torch.as_tensor(posterior.values("x"))
    assert bool(prior.support.check(values.to(prior.mean.dtype if kind != "Categorical" else torch.long)).all())
    assert np.isfinite(posterior.log_weights).all()
    assert all(c.proposal_log_prob is not None and math.isfinite(c.proposal_log_prob)
               for trace in posterior.traces for c in trace.samples)


def test_images_get_a_convolutional_embedding_that_learns():
    def model():
        position = ppx.sample(dist.Uniform(t(0.0), t(8.0)), name="position")
        grid = torch.arange(8, dtype=F64)
        blob = torch.exp(-0.5 * (grid[:, None] - position) ** 2 - 0.5 * (grid[None, :] - 4.0) ** 2)
        ppx.observe(dist.Normal(blob, t(0.1)), name="image")

    torch.manual_seed(0)
    trainer = Trainer(Batches(LocalSimulator(model)), NetworkConfig(lstm_dim=16, observation_dim=16),
                      TrainingConfig(validation_size=128, validate_every=2560, learning_rate=3e-3))
    progress = trainer.train(7680, progress_bar=False)
    assert type(trainer.network.observation_embeddings["o0"]).__name__ == "ConvEmbedding"
    assert progress["validation"][-1][1] < progress["validation"][0][1] - 0.5
