"""Importance sampling with the IC network as proposal, evaluated for many traces at once.

``NetworkProposal(network, observations)`` embeds the observations once. Each
trace gets its own ``NetworkController`` holding its LSTM state; when several
traces (on several simulators of a pool) wait for a proposal at the same time,
``choose_batch`` advances all of them with one LSTM call and one head call per
address. Addresses the network has never seen, and ``control=False`` choices,
are drawn from the prior.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

from inference.controllers import Controller, draw_from_prior
from inference.remote import ProposalRequest
from inference.ic.network import InferenceNetwork
from ppx.distributions import kind_of


def _prior_params(distribution: torch.distributions.Distribution, numel: int,
                  categories: int) -> tuple[torch.Tensor, ...]:
    kind = kind_of(distribution)
    params = []
    for name in kind.pyro_params:
        value = getattr(distribution, name).detach().to(torch.float64)
        if kind.name == "Categorical":
            params.append(value.reshape(1, -1, categories).expand(1, numel, -1))
        else:
            params.append(value.reshape(1, -1).expand(1, numel))
    return tuple(params)


class NetworkProposal:
    """The IC network conditioned on one set of observations."""

    def __init__(self, network: InferenceNetwork, observations: dict[str, np.ndarray]) -> None:
        self.network = network.eval()
        with torch.no_grad():
            self.observation_embedding = network.embed_observations([observations])

    def controller(self) -> "NetworkController":
        return NetworkController(self)



class NetworkController(Controller):
    """Proposes the controlled samples of one trace; its LSTM state advances with the trace."""

    batched = True

    def __init__(self, proposal: NetworkProposal) -> None:
        self.proposal = proposal
        self.state: Optional[tuple[torch.Tensor, torch.Tensor]] = None
        self.previous_key: Optional[str] = None
        self.previous_value: Optional[torch.Tensor] = None

    def choose(self, trace, key, name, distribution):
        return self.choose_batch([ProposalRequest(self, trace, key, name, distribution)])[0]

    @staticmethod
    def choose_batch(requests: Sequence[ProposalRequest]) -> list[tuple[np.ndarray, Optional[float]]]:
        return choose_batch(requests)


def choose_batch(requests: Sequence[ProposalRequest]) -> list[tuple[np.ndarray, Optional[float]]]:
    """Values and proposal log densities for many waiting samples, with one LSTM step for all."""
    results: list[Optional[tuple[np.ndarray, Optional[float]]]] = [None] * len(requests)
    known = []
    for i, request in enumerate(requests):
        if request.controller.proposal.network.knows(request.key):
            known.append(i)
        else:
            results[i] = (draw_from_prior(request.distribution), None)
    by_network: dict[int, list[int]] = {}
    for i in known:
        by_network.setdefault(id(requests[i].controller.proposal.network), []).append(i)
    with torch.no_grad():
        for indices in by_network.values():
            for i, result in zip(indices, _advance([requests[i] for i in indices])):
                results[i] = result
    return results  # type: ignore[return-value]


def _advance(requests: list[ProposalRequest]) -> list[tuple[np.ndarray, float]]:
    network = requests[0].controller.proposal.network
    config = network.config
    inputs = torch.cat([
        network.step_input(r.controller.proposal.observation_embedding, r.key,
                           r.controller.previous_key, r.controller.previous_value)
        for r in requests
    ])
    zeros = torch.zeros(config.lstm_layers, 1, config.lstm_dim)
    hidden = torch.cat([(r.controller.state or (zeros, zeros))[0] for r in requests], dim=1)
    cell = torch.cat([(r.controller.state or (zeros, zeros))[1] for r in requests], dim=1)
    outputs, (hidden, cell) = network.lstm(inputs.unsqueeze(0), (hidden, cell))
    outputs = outputs[0]
    results = []
    for i, request in enumerate(requests):
        address = network.addresses[network.address_index[request.key]]
        params = _prior_params(request.distribution, address.numel, address.categories)
        proposal = network.proposal(request.key, outputs[i:i + 1],
                                    request.controller.proposal.observation_embedding, params)
        value = proposal.sample()
        log_q = float(proposal.log_prob(value).sum())
        controller = request.controller
        controller.state = (hidden[:, i:i + 1].clone(), cell[:, i:i + 1].clone())
        controller.previous_key = request.key
        controller.previous_value = value.reshape(1, -1)
        shape = request.distribution.shape()
        results.append((value.reshape(shape).numpy().astype(np.float64), log_q))
    return results
