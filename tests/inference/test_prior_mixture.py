"""Proposals mixed with their prior by a fitted weight (``inference.ic.proposals.prior_mixture``)."""

from __future__ import annotations

import math

import numpy as np
import pyro.distributions as dist
import pytest
import torch

from inference.ic.checkpoint import load_checkpoint, save_checkpoint
from inference.ic.network import controlled_samples
from inference.ic.proposals.prior_mixture import PriorMixture, fit_prior_weight, prior_distribution
from inference.local import LocalSimulator
from simulators import gaussian
from tests.inference.networks import barely_train

F64 = torch.float64


def test_em_recovers_the_weight_of_a_known_mixture():
    rng = np.random.default_rng(0)
    count, weight = 4000, 0.3
    from_prior = rng.random(count) < weight
    x = np.where(from_prior, rng.normal(0.0, 1.0, count), rng.normal(3.0, 0.5, count))
    prior = dist.Normal(0.0, 1.0).log_prob(torch.from_numpy(x)).numpy()
    proposal = dist.Normal(3.0, 0.5).log_prob(torch.from_numpy(x)).numpy()
    fitted = fit_prior_weight(proposal[:, None], prior[:, None])
    # The components overlap little, so the fit's spread is about the binomial one.
    assert fitted[0] == pytest.approx(weight, abs=4.5 * math.sqrt(weight * (1 - weight) / count))


def test_em_gives_each_element_to_the_density_that_explains_it():
    rng = np.random.default_rng(1)
    x = rng.normal(0.0, 1.0, (2000, 2))
    good, poor = dist.Normal(0.0, 1.0), dist.Normal(0.0, 3.0)
    values = torch.from_numpy(x)
    proposal = np.stack([good.log_prob(values[:, 0]).numpy(), poor.log_prob(values[:, 1]).numpy()], axis=1)
    prior = np.stack([poor.log_prob(values[:, 0]).numpy(), good.log_prob(values[:, 1]).numpy()], axis=1)
    weight = fit_prior_weight(proposal, prior)
    assert weight[0] < 0.05 and weight[1] > 0.95


def test_mixture_density_sampling_and_gradient():
    loc = torch.tensor([[0.0]], dtype=F64, requires_grad=True)
    proposal = dist.Normal(loc, torch.ones(1, 1, dtype=F64))
    prior = prior_distribution("Uniform", (torch.full((1, 1), 10.0, dtype=F64), torch.full((1, 1), 11.0, dtype=F64)))
    mixture = PriorMixture(proposal, prior, torch.tensor([0.25]))
    value = torch.tensor([[0.5]], dtype=F64)
    log_prob = mixture.log_prob(value)
    assert float(log_prob.detach()) == pytest.approx(math.log(0.75) + float(dist.Normal(0.0, 1.0).log_prob(torch.tensor(0.5))))
    log_prob.sum().backward()
    # The head learns as if unmixed: d/dloc log N(0.5; loc, 1) = 0.5 - loc.
    assert float(loc.grad) == pytest.approx(0.5)

    torch.manual_seed(0)
    draws = torch.cat([mixture.sample() for _ in range(4000)])
    share = float((draws >= 10).double().mean())
    assert share == pytest.approx(0.25, abs=4.5 * math.sqrt(0.25 * 0.75 / 4000))


def _site_log_q(network, traces, key):
    """Each trace's log q at ``key``: the trace's log q less that with ``key``'s head left out."""
    per_address: dict[str, float] = {}
    network.log_q(traces, per_address=per_address)
    return -per_address[key] / len(traces)


def test_a_head_worse_than_its_prior_gives_way_to_it():
    network = barely_train(gaussian.model).network
    traces = LocalSimulator(gaussian.model).prior(400)
    key = controlled_samples(traces[0])[0].key
    head = network.heads[f"a{network.address_index[key]}"]
    with torch.no_grad():
        head.read_out.bias.add_(25.0)  # every component far off and wide: a head that has learnt nothing useful
        head.prior_weight.zero_()
        network.fit_prior_weights(traces[:200])
    assert float(head.prior_weight[0]) > 0.95
    held_out = traces[200:]
    prior = np.mean([float(next(c for c in t.choices if c.key == key).log_prob) for t in held_out])
    with torch.no_grad():
        mixed = _site_log_q(network, held_out, key)
        head.prior_weight.zero_()
        unmixed = _site_log_q(network, held_out, key)
    assert mixed > unmixed + 1.0
    assert mixed == pytest.approx(prior, abs=0.1)


def test_trained_weights_round_trip_and_older_checkpoints_load_unmixed(tmp_path):
    trainer = barely_train(gaussian.model)
    weights = [head.prior_weight.clone() for head in trainer.network.heads.values()]
    assert all(((w >= 0) & (w <= 1)).all() for w in weights) and any(bool(w.any()) for w in weights)
    path = tmp_path / "net.ckpt"
    save_checkpoint(path, trainer.network)
    loaded, _ = load_checkpoint(path)
    for head, weight in zip(loaded.heads.values(), weights):
        assert torch.equal(head.prior_weight, weight)

    content = torch.load(path, weights_only=True)
    content["version"] = 4
    content["state_dict"] = {k: v for k, v in content["state_dict"].items() if not k.endswith(".prior_weight")}
    torch.save(content, path)
    older, _ = load_checkpoint(path)
    assert all(not bool(head.prior_weight.any()) for head in older.heads.values())

    content["version"] = 5
    torch.save(content, path)
    with pytest.raises(ValueError, match="missing .*prior_weight"):
        load_checkpoint(path)
