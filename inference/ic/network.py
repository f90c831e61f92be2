"""The inference-compilation network: an LSTM that steps through a trace and proposes each value.

At every controlled sample the LSTM reads the observation embedding, the
embedding of the previous sample's value, and embeddings of the current and
previous addresses and distribution kinds; a proposal head for the current
address turns its output into a proposal distribution. Address embeddings,
value embeddings and heads are created when an address is first seen; the
address table is part of the checkpoint so a saved network reloads and keeps
training. Sparse observed values (``ppx.sparse.SparseArray``) reach an embedding
that takes them (the sparse 3D CNN) as sparse tensors, never densified.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Iterable, NamedTuple, Optional, Sequence

import numpy as np
import torch
from torch import nn

from inference.ic.config import NetworkConfig
from inference.ic.embeddings import default_embedding, make_embedding
from inference.ic.proposals import make_head
from inference.ic.proposals.prior_mixture import PriorMixture, fit_prior_weight, prior_distribution
from inference.sparse import SparseTensor
from inference.trace import Choice, Trace
from ppx.distributions import BY_NAME, KINDS
from ppx.messages import RECORD_OBSERVE, RECORD_SAMPLE
from ppx.sparse import SparseArray, densified, value_shape

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


def observed_values(trace: Trace) -> dict[str, np.ndarray | SparseArray]:
    """The first value observed under each name in the trace."""
    values: dict[str, np.ndarray | SparseArray] = {}
    for choice in trace.choices:
        if choice.kind == RECORD_OBSERVE and choice.name and choice.name not in values:
            values[choice.name] = choice.value
    return values


def sparse_observation(name: str, value: Any, shape: tuple[int, ...]) -> SparseArray:
    """The observed ``value`` of a sparse name as a ``SparseArray`` of ``shape`` (empty when missing)."""
    if value is None:
        return SparseArray(np.zeros((0, len(shape)), np.int64), np.zeros(0), shape)
    sparse = value if isinstance(value, SparseArray) else SparseArray.from_dense(value)
    if sparse.shape != shape:
        raise ValueError(f"observation {name!r} has shape {list(sparse.shape)}, the network was built for "
                         f"{list(shape)}")
    return sparse


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


def in_prior_units(kind: str, values: torch.Tensor, params: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Values (B, numel) as value embeddings read them: relative to the prior where it sets a scale.

    A Uniform's or Beta's interval maps onto [-1, 1] and a Normal's or LogNormal's values
    become z-scores (of log x for the LogNormal), so that a tau's px in [30, 50] GeV and a
    decay angle's cosine reach the LSTM on the same footing; other kinds pass unchanged.
    """
    values = values.double()
    if kind == "Uniform":
        low, high = params
        return 2 * (values - low) / (high - low) - 1
    if kind == "Beta":
        return 2 * values - 1
    if kind == "Normal":
        loc, scale = params
        return (values - loc) / scale
    if kind == "LogNormal":
        loc, scale = params
        return (torch.log(values.clamp_min(1e-30)) - loc) / scale
    return values


class _Sites(NamedTuple):
    """Every site of one address in a batch of traces: their rows, proposal, values and prior parameters."""

    address: Address
    rows: torch.Tensor
    proposal: torch.distributions.Distribution
    values: torch.Tensor
    params: tuple[torch.Tensor, ...]


