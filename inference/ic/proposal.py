"""Importance sampling with the IC network as proposal, evaluated for many traces at once.

``NetworkProposal(network, observations)`` embeds the observations once. Each
trace gets its own ``NetworkController`` holding its LSTM state; when several
traces (on several simulators of a pool) wait for a proposal at the same time,
``choose_batch`` advances all of them with one LSTM call and one head call per
address. Addresses the network has never seen, and ``control=False`` choices,
are drawn from the prior.

A request that carries its trace's random stream (a pool run for reproducibility,
``inference.streams``) is drawn from that stream, with a head call of its own: a
value drawn as one row of a batch would depend on which other traces happened to
share the batch.
"""

from __future__ import annotations

import contextlib
from typing import Optional, Sequence

import numpy as np
import torch

from inference.controllers import Controller, draw_from_prior
from inference.remote import ProposalRequest
from inference.ic.network import InferenceNetwork, in_prior_units
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
            with request.stream or contextlib.nullcontext():
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
    """One LSTM step for every request, and one head call per address among them (per request
    when they carry their streams)."""
    network = requests[0].controller.proposal.network
    config = network.config
    # Requests at the same step (address, and the address before it) share their input computation.
    groups: dict[tuple[str, Optional[str]], list[int]] = {}
    for i, request in enumerate(requests):
        groups.setdefault((request.key, request.controller.previous_key), []).append(i)
    order = [i for rows in groups.values() for i in rows]
    inputs = torch.cat([
        network.step_input(torch.cat([requests[i].controller.proposal.observation_embedding for i in rows]),
                           key, previous_key,
                           None if previous_key is None
                           else torch.cat([requests[i].controller.previous_value for i in rows]))
        for (key, previous_key), rows in groups.items()
    ])
    zeros = torch.zeros(config.lstm_layers, 1, config.lstm_dim)
    states = [requests[i].controller.state or (zeros, zeros) for i in order]
    hidden = torch.cat([state[0] for state in states], dim=1)
    cell = torch.cat([state[1] for state in states], dim=1)
    outputs, (hidden, cell) = network.lstm(inputs.unsqueeze(0), (hidden, cell))
    position = {i: row for row, i in enumerate(order)}

    results: list[Optional[tuple[np.ndarray, float]]] = [None] * len(requests)
    by_key: dict[str, list[int]] = {}
    for i, request in enumerate(requests):
        by_key.setdefault(request.key, []).append(i)
    for key, indices in by_key.items():
        if any(requests[i].stream is not None for i in indices):
            draws = [_propose(network, key, outputs, [requests[i]], [position[i]]) for i in indices]
            values, log_q, embedded_values = (torch.cat(parts) for parts in zip(*draws))
        else:
            values, log_q, embedded_values = _propose(network, key, outputs, [requests[i] for i in indices],
                                                      [position[i] for i in indices])
        for j, i in enumerate(indices):
            row, controller = position[i], requests[i].controller
            controller.state = (hidden[:, row:row + 1].clone(), cell[:, row:row + 1].clone())
            controller.previous_key = key
            controller.previous_value = embedded_values[j:j + 1]
            shape = requests[i].distribution.shape()
            results[i] = (values[j].reshape(shape).numpy().astype(np.float64), float(log_q[j]))
    return results  # type: ignore[return-value]


def _propose(network: InferenceNetwork, key: str, outputs: torch.Tensor, requests: list[ProposalRequest],
             rows: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Values drawn from the proposal at ``key`` for requests whose LSTM outputs are ``rows``
    of ``outputs``, their log densities, and the values in prior units for the next step;
    a single request draws from its stream when it has one."""
    address = network.addresses[network.address_index[key]]
    params = tuple(torch.cat(parts) for parts in zip(*(
        _prior_params(request.distribution, address.numel, address.categories) for request in requests)))
    embedding = torch.cat([request.controller.proposal.observation_embedding for request in requests])
    proposal = network.proposal(key, outputs[0, rows], embedding, params)
    stream = requests[0].stream if len(requests) == 1 else None
    with stream or contextlib.nullcontext():
        values = proposal.sample()
    log_q = proposal.log_prob(values).reshape(len(requests), -1).sum(1)
    return values, log_q, in_prior_units(address.kind, values.reshape(len(requests), -1), params)
