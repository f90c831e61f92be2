"""The IC network as the first rung of a tempering ladder (``tempered_smc(..., bridge=NetworkBridge(...))``).

Tempered SMC from the prior climbs from p(x) to p(x | y) through p(x) p(y | x) ** beta,
and where the posterior is hundreds of nats from the prior that takes many stages
of moves that have to carry the particles the whole way. Started from the network's
proposal q instead, the ladder is q(x) ** (1 - beta) p(x, y) ** beta: its first rung is
what IC importance sampling draws, exactly, and each stage reweights by a power of
the importance weight p(x, y) / q(x), so the ladder is as long as the weights are
uneven, which an adapted network makes short. The moves have to know q at every
trace they propose; ``log_density_ratio`` gives it as log q(x) - log p(x) over the
sites the network proposes (the others are drawn from the prior and cancel), for
many traces in one network pass. ``network_smc`` is the whole recipe: adapt a
copy of the network to the event (optionally), then climb the ladder from it.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch

from inference.ic.adapt import SCORING_BATCH, Adaptation, adapt, quiet_weight_warnings
from inference.ic.network import InferenceNetwork, controlled_samples
from inference.ic.proposal import NetworkProposal
from inference.importance import importance_sampling
from inference.observations import as_observations
from inference.posterior import Posterior
from inference.smc import ModelMove, tempered_smc
from inference.trace import Trace

class NetworkBridge:
    """The network conditioned on one event, as a tempering ladder's start."""

    def __init__(self, network: InferenceNetwork, observations: Mapping[str, Any]) -> None:
        self.proposal = NetworkProposal(network, as_observations(observations))
        self.network = self.proposal.network

    def draw(self, simulator: Any, num_traces: int, observations: Mapping[str, Any]) -> list[Trace]:
        """``num_traces`` traces drawn from q (unweighted: the ladder's first rung)."""
        with quiet_weight_warnings():
            return importance_sampling(simulator, num_traces, observations, proposal=self.proposal).traces

    def log_density_ratio(self, traces: Sequence[Trace]) -> np.ndarray:
        """log q(x) - log p(x) per trace, over the controlled sites the network proposes."""
        ratios = np.empty(len(traces))
        with torch.no_grad():
            for start in range(0, len(traces), SCORING_BATCH):
                batch = traces[start:start + SCORING_BATCH]
                log_q = self.network.log_q(batch, self.proposal.observation_embedding).numpy()
                log_prior = [sum(c.log_prob for c in controlled_samples(trace) if self.network.knows(c.key))
                             for trace in batch]
                ratios[start:start + len(batch)] = log_q - np.asarray(log_prior)
        return ratios


def network_smc(simulator: Any, network: InferenceNetwork, num_particles: int, observations: Mapping[str, Any],
                adaptation: Optional[Adaptation] = None, *, moves: int = 20, ess_fraction: float = 0.5,
                model_moves: Sequence[ModelMove] = (), seed: Optional[int] = None, progress: bool = False
                ) -> Posterior:
    """Tempered SMC from ``network``'s proposal, fitted to ``observations`` first when ``adaptation``
    asks for rounds (``inference.ic.adapt``).

    The posterior (engine "smc-ic") is ``tempered_smc``'s, with ``simulator_runs`` counting the
    adaptation's runs too and, after an adaptation, its settings and records in ``adaptation``.
    """
    observations = as_observations(observations)
    if seed is not None:
        torch.manual_seed(seed)
    adapted = adapt(network, simulator, observations, adaptation, progress) if adaptation and adaptation.rounds else None
    start = adapted.network if adapted is not None else network
    posterior = tempered_smc(simulator, num_particles, observations, moves=moves, ess_fraction=ess_fraction,
                             seed=seed, bridge=NetworkBridge(start, observations), model_moves=model_moves,
                             progress=progress)
    posterior.engine = "smc-ic"
    if adapted is not None:
        posterior.simulator_runs += adaptation.runs
        posterior.adaptation = dict(asdict(adaptation), runs=adaptation.runs, records=adapted.records)
    return posterior
