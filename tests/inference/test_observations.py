"""inference.observations: user observations checked against what the model observes."""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pyro.distributions as dist
import pytest
import torch

import ppx
from inference.importance import importance_sampling
from inference.local import LocalSimulator
from inference.mcmc import metropolis_hastings
from inference.observations import check_observed_shape
from simulators import gaussian


def vector_model():
    mu = ppx.sample(dist.Normal(torch.zeros(3, dtype=torch.float64), 1.0), name="mu")
    ppx.observe(dist.Normal(mu, 1.0), name="y", address="detector")
    return mu


def test_check_observed_shape_names_the_name_both_shapes_and_the_address():
    check_observed_shape("y", np.zeros(3), (3,), "detector")
    check_observed_shape("y", np.array(5.0), (1, 1), "detector")  # one number for one element
    with pytest.raises(ValueError, match=r"observation 'y' has shape \[1, 3\], but the model observes "
                                         r"shape \[3\] there \(address 'detector'\)"):
        check_observed_shape("y", np.zeros((1, 3)), (3,), "detector")


@pytest.mark.parametrize("run", ["importance sampling", "metropolis-hastings"])
def test_observation_of_the_wrong_shape_is_refused(run):
    observed = {"y": np.zeros(4)}
    with pytest.raises(ValueError, match=r"observation 'y' has shape \[4\], but the model observes shape \[3\]"):
        if run == "importance sampling":
            importance_sampling(LocalSimulator(vector_model), 5, observed)
        else:
            metropolis_hastings(LocalSimulator(vector_model), 5, observed, initial_traces=2)


def test_scalar_observation_of_a_vector_site_is_refused():
    with pytest.raises(ValueError, match=r"observation 'y' has shape \[\], but the model observes shape \[3\]"):
        importance_sampling(LocalSimulator(vector_model), 5, {"y": 1.0})


def test_single_number_as_a_vector_is_accepted():
    posterior = importance_sampling(LocalSimulator(gaussian.model), 20, {"obs0": [8.0], "obs1": 9.0})
    assert len(posterior.traces) == 20


def test_unknown_name_is_logged_after_the_first_trace_and_refused_at_the_end(caplog):
    with caplog.at_level(logging.WARNING, logger="inference.observations"):
        with pytest.raises(ValueError, match=r"'obs9' do not occur in the model; .*named: obs0, obs1"):
            importance_sampling(LocalSimulator(gaussian.model), 10, {"obs0": 8.0, "obs9": 1.0})
    assert len(caplog.records) == 1
    assert "'obs9' did not occur in the first traces" in caplog.records[0].getMessage()


def test_name_observed_only_in_some_traces_is_accepted(caplog):
    runs = itertools.count()

    def sometimes_observing():
        mu = ppx.sample(dist.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0), name="mu")
        if next(runs) % 2:
            ppx.observe(dist.Normal(mu, 1.0), name="late")
        return mu

    with caplog.at_level(logging.WARNING, logger="inference.observations"):
        posterior = importance_sampling(LocalSimulator(sometimes_observing), 4, {"late": 0.5})
    assert sum(t.named("late") is not None for t in posterior.traces) == 2
    assert "'late' did not occur in the first traces" in caplog.text
