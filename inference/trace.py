"""Engine-side traces: the random choices, observations and tags of one simulator run.

A ``Choice`` keeps the distribution in whichever form it arrived (wire
parameters from a remote simulator, a pyro distribution in-process) and builds
the other lazily, so recording a trace costs no torch work until log-densities
are asked for. Observed values may be ``ppx.sparse.SparseArray``s (sparse
images); they are weighed by ``SparseNormal`` without ever being densified.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Iterator, NamedTuple, Optional

import numpy as np
import torch

from inference.observations import check_observed_shape
from ppx.batch import Record
from ppx.distributions import BY_TYPE_ID, from_wire, to_wire
from ppx.messages import RECORD_OBSERVE, RECORD_SAMPLE, RECORD_TAG, WireDistribution
from ppx.sparse import SparseArray, value_shape
from ppx.sparse_normal import SparseNormal

KIND_NAMES = {RECORD_SAMPLE: "sample", RECORD_OBSERVE: "observe", RECORD_TAG: "tag"}


class Choice:
    """One sample, observe or tag in a trace.

    ``key`` is what the engine learns on: the simulator's address, the
    distribution kind and the instance count of that address within the trace.
    """

    __slots__ = ("kind", "address", "name", "instance", "value", "control", "observed",
                 "proposal_log_prob", "_wire", "_distribution", "_log_prob", "_released")

    def __init__(
        self,
        kind: int,
        address: str,
        name: str,
        instance: int,
        value: np.ndarray,
        wire: Optional[WireDistribution] = None,
        distribution: Optional[torch.distributions.Distribution] = None,
        control: bool = True,
        observed: bool = False,
        proposal_log_prob: Optional[float] = None,
    ) -> None:
        self.kind = kind
        self.address = address
        self.name = name
        self.instance = instance
        self.value = value
        self.control = control
        self.observed = observed
        self.proposal_log_prob = proposal_log_prob
        """log density under the proposal that chose the value; None when drawn from the prior."""
        self._wire = wire
        self._distribution = distribution
        self._log_prob: Optional[float] = None
        self._released = False

    @property
    def wire(self) -> Optional[WireDistribution]:
        if self._wire is None and self._distribution is not None:
            self._wire = WireDistribution(*to_wire(self._distribution))
        return self._wire

    @property
    def distribution(self) -> Optional[torch.distributions.Distribution]:
        if self._released:
            raise ValueError(f"the {KIND_NAMES[self.kind]} at address {self.address!r} has released its value "
                             "and distribution (an MCMC chain keeps only their log density)")
        if self._distribution is None and self._wire is not None:
            try:
                self._distribution = from_wire(self._wire.type_id, self._wire.params)
            except ValueError as err:
                raise ValueError(f"{KIND_NAMES[self.kind]} at address {self.address!r} "
                                 f"(name {self.name!r}): {err}") from None
        return self._distribution

    @property
    def distribution_name(self) -> str:
        wire = self.wire
        return "" if wire is None else BY_TYPE_ID[wire.type_id].name

    @property
    def key(self) -> str:
        return f"{self.address}__{self.distribution_name}__{self.instance}"

    @property
    def log_prob(self) -> float:
        """log density of the value under the choice's own distribution (0 for tags)."""
        if self._log_prob is None:
            distribution = self.distribution
            if distribution is None:
                self._log_prob = 0.0
            else:
                self._log_prob = float(distribution.log_prob(_as_log_prob_input(self.value, distribution)).sum())
        return self._log_prob

    def release(self) -> None:
        """Keep the log density and the key, and let the value and the distribution's parameters go."""
        _ = self.log_prob
        wire = self.wire
        self._wire = None if wire is None else WireDistribution(wire.type_id, ())
        self._distribution = None
        self.value = None
        self._released = True

    @property
    def sparse(self) -> bool:
        """Whether the value or a distribution parameter is a ``SparseArray``."""
        wire = self.wire
        return isinstance(self.value, SparseArray) or (
            wire is not None and any(isinstance(p, SparseArray) for p in wire.params))

    def __repr__(self) -> str:
        shown = self.value if isinstance(self.value, SparseArray) or self.value is None else self.value.tolist()
        return f"Choice({KIND_NAMES[self.kind]}, key={self.key!r}, name={self.name!r}, value={shown!r})"


def _as_log_prob_input(value: np.ndarray | SparseArray, distribution: torch.distributions.Distribution) -> object:
    """What ``distribution.log_prob`` takes: a sparse value as it is for ``SparseNormal``, densified otherwise."""
    if isinstance(value, SparseArray):
        return value if isinstance(distribution, SparseNormal) else torch.from_numpy(value.to_dense())
    return torch.as_tensor(value, dtype=torch.float64)


class StageCall(NamedTuple):
    """One call of a named simulator stage: its inputs, outputs and who computed them."""

    name: str
    inputs: tuple[np.ndarray, ...]
    outputs: tuple[np.ndarray, ...]
    surrogate: bool