class InferenceNetwork(nn.Module):
    """Proposal network for one simulator.

    Args:
        config: sizes and per-name embedding choices.
        observation_shapes: the shape of each observed name's value.
        sparse_observations: the names whose values are sparse (``SparseArray``); their
            standardisation uses the stored entries only, and the default embedding of a
            3D one is the sparse 3D CNN.
    """

    def __init__(self, config: NetworkConfig, observation_shapes: dict[str, tuple[int, ...]],
                 sparse_observations: Iterable[str] = ()) -> None:
        super().__init__()
        if not observation_shapes:
            raise ValueError("the simulator's traces have no named observe statements to condition on")
        self.config = config
        self.observation_shapes = {name: tuple(shape) for name, shape in sorted(observation_shapes.items())}
        self.sparse_observations = frozenset(sparse_observations)
        unknown = sorted(self.sparse_observations - set(self.observation_shapes))
        if unknown:
            raise ValueError(f"sparse observations {unknown} are not among the observed names "
                             f"{sorted(self.observation_shapes)}")
        self.observation_embeddings = nn.ModuleDict({
            f"o{i}": make_embedding(
                config.embeddings.get(name, default_embedding(shape, name in self.sparse_observations)),
                shape, config.observation_dim)
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

    @property
    def device(self) -> torch.device:
        """Where the network's weights are; ``log_q`` builds its inputs there."""
        return self.observation_mean_0.device

    @classmethod
    def for_traces(cls, config: NetworkConfig, traces: Sequence[Trace]) -> "InferenceNetwork":
        """A network for the observations of ``traces``, standardised on them and knowing their addresses."""
        observed = observed_values(traces[0])
        shapes = {name: value_shape(value) for name, value in observed.items()}
        sparse = [name for name, value in observed.items() if isinstance(value, SparseArray)]
        network = cls(config, shapes, sparse)
        network.standardise(traces)
        network.learn_addresses(traces)
        return network

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
        with self.device:  # the new parameters are made where the network's are
            self.address_embeddings[slot] = nn.Parameter(
                torch.randn(self.config.address_dim) / math.sqrt(self.config.address_dim))
            self.value_embeddings[slot] = nn.Linear(address.numel, self.config.value_dim)
            self.heads[slot] = make_head(address.kind, self.config.lstm_dim + self.config.observation_dim,
                                         address.numel, self.config.components, address.categories)
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
        """Centre and scale each observed name's values by their mean and spread in ``traces``
        (for a sparse name, of the entries stored: the others are absent, not zero)."""
        observed = [observed_values(t) for t in traces]
        for i, (name, shape) in enumerate(self.observation_shapes.items()):
            present = [values[name] for values in observed if name in values]
            if name in self.sparse_observations:
                values = np.concatenate([sparse_observation(name, v, shape).values for v in present] + [np.zeros(0)])
            else:
                values = np.array([np.asarray(densified(v), dtype=np.float64) for v in present])
            if values.size:
                getattr(self, f"observation_mean_{i}").fill_(float(values.mean()))
                getattr(self, f"observation_scale_{i}").fill_(float(values.std()) or 1.0)

    def embed_observations(self, observations: Sequence[dict[str, np.ndarray]]) -> torch.Tensor:
        """(B, observation_dim) from a batch of observation dicts (missing names are zeros)."""
        parts = []
        for i, (name, shape) in enumerate(self.observation_shapes.items()):
            if name in self.sparse_observations:
                parts.append(self._embed_sparse(i, name, shape, observations))
                continue
            batch = np.zeros((len(observations),) + shape, dtype=np.float32)
            for row, values in enumerate(observations):
                if name in values:
                    batch[row] = np.asarray(densified(values[name]), dtype=np.float32).reshape(shape)
            standardised = (torch.from_numpy(batch).to(self.device) - getattr(self, f"observation_mean_{i}")) \
                / getattr(self, f"observation_scale_{i}")
            parts.append(self.observation_embeddings[f"o{i}"](standardised))
        return self.observation_mix(torch.cat(parts, dim=1))

    def _embed_sparse(self, i: int, name: str, shape: tuple[int, ...],
                      observations: Sequence[dict[str, Any]]) -> torch.Tensor:
        """(B, observation_dim) for a sparse name: its stored entries standardised, the rest absent.

        An embedding with ``takes_sparse`` gets one ``SparseTensor`` for the batch;
        any other gets the dense batch, zero where nothing is stored.
        """
        mean, scale = getattr(self, f"observation_mean_{i}"), getattr(self, f"observation_scale_{i}")
        events = []
        for values in observations:
            sparse = sparse_observation(name, values.get(name), shape)
            features = (torch.from_numpy(sparse.values).float().to(self.device) - mean) / scale
            events.append((torch.from_numpy(sparse.coordinates), features))
        embedding = self.observation_embeddings[f"o{i}"]
        if getattr(embedding, "takes_sparse", False):
            return embedding(SparseTensor.from_events(events, shape))
        dense = torch.zeros((len(events),) + shape, device=self.device)
        for row, (coordinates, features) in enumerate(events):
            dense[row][tuple(coordinates.T)] = features
        return embedding(dense)

    def _address_vector(self, key: Optional[str], count: int) -> torch.Tensor:
        if key is None:
            return torch.zeros(count, self.config.address_dim, device=self.device)
        return self.address_embeddings[f"a{self.address_index[key]}"].expand(count, -1)

    def _kind_vector(self, key: Optional[str], count: int) -> torch.Tensor:
        kind = 0 if key is None else BY_NAME[self.addresses[self.address_index[key]].kind].type_id
        return self.kind_embedding(torch.full((count,), kind, dtype=torch.long, device=self.device))

    def _value_vector(self, key: Optional[str], values: Optional[torch.Tensor], count: int) -> torch.Tensor:
        """The embedding of the previous sample's ``values``, given ``in_prior_units``."""
        if key is None:
            return torch.zeros(count, self.config.value_dim, device=self.device)
        return self.value_embeddings[f"a{self.address_index[key]}"](values.float().reshape(count, -1).to(self.device))

    def step_input(self, observation_embedding: torch.Tensor, key: str, previous_key: Optional[str],
                   previous_values: Optional[torch.Tensor]) -> torch.Tensor:
        """The LSTM input (B, input_dim) for a batch of traces at the same step (``previous_values``
        ``in_prior_units``)."""
        count = observation_embedding.shape[0]
        return torch.cat([
            observation_embedding,
            self._address_vector(key, count), self._address_vector(previous_key, count),
            self._kind_vector(key, count), self._kind_vector(previous_key, count),
            self._value_vector(previous_key, previous_values, count),
        ], dim=1)

    def proposal(self, key: str, hidden: torch.Tensor, observation_embedding: torch.Tensor,
                 params: tuple[torch.Tensor, ...], mixed: bool = True):
        """The proposal distribution at address ``key`` for LSTM outputs ``hidden`` (B, lstm_dim):
        the head's, mixed with the prior by its ``prior_weight`` unless ``mixed`` is False.

        The head also reads the observation embedding directly: the LSTM's saturating
        gates alone extrapolate poorly to observations in the tails of the training data.
        """
        head = self.heads[f"a{self.address_index[key]}"]
        proposal = head(torch.cat([hidden, observation_embedding], dim=1), params)
        if not mixed or not bool(head.prior_weight.any()):
            return proposal
        kind = self.addresses[self.address_index[key]].kind
        return PriorMixture(proposal, prior_distribution(kind, params), head.prior_weight)

    # ---- training ----------------------------------------------------------------------------

    def loss(self, traces: Sequence[Trace], per_address: Optional[dict[str, float]] = None) -> torch.Tensor:
        """Mean over traces of -sum log q(value) over their controlled samples.

        ``per_address``, when given, is added each address's share: its -log q summed
        over the batch's traces (not divided by their number).
        """
        return -self.log_q(traces, per_address=per_address).mean()

    def log_q(self, traces: Sequence[Trace], observation_embedding: Optional[torch.Tensor] = None,
              per_address: Optional[dict[str, float]] = None) -> torch.Tensor:
        """(B,) float64: each trace's sum of log q(value) over its controlled samples.

        ``observation_embedding`` (1, observation_dim), when given, conditions every trace on
        it instead of on each trace's own observed values (one embedding for all the traces of
        an event). ``per_address`` is added each address's -log q summed over the traces.
        Samples at addresses the network does not know are left out, as ``NetworkProposal``
        leaves them to the prior.

        However their address sequences differ, all traces of a batch share one
        packed LSTM pass, and each address's head runs once over every position
        where that address occurs. (Grouping traces by address sequence, the
        classic scheme, needs a pass per group and a head call per step per group,
        which on CPU costs more than the network for simulators whose rejection
        loops make nearly every trace's sequence unique.)
        """
        device = self.device
        log_q = torch.zeros(len(traces), dtype=torch.float64, device=device)
        rows, sites = self._site_proposals(traces, observation_embedding)
        if not rows:
            return log_q.requires_grad_()
        per_row = torch.zeros(len(rows), dtype=torch.float64, device=device)
        for site in sites:
            site_log_q = site.proposal.log_prob(site.values).reshape(len(site.values), -1).sum(1)
            per_row = per_row.index_add(0, site.rows, site_log_q.double())
            if per_address is not None:
                per_address[site.address.key] = per_address.get(site.address.key, 0.0) - float(site_log_q.sum())
        return log_q.index_put((torch.tensor(rows, device=device),), per_row)

    def fit_prior_weights(self, traces: Sequence[Trace]) -> None:
        """Set each head's ``prior_weight`` to the mixture weight that best fits ``traces``
        (those of its addresses that occur there; others keep theirs)."""
        with torch.no_grad():
            for site in self._site_proposals(traces, None, mixed=False)[1]:
                count = len(site.values)
                own = site.proposal.log_prob(site.values).reshape(count, -1)
                prior = prior_distribution(site.address.kind, site.params).log_prob(site.values).reshape(count, -1)
                weight = fit_prior_weight(own.double().cpu().numpy(), prior.double().cpu().numpy())
                self.heads[f"a{self.address_index[site.address.key]}"].prior_weight.copy_(torch.from_numpy(weight))

    def _site_proposals(self, traces: Sequence[Trace], observation_embedding: Optional[torch.Tensor],
                        mixed: bool = True) -> tuple[list[int], list[_Sites]]:
        """The traces with something to propose (their indices, the rows of what follows), and
        per address the proposal at all its sites in them (``mixed`` as for ``proposal``)."""
        samples = [[c for c in controlled_samples(trace) if self.knows(c.key)] for trace in traces]
        lengths = [len(choices) for choices in samples]
        device = self.device
        if max(lengths, default=0) == 0:
            return [], []
        if observation_embedding is None:
            observation_embedding = self.embed_observations([observed_values(t) for t in traces])
        else:
            observation_embedding = observation_embedding.expand(len(traces), -1)
        rows = [b for b, length in enumerate(lengths) if length]  # traces with something to propose
        samples = [samples[b] for b in rows]
        observation_embedding = observation_embedding[rows]
        steps, batch = max(lengths), len(rows)
        # Address slot per position: 0 for padding, index + 1 otherwise. The bookkeeping stays on
        # the CPU; what the modules read goes to the network's device.
        slots = torch.zeros(steps, batch, dtype=torch.long, device="cpu")
        for b, choices in enumerate(samples):
            slots[:len(choices), b] = torch.tensor([self.address_index[c.key] + 1 for c in choices], device="cpu")
        previous = torch.cat([torch.zeros(1, batch, dtype=torch.long, device="cpu"), slots[:-1]])
        slots_there, previous_there = slots.to(device), previous.to(device)
        addresses, kinds = self._address_table(), self._kind_table()
        inputs = torch.cat([
            observation_embedding.unsqueeze(0).expand(steps, -1, -1),
            addresses[slots_there], addresses[previous_there],
            self.kind_embedding(kinds[slots_there]), self.kind_embedding(kinds[previous_there]),
            self._previous_value_embeddings(samples, previous),
        ], dim=2)
        packed = nn.utils.rnn.pack_padded_sequence(inputs, [len(c) for c in samples], enforce_sorted=False)
        outputs, _ = nn.utils.rnn.pad_packed_sequence(self.lstm(packed)[0], total_length=steps)
        sites = []
        for slot in torch.unique(slots[slots > 0]).tolist():
            step_index, row_index = torch.nonzero(slots == slot, as_tuple=True)
            address = self.addresses[slot - 1]
            choices = [samples[b][t] for t, b in zip(step_index.tolist(), row_index.tolist())]
            step_index, row_index = step_index.to(device), row_index.to(device)
            params = tuple(param.to(device) for param in prior_params(choices, address))
            proposal = self.proposal(address.key, outputs[step_index, row_index], observation_embedding[row_index],
                                     params, mixed)
            sites.append(_Sites(address, row_index, proposal, stacked_values(choices, address).to(device), params))
        return rows, sites

    def _address_table(self) -> torch.Tensor:
        """Address embeddings as one matrix, row 0 (no address) zero."""
        rows = [self.address_embeddings[f"a{i}"] for i in range(len(self.addresses))]
        return torch.stack([torch.zeros(self.config.address_dim, device=self.device)] + rows)

    def _kind_table(self) -> torch.Tensor:
        return torch.tensor([0] + [BY_NAME[a.kind].type_id for a in self.addresses], dtype=torch.long,
                            device=self.device)

    def _previous_value_embeddings(self, samples: list[list[Choice]], previous: torch.Tensor) -> torch.Tensor:
        """(steps, batch, value_dim): each position's embedding of the value chosen one step earlier."""
        device = self.device
        embedded = torch.zeros(previous.shape + (self.config.value_dim,), device=device)
        for slot in torch.unique(previous[previous > 0]).tolist():
            step_index, row_index = torch.nonzero(previous == slot, as_tuple=True)
            address = self.addresses[slot - 1]
            choices = [samples[b][t - 1] for t, b in zip(step_index.tolist(), row_index.tolist())]
            values = in_prior_units(address.kind, stacked_values(choices, address), prior_params(choices, address))
            vectors = self.value_embeddings[f"a{slot - 1}"](values.float().reshape(len(values), -1).to(device))
            embedded = embedded.index_put((step_index.to(device), row_index.to(device)), vectors)
        return embedded
