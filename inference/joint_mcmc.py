"""Random-walk MH whose chains also step all continuous sites at once: a reference that can follow a ridge.

Single-site RMH (``inference.mcmc``) moves one latent per step. Where the
posterior is a narrow ridge along which latents trade off (a tau's momentum
against its decay angles: the calorimeter fixes the visible products, not how
the momentum splits between them and the neutrino), each site alone can hardly
move and the chains stay where they start. Here every chain alternates the
single-site step, which changes discrete choices and trace structure, with a
joint Gaussian step of every continuous controlled site, whose covariance is
that of a population of traces sharing the chain's structure (Haario, Saksman
and Tamminen's adaptive Metropolis, with the per-structure step factors of
``inference.smc``).

The population is first the ``starts`` (say an importance-sampling posterior,
with its weights), then, every ``retune_every`` steps of burn-in, the later half
of the traces the chains have visited so far (the earlier half still remembers
where they started); each step multiplier is retuned at the same time towards
its acceptance target. From the end of burn-in on, steps and
covariances are fixed, so the kept draws come from one MH kernel on the
posterior, however the population was made.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np

from inference.mcmc import prepare_chains, run_chains, starting_traces
from inference.posterior import Posterior
from inference.smc import ModelMove, Particle, StepSizes
from inference.trace import Trace


def _starting_indices(log_weights: np.ndarray, chains: int, rng: np.random.Generator) -> np.ndarray:
    """``chains`` distinct starts drawn by weight (without replacement), topped up with the most
    probable of the rest where fewer than ``chains`` have weight."""
    weights = np.exp(log_weights - np.max(log_weights))
    weighted = np.flatnonzero(weights > 0)
    if len(weighted) >= chains:
        return rng.choice(len(weights), size=chains, replace=False, p=weights / weights.sum())
    rest = [i for i in np.argsort(-log_weights) if weights[i] == 0]
    return np.concatenate([weighted, rest[:chains - len(weighted)]]).astype(int)


def joint_metropolis_hastings(
    simulator: Any,
    num_traces: int,
    observations: Optional[Mapping[str, Any]] = None,
    *,
    chains: Optional[int] = None,
    burn_in: Optional[int] = None,
    thin: int = 1,
    starts: Optional[Sequence[Trace]] = None,
    start_log_weights: Optional[np.ndarray] = None,
    initial_traces: int = 100,
    retune_every: int = 50,
    model_moves: Sequence[ModelMove] = (),
    seed: Optional[int] = None,
    progress: bool = False,
) -> Posterior:
    """Equally weighted posterior samples from RMH chains alternating single-site and joint steps.

    Args:
        simulator: a ``RemoteSimulator``, ``SimulatorPool`` or ``LocalSimulator``.
        num_traces: samples to keep, over all chains, after burn-in and thinning.
        observations: observed values by the name of their ``observe`` statement.
        chains: independent chains; default one per pool worker (1 otherwise).
        burn_in: steps per chain discarded first, while steps adapt; default a fifth of the
            kept steps.
        thin: keep every ``thin``-th step.
        starts: traces run with the same observations (an importance-sampling posterior's,
            say) that the chains start from and the first covariances are measured on;
            default ``initial_traces`` prior traces, weighted by their likelihood.
        start_log_weights: the starts' log weights (default equal): the chains start from
            distinct starts drawn by weight, and the covariances are weighted alike.
        retune_every: burn-in steps per chain between retunes of the steps.
        model_moves: moves that know the model (``inference.smc.ModelMove``), taking every
            third step.
        seed: seeds the engine's random choices (numpy and torch).

    The returned ``Posterior`` (engine "rmh-joint") carries ``acceptance_rate`` (of the kept steps)
    and ``model_move_acceptance`` (the model moves' own rate over the kept steps; None where none applied).
    """
    if num_traces < 1 or thin < 1 or retune_every < 1:
        raise ValueError(f"num_traces, thin and retune_every must be at least 1, "
                         f"got {num_traces}, {thin} and {retune_every}")
    observations, rng, chains, kept_per_chain = prepare_chains(simulator, num_traces, observations, chains, seed)
    burn_in = kept_per_chain * thin // 5 if burn_in is None else burn_in
    drawn_from_prior = starts is None
    starts = starting_traces(simulator, starts, initial_traces, chains, observations)
    if drawn_from_prior:
        start_log_weights = np.array([trace.log_likelihood for trace in starts])
    if start_log_weights is None:
        start_log_weights = np.zeros(len(starts))
    start_log_weights = np.asarray(start_log_weights, dtype=np.float64)
    if start_log_weights.shape != (len(starts),) or np.isnan(start_log_weights).any():
        raise ValueError(f"start_log_weights must hold one number per start ({len(starts)}), "
                         f"got shape {start_log_weights.shape}")

    steps = StepSizes()
    steps.measure(starts, np.exp(start_log_weights - np.max(start_log_weights)))
    chain_states = [Particle(starts[i], steps, np.random.default_rng(rng.integers(2 ** 63)), 1.0,
                             model_moves=model_moves)
                    for i in _starting_indices(start_log_weights, chains, rng)]
    visited: list[Trace] = []

    def retune(step: int) -> None:
        visited.extend(chain.trace for chain in chain_states)
        if (step + 1) % retune_every == 0 and step + 1 < burn_in:
            recent = visited[len(visited) // 2:]  # the chains' burn-in so far, less its first half
            steps.measure(recent, np.ones(len(recent)))
            steps.retune()

    posterior = run_chains(simulator, chain_states, observations, burn_in, kept_per_chain, thin, "rmh-joint",
                           progress, burn_in_step=retune, end_burn_in=steps.model_moves.take)
    posterior.model_move_acceptance = steps.model_moves.take()
    return posterior
