"""Importance sampling: weighted traces from a proposal, the prior by default."""

from __future__ import annotations

import logging
from typing import Any, Mapping, Optional

import numpy as np
from tqdm.auto import tqdm

from inference.observations import ObservedNames, as_observations
from inference.posterior import Posterior
from inference.trace import fill_log_probs
from ppx.messages import RECORD_OBSERVE

log = logging.getLogger(__name__)


def log_weights(traces: list) -> np.ndarray:
    """log p(x, y) - log q(x) per trace; observations whose density is undefined raise ``ValueError``."""
    fill_log_probs(c for trace in traces for c in trace.choices
                   if c.kind == RECORD_OBSERVE or c.proposal_log_prob is not None)
    weights = np.empty(len(traces))
    for i, trace in enumerate(traces):
        try:
            weights[i] = trace.log_importance_weight
        except (ValueError, RuntimeError) as err:
            observed = [c.name for c in trace.observes if c.observed]
            raise ValueError(f"cannot weigh trace {i} by observations {observed}: {err}") from err
    return weights


def importance_sampling(
    simulator: Any,
    num_traces: int,
    observations: Optional[Mapping[str, Any]] = None,
    *,
    proposal: Optional[Any] = None,
    batch_size: int = 64,
    progress: bool = False,
) -> Posterior:
    """Weighted posterior samples by importance sampling.

    Args:
        simulator: a ``RemoteSimulator``, ``SimulatorPool`` or ``LocalSimulator``.
        num_traces: how many traces to draw.
        observations: observed values by the name of their ``observe`` statement.
        proposal: makes a controller per trace (``proposal.controller()``) that chooses
            its controlled samples, e.g. an IC ``NetworkProposal``; None samples the
            prior (and lets simulators that support it sample whole traces locally in
            batches).
        batch_size: traces per batch when the prior is sampled in batches.
        progress: show a progress bar.
    """
    if num_traces < 1:
        raise ValueError(f"num_traces must be at least 1, got {num_traces}")
    observations = as_observations(observations)
    observed_names = ObservedNames(observations)
    with tqdm(total=num_traces, disable=not progress, unit="trace", desc="importance sampling") as bar:
        def advance(done: list) -> None:
            observed_names.update(done)
            bar.update(len(done))
        if proposal is None:
            traces = simulator.prior(num_traces, observations, batch_size=batch_size, on_done=advance)
        else:
            controllers = [proposal.controller() for _ in range(num_traces)]
            traces = simulator.run_many(controllers, observations, on_done=advance)
    observed_names.check()
    return Posterior(traces, log_weights(traces), engine="is" if proposal is None else "ic")
