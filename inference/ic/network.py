"""The inference-compilation network: an LSTM that steps through a trace and proposes each value.

At every controlled sample the LSTM reads the observation embedding, the
embedding of the previous sample's value, and embeddings of the current and
previous addresses and distribution kinds; a proposal head for the current
address turns its output into a proposal distribution. Address embeddings,
value embeddings and heads are created when an address is first seen; the
address table is part of the checkpoint so a saved network reloads and keeps
training.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

from inference.ic.config import NetworkConfig
from inference.ic.embeddings import default_embedding, make_embedding
from inference.ic.proposals import make_head
from inference.trace import Choice, Trace
from ppx.distributions import BY_NAME, KINDS
from ppx.messages import RECORD_OBSERVE, RECORD_SAMPLE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Address:
    """One entry of the address table: what the network learned to propose for."""

    key: str
    kind: str
    numel: int
    categories: int = 0

    @classmethod
    def of(cls, choice: Choice) -> "Address":
        kind = choice.distribution_name
        numel = int(np.size(choice.value))
        categories = int(np.shape(choice.wire.params[0])[-1]) if kind == "Categorical" else 0
        return cls(choice.key, kind, numel, categories)


def controlled_samples(trace: Trace) -> list[Choice]:
    return [c for c in trace.choices if c.kind == RECORD_SAMPLE and c.control]


def observed_values(trace: Trace) -> dict[str, np.ndarray]:
    """The first value observed under each name in the trace."""
    values: dict[str, np.ndarray] = {}
    for choice in trace.choices:
        if choice.kind == RECORD_OBSERVE and choice.name and choice.name not in values:
            values[choice.name] = choice.value
    return values


def prior_params(choices: Sequence[Choice], address: Address) -> tuple[torch.Tensor, ...]:
    """Each prior parameter stacked over ``choices`` as float64 (B, numel) (Categorical: (B, numel, C))."""
    count = len(choices)
    stacked = []
    for i in range(len(choices[0].wire.params)):
        param = torch.from_numpy(np.stack([np.asarray(c.wire.params[i], dtype=np.float64) for c in choices]))
        if address.kind == "Categorical":
            stacked.append(param.reshape(count, -1, address.categories).expand(count, address.numel, -1))
        else:
            stacked.append(param.reshape(count, -1).expand(count, address.numel))
    return tuple(stacked)


def stacked_values(choices: Sequence[Choice], address: Address) -> torch.Tensor:
    values = torch.from_numpy(np.stack([np.asarray(c.value, dtype=np.float64).reshape(-1) for c in choices]))
    return values.long() if address.kind == "Categorical" else values


class InferenceNetwork(nn.Module):
    """Proposal network for one simulator.

    Args:
        config: sizes and per-name embedding choices.
        observation_shapes: the shape of each observed name's value.
    """

    def __init__(self, config: NetworkConfig, observation_shapes: dict[str, tuple[int, ...]]) -> None:
        super().__init__()
        if not observation_shapes:
            raise ValueError("the simulator's traces have no named observe statements to condition on")
        self.config = config
        self.observation_shapes = {name: tuple(shape) for name, shape in sorted(observation_shapes.items())}
        self.observation_embeddings = nn.ModuleDict({
            f"o{i}": make_embedding(config.embeddings.get(name, default_embedding(shape)), shape,
                                    config.observation_dim)
            for i, (name, shape) in enumerate(self.observation_shapes.items())
        })
        for i, shape in enumerate(self.observation_shapes.values()):
            # Per-name standardisation, set from the first training traces by ``standardise``.
            self.register_buffer(f"observation_mean_{i}", torch.zeros(()))
            self.register_buffer(f"observation_scale_{i}", torch.ones(()))
        self.observation_mix = nn.Sequential(
            nn.Linear(config.observation_dim * len(self.observation_shapes), config.observation_dim), nn.ReLU())
        self.kind_embedding = nn.Embedding(len(KINDS) + 1, config.kind_dim)
        input_dim = config.observation_dim + 2 * config.address_dim + 2 * config.kind_dim + config.value_dim
        self.lstm = nn.LSTM(input_dim, config.lstm_dim, config.lstm_layers)
        self.addresses: list[Address] = []
        self.address_index: dict[str, int] = {}
        self.address_embeddings = nn.ParameterDict()
        self.value_embeddings = nn.ModuleDict()
        self.heads = nn.ModuleDict()

    # ---- the address table ---------------------------------------------------------------

    def learn_addresses(self, traces: Sequence[Trace]) -> list[nn.Parameter]:
        """Create embeddings and heads for addresses not seen before; return their new parameters."""
        new: list[nn.Parameter] = []
        for trace in traces:
            for choice in controlled_samples(trace):
                if choice.key not in self.address_index:
                    new.extend(self.add_address(Address.of(choice)))
        return new

    def add_address(self, address: Address) -> list[nn.Parameter]:
        index = len(self.addresses)
        self.addresses.append(address)
        self.address_index[address.key] = index
        slot = f"a{index}"
        self.address_embeddings[slot] = nn.Parameter(torch.randn(self.config.address_dim) / math.sqrt(self.config.address_dim))
        self.value_embeddings[slot] = nn.Linear(address.numel, self.config.value_dim)
        self.heads[slot] = make_head(address.kind, self.config.lstm_dim + self.config.observation_dim,
                                     address.numel, self.config.components,
                                     address.categories)
        log.debug("new address %s (%s, %d elements)", address.key, address.kind, address.numel)
        modules = (self.value_embeddings[slot], self.heads[slot])
        return [self.address_embeddings[slot]] + [p for m in modules for p in m.parameters()]

    def ordered_parameters(self) -> list[nn.Parameter]:
        """Shared parameters first, then each address's in table order: the order in which an
        optimizer sees them as addresses are added, so its saved state reloads."""
        address_parameters = {id(p) for p in self.address_embeddings.parameters()}
        address_parameters |= {id(p) for p in self.value_embeddings.parameters()}
        address_parameters |= {id(p) for p in self.heads.parameters()}
        shared = [p for p in self.parameters() if id(p) not in address_parameters]
        per_address = []
        for index in range(len(self.addresses)):
            slot = f"a{index}"
            per_address.append(self.address_embeddings[slot])
            per_address.extend(self.value_embeddings[slot].parameters())
            per_address.extend(self.heads[slot].parameters())
        return shared + per_address

    def knows(self, key: str) -> bool:
        return key in self.address_index

    # ---- pieces of the step input ----------------------------------------------------------

    def standardise(self, traces: Sequence[Trace]) -> None:
        """Centre and scale each observed name's values by their mean and spread in ``traces``."""
        for i, name in enumerate(self.observation_shapes):
            values = np.array([np.asarray(observed_values(t)[name], dtype=np.float64)
                               for t in traces if name in observed_values(t)])
            if values.size:
                getattr(self, f"observation_mean_{i}").fill_(float(values.mean()))
                getattr(self, f"observation_scale_{i}").fill_(float(values.std()) or 1.0)

    def embed_observations(self, observations: Sequence[dict[str, np.ndarray]]) -> torch.Tensor:
        """(B, observation_dim) from a batch of observation dicts (missing names are zeros)."""
        parts = []
        for i, (name, shape) in enumerate(self.observation_shapes.items()):
            batch = np.zeros((len(observations),) + shape, dtype=np.float32)
            for row, values in enumerate(observations):
                if name in values:
                    batch[row] = np.asarray(values[name], dtype=np.float32).reshape(shape)
            standardised = (torch.from_numpy(batch) - getattr(self, f"observation_mean_{i}")) \
                / getattr(self, f"observation_scale_{i}")
            parts.append(self.observation_embeddings[f"o{i}"](standardised))
        return self.observation_mix(torch.cat(parts, dim=1))

    def _address_vector(self, key: Optional[str], count: int) -> torch.Tensor:
        if key is None:
            return torch.zeros(count, self.config.address_dim)
        return self.address_embeddings[f"a{self.address_index[key]}"].expand(count, -1)

    def _kind_vector(self, key: Optional[str], count: int) -> torch.Tensor:
        kind = 0 if key is None else BY_NAME[self.addresses[self.address_index[key]].kind].type_id
        return self.kind_embedding(torch.full((count,), kind, dtype=torch.long))

    def _value_vector(self, key: Optional[str], values: Optional[torch.Tensor], count: int) -> torch.Tensor:
        if key is None:
            return torch.zeros(count, self.config.value_dim)
        return self.value_embeddings[f"a{self.address_index[key]}"](values.float().reshape(count, -1))

    def step_input(self, observation_embedding: torch.Tensor, key: str, previous_key: Optional[str],
                   previous_values: Optional[torch.Tensor]) -> torch.Tensor:
        """The LSTM input (B, input_dim) for a batch of traces at the same step."""
        count = observation_embedding.shape[0]
        return torch.cat([
            observation_embedding,
            self._address_vector(key, count), self._address_vector(previous_key, count),
            self._kind_vector(key, count), self._kind_vector(previous_key, count),
            self._value_vector(previous_key, previous_values, count),
        ], dim=1)

    def proposal(self, key: str, hidden: torch.Tensor, observation_embedding: torch.Tensor,
                 params: tuple[torch.Tensor, ...]):
        """The proposal distribution at address ``key`` for LSTM outputs ``hidden`` (B, lstm_dim).

        The head also reads the observation embedding directly: the LSTM's saturating
        gates alone extrapolate poorly to observations in the tails of the training data.
        """
        return self.heads[f"a{self.address_index[key]}"](torch.cat([hidden, observation_embedding], dim=1), params)

    # ---- training ----------------------------------------------------------------------------

    def loss(self, traces: Sequence[Trace]) -> torch.Tensor:
        """Mean over traces of -sum log q(value) over their controlled samples.

        Traces are grouped by their sequence of address keys so that one LSTM pass
        serves each group.
        """
        groups: dict[tuple[str, ...], list[int]] = {}
        samples = [controlled_samples(trace) for trace in traces]
        for index, choices in enumerate(samples):
            groups.setdefault(tuple(c.key for c in choices), []).append(index)
        # One embedding pass for the whole batch (the costly part for images), then per group.
        observation_embedding = self.embed_observations([observed_values(t) for t in traces])
        total = torch.zeros((), dtype=torch.float64)
        for keys, indices in groups.items():
            if keys:
                total = total + self._group_loss(keys, [samples[i] for i in indices],
                                                 observation_embedding[indices])
        return total / len(traces)

    def _group_loss(self, keys: tuple[str, ...], samples: list[list[Choice]],
                    observation_embedding: torch.Tensor) -> torch.Tensor:
        columns = list(zip(*samples))
        inputs, targets = [], []
        previous_key, previous_values = None, None
        for key, choices in zip(keys, columns):
            address = self.addresses[self.address_index[key]]
            values = stacked_values(choices, address)
            inputs.append(self.step_input(observation_embedding, key, previous_key, previous_values))
            targets.append((key, prior_params(choices, address), values))
            previous_key, previous_values = key, values
        outputs, _ = self.lstm(torch.stack(inputs))
        loss = torch.zeros((), dtype=torch.float64)
        for output, (key, params, values) in zip(outputs, targets):
            loss = loss - self.proposal(key, output, observation_embedding, params).log_prob(values).sum()
        return loss
