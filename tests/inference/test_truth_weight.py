"""A true trace weighed as IC importance sampling weighs its draws (benchmarks.tau_truth_weight)."""

import numpy as np
import pytest
import torch

from benchmarks.tau_truth_weight import log_weight
from inference.ic import NetworkProposal
from inference.importance import importance_sampling
from inference.local import LocalSimulator
from simulators import branching, gaussian


@pytest.mark.parametrize("model, observed", [(gaussian.model, {"obs0": 8.0, "obs1": 9.0}),
                                             (branching.model, {"obs": 6.0})])
def test_the_formula_gives_the_draws_own_log_weights(barely_trained, model, observed):
    """On the Gaussian the network proposes mu; on the branching model it knows no address, and
    every sample is the prior's in both."""
    network = barely_trained
    torch.manual_seed(2)
    proposal = NetworkProposal(network, {name: np.array(value) for name, value in observed.items()})
    posterior = importance_sampling(LocalSimulator(model), 20, observed, proposal=proposal)
    for trace in posterior.traces:
        assert log_weight(network, trace, proposal.observation_embedding) == pytest.approx(
            trace.log_importance_weight, abs=1e-6)