class Trace:
    """The ordered choices of one run, the stage calls the engine saw, and the model's result."""

    __slots__ = ("choices", "result", "stages", "_instances")

    def __init__(self) -> None:
        self.choices: list[Choice] = []
        self.result: Optional[np.ndarray] = None
        self.stages: list[StageCall] = []
        self._instances: dict[str, int] = {}

    def add(self, kind: int, address: str, name: str, value: np.ndarray, *,
            wire: Optional[WireDistribution] = None,
            distribution: Optional[torch.distributions.Distribution] = None,
            control: bool = True, observed: bool = False,
            proposal_log_prob: Optional[float] = None) -> Choice:
        instance = self._instances.get(address, 0)
        self._instances[address] = instance + 1
        choice = Choice(kind, address, name, instance, value, wire, distribution, control, observed,
                        proposal_log_prob)
        self.choices.append(choice)
        return choice

    @classmethod
    def from_records(cls, records: list[Record], result: Optional[np.ndarray],
                     observations: Optional[dict[str, np.ndarray]] = None) -> "Trace":
        """A trace from simulator records, substituting observed values by name."""
        trace = cls()
        for record in records:
            value, observed = record.value, False
            if record.kind == RECORD_OBSERVE and observations and record.name in observations:
                value, observed = observations[record.name], True
                check_observed_shape(record.name, value, value_shape(record.value), record.address)
            trace.add(record.kind, record.address, record.name, value,
                      wire=record.distribution, control=record.control, observed=observed)
        trace.result = result
        return trace

    def next_instance(self, address: str) -> int:
        """The instance number the next choice at ``address`` will get."""
        return self._instances.get(address, 0)

    def __iter__(self) -> Iterator[Choice]:
        return iter(self.choices)

    def __len__(self) -> int:
        return len(self.choices)

    @property
    def samples(self) -> list[Choice]:
        return [c for c in self.choices if c.kind == RECORD_SAMPLE]

    @property
    def observes(self) -> list[Choice]:
        return [c for c in self.choices if c.kind == RECORD_OBSERVE]

    @property
    def tags(self) -> list[Choice]:
        return [c for c in self.choices if c.kind == RECORD_TAG]

    def named(self, name: str) -> Optional[Choice]:
        """The first choice carrying ``name``, if any."""
        for choice in self.choices:
            if choice.name == name:
                return choice
        return None

    @property
    def log_prior(self) -> float:
        return sum(c.log_prob for c in self.choices if c.kind == RECORD_SAMPLE)

    @property
    def log_likelihood(self) -> float:
        return sum(c.log_prob for c in self.choices if c.kind == RECORD_OBSERVE)

    @property
    def log_importance_weight(self) -> float:
        """log p(x, y) - log q(x): the likelihood plus, for each sample a proposal chose,
        its prior over proposal density (prior draws cancel out)."""
        weight = self.log_likelihood
        for choice in self.choices:
            if choice.kind == RECORD_SAMPLE and choice.proposal_log_prob is not None:
                weight += choice.log_prob - choice.proposal_log_prob
        return weight

    def release_observed_data(self) -> None:
        """Let the observed values and their distributions go, keeping each one's log density: an
        MCMC chain keeps thousands of traces, and a calorimeter image with its likelihood's mean
        and width is most of a tau trace's 600 kB."""
        for choice in self.observes:
            choice.release()

    @property
    def address_keys(self) -> tuple[str, ...]:
        """The keys of the sampled choices in order: traces with equal keys share structure."""
        return tuple(c.key for c in self.choices if c.kind == RECORD_SAMPLE)

    def variables(self) -> dict[str, np.ndarray]:
        """Value of each named sample and tag (first instance), plus ``result`` when present."""
        out: dict[str, np.ndarray] = {}
        for choice in self.choices:
            if choice.kind != RECORD_OBSERVE and choice.name and choice.name not in out:
                out[choice.name] = choice.value
        if self.result is not None:
            out["result"] = self.result
        return out


def _stacked_params(group: list[Choice]) -> tuple[np.ndarray, ...]:
    """The group's wire parameters stacked along a new first axis, each first broadcast to
    their common shape (parameters that do not broadcast raise ``ValueError``)."""
    shapes = {np.shape(p) for p in group[0].wire.params}
    shape = np.broadcast_shapes(*shapes) if len(shapes) > 1 else None
    return tuple(np.stack([c.wire.params[i] if shape is None else np.broadcast_to(c.wire.params[i], shape)
                           for c in group]) for i in range(len(group[0].wire.params)))


def fill_log_probs(choices: Iterable[Choice]) -> None:
    """Compute the log densities of many choices with one pyro call per group of alike choices.

    Choices with the same distribution kind and parameter and value shapes are
    stacked into one batched distribution. If a group's parameters are invalid,
    the choices are evaluated one by one so that the error names the culprit.
    """
    groups: dict[tuple, list[Choice]] = defaultdict(list)
    for choice in choices:
        wire = choice.wire
        if choice._log_prob is None and wire is not None and choice.sparse:
            choice.log_prob  # a sparse density is computed over its entries alone, one choice at a time
        elif choice._log_prob is None and wire is not None:
            shapes = tuple(np.shape(p) for p in wire.params)
            groups[(wire.type_id, shapes, np.shape(choice.value))].append(choice)
    for (type_id, _, _), group in groups.items():
        if len(group) == 1:
            group[0].log_prob
            continue
        values = torch.from_numpy(np.stack([np.asarray(c.value, dtype=np.float64) for c in group]))
        try:
            log_probs = from_wire(type_id, _stacked_params(group)).log_prob(values)
        except ValueError:
            for choice in group:
                choice.log_prob  # raises, naming the offending parameters
            raise
        totals = log_probs.reshape(len(group), -1).sum(dim=1).tolist()
        for choice, total in zip(group, totals):
            choice._log_prob = total
