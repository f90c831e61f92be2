"""Single-site Metropolis-Hastings over simulator traces: lightweight MH and random-walk MH.

Each step picks one controlled sample of the current trace uniformly, proposes a
new value for it, and re-runs the simulator, reusing every other earlier value
whose address key recurs (and is still in the support) and drawing the rest
from the prior. The acceptance ratio accounts for the change in the number of
sites and for the prior densities of dropped and freshly drawn choices
(Wingate, Stuhlmüller and Goodman, 2011). ``lmh`` proposes the chosen site from
its prior; ``rmh`` takes a Gaussian random-walk step in the site's unconstrained
space (discrete sites fall back to the prior). ``control=False`` choices are
redrawn from the prior on every run and cancel out of the ratio.

During burn-in, ``rmh`` tunes each site's step size to accept about
``TARGET_ACCEPTANCE`` of its proposals (a Robbins-Monro update of the log step
after every step at that site, with a gain that decays as the site is visited
more often): a posterior a hundred times narrower than the prior, as a
calorimeter makes it, would otherwise reject almost every step of a scale set
in prior units. The steps are fixed from the end of burn-in on, so the kept
samples come from one Metropolis-Hastings kernel.

Chains run side by side: on a ``SimulatorPool`` each round's steps run in parallel.
Where latents trade off along a ridge, ``inference.joint_mcmc`` adds steps of all
continuous sites at once.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, Optional, Sequence

import numpy as np
import torch
from torch.distributions import biject_to
from tqdm.auto import tqdm

from inference.controllers import PRIOR, Replay, draw_from_prior
from inference.observations import as_observations, check_observed_names
from inference.posterior import Posterior
from inference.trace import Choice, Trace
from ppx.messages import RECORD_SAMPLE

log = logging.getLogger(__name__)

Kernel = Literal["lmh", "rmh"]

TARGET_ACCEPTANCE = 0.44
"""Acceptance rate the step-size adaptation aims at: the optimum for a one-dimensional random walk."""
ADAPTATION_DECAY = 0.6
"""The adaptation gain at a site's n-th visit is n ** -ADAPTATION_DECAY."""


def _controlled(trace: Trace) -> dict[str, Choice]:
    return {c.key: c for c in trace.choices if c.kind == RECORD_SAMPLE and c.control}


def replay_with(trace: Trace, proposed: Mapping[str, np.ndarray]) -> Replay:
    """A replay of ``trace``'s controlled values with ``proposed`` ones (by key) in their place."""
    values = {key: choice.value for key, choice in _controlled(trace).items()}
    values.update((key, np.asarray(value)) for key, value in proposed.items())
    return Replay(values)


def _log_prior(trace: Trace) -> float:
    """log prior density of the controlled choices (uncontrolled ones cancel from every ratio)."""
    return sum(c.log_prob for c in trace.choices if c.kind == RECORD_SAMPLE and c.control)


def _log_joint(trace: Trace) -> float:
    """log density of the controlled choices and the observations."""
    return trace.log_likelihood + _log_prior(trace)


def _is_discrete(distribution: torch.distributions.Distribution) -> bool:
    return bool(distribution.support.is_discrete)


def walk_jointly(sites: Sequence[Choice], factor: np.ndarray, rng: np.random.Generator
                 ) -> Optional[tuple[dict[str, np.ndarray], float]]:
    """A Gaussian step ``factor @ z`` of all ``sites`` at once, in their joint unconstrained space.

    Returns the new values by key and log q(old | new) - log q(new | old) (the summed
    change in the log Jacobians), or None where a value leaves floating point's reach.
    """
    transforms = [biject_to(choice.distribution.support) for choice in sites]
    olds = [torch.as_tensor(choice.value, dtype=torch.float64) for choice in sites]
    unconstrained = [transform.inv(old) for transform, old in zip(transforms, olds)]
    moved_flat = (torch.cat([u.reshape(-1) for u in unconstrained])
                  + torch.as_tensor(factor @ rng.normal(size=factor.shape[1]), dtype=torch.float64))
    proposed, jacobian_change, offset = {}, 0.0, 0
    for choice, transform, old, u in zip(sites, transforms, olds, unconstrained):
        moved = moved_flat[offset:offset + u.numel()].reshape(u.shape)
        offset += u.numel()
        new = transform(moved)
        if not (torch.isfinite(new).all() and torch.isfinite(transform.inv(new)).all()):
            return None
        jacobian_change += float(transform.log_abs_det_jacobian(moved, new).sum()
                                 - transform.log_abs_det_jacobian(u, old).sum())
        proposed[choice.key] = new.numpy()
    if not math.isfinite(jacobian_change):
        return None
    return proposed, jacobian_change


def random_walk(choice: Choice, step: float, rng: np.random.Generator) -> Optional[tuple[np.ndarray, float]]:
    """A Gaussian step of standard deviation ``step`` in the unconstrained space of a continuous site.

    Returns the new value and log q(old | new) - log q(new | old), which is the
    change in the log Jacobian of the map from unconstrained to constrained values;
    or None where floating point cannot represent the move: a long step whose
    value overflows or rounds onto the support's edge (a LogNormal's exp() reaching
    infinity or 0), a state of zero density the simulator need not run.
    """
    size = biject_to(choice.distribution.support).inv(torch.as_tensor(choice.value, dtype=torch.float64)).numel()
    walked = walk_jointly([choice], step * np.eye(size), rng)
    if walked is None:
        return None
    proposed, jacobian_change = walked
    return proposed[choice.key], jacobian_change


@dataclass
class _Step:
    target: Choice
    proposed: np.ndarray
    kernel_log_ratio: float
    replay: Replay


class _Chain:
    def __init__(self, trace: Trace, kernel: Kernel, scale: float, rng: np.random.Generator,
                 temperature: float = 1.0) -> None:
        self.trace = trace
        self.kernel = kernel
        self.scale = scale
        self.rng = rng
        self.accepted = 0
        self.steps = 0
        self.pending: Optional[_Step] = None
        self.adapting = False
        self.log_scales: dict[str, float] = {}
        """Per-site log step sizes (by address key), tuned while ``adapting``."""
        self.visits: dict[str, int] = {}
        self.unrun_key: Optional[str] = None
        """The site of the last step ``reject`` settles."""
        self.temperature = temperature
        """The power of the likelihood in the target (below 1 on a tempering ladder)."""

    def _log_target(self, trace: Trace) -> float:
        return self.temperature * trace.log_likelihood + _log_prior(trace)

    def step_size(self, target: Choice) -> float:
        """The random-walk step at ``target``, in its unconstrained space: the site's tuned
        scale, in prior standard deviations for a real-valued site."""
        scale = math.exp(self.log_scales.get(target.key, math.log(self.scale)))
        distribution = target.distribution
        if distribution.support == torch.distributions.constraints.real:
            return scale * float(distribution.stddev.mean())
        return scale

    def propose(self):
        """The controller for the next run: PRIOR when the trace has no controlled sample, None
        when the step is rejected without a run (``reject``)."""
        sites = _controlled(self.trace)
        if not sites:
            self.pending = None
            return PRIOR
        target = list(sites.values())[self.rng.integers(len(sites))]
        if self.kernel == "rmh" and not _is_discrete(target.distribution):
            walked = random_walk(target, self.step_size(target), self.rng)
            if walked is None:
                self.pending, self.unrun_key = None, target.key
                return None
            proposed, kernel_log_ratio = walked
        else:
            proposed = draw_from_prior(target.distribution)
            # log q(old|new) - log q(new|old) for a prior proposal at this site.
            value_old = torch.as_tensor(target.value, dtype=torch.float64)
            value_new = torch.as_tensor(proposed, dtype=torch.float64)
            kernel_log_ratio = float(target.distribution.log_prob(value_old).sum()
                                     - target.distribution.log_prob(value_new).sum())
        replay = Replay({key: c.value for key, c in sites.items()}, target.key, proposed)
        self.pending = _Step(target, proposed, kernel_log_ratio, replay)
        return replay

    def settle(self, candidate: Trace) -> None:
        """Accept or reject ``candidate``, the run made with the last proposal."""
        self.steps += 1
        step = self.pending
        if step is None:
            self.trace = candidate
            return
        old_sites, new_sites = _controlled(self.trace), _controlled(candidate)
        stale = sum(c.log_prob for key, c in old_sites.items()
                    if key != step.target.key and key not in step.replay.reused)
        fresh = sum(new_sites[key].log_prob for key in step.replay.fresh if key in new_sites)
        log_accept = (self._log_target(candidate) - self._log_target(self.trace)
                      + math.log(len(old_sites)) - math.log(max(len(new_sites), 1))
                      + step.kernel_log_ratio + stale - fresh)
        accepted = math.log(self.rng.random()) < log_accept
        if accepted:
            self.trace = candidate
            self.accepted += 1
        if self.adapting and self.kernel == "rmh" and not _is_discrete(step.target.distribution):
            self._adapt(step.target.key, 0.0 if math.isnan(log_accept) else math.exp(min(0.0, log_accept)))

    def reject(self) -> None:
        """Settle a step whose move floating point could not represent: rejected, unrun."""
        self.steps += 1
        if self.adapting:
            self._adapt(self.unrun_key, 0.0)

    def _adapt(self, key: str, acceptance_probability: float) -> None:
        visits = self.visits.get(key, 0) + 1
        self.visits[key] = visits
        gain = visits ** -ADAPTATION_DECAY
        self.log_scales[key] = (self.log_scales.get(key, math.log(self.scale))
                                + gain * (acceptance_probability - TARGET_ACCEPTANCE))


def step_chains(simulator: Any, chains: Sequence[_Chain], observations: Mapping[str, Any],
                prepare: Optional[Callable[[list[_Chain], list[Trace]], None]] = None) -> int:
    """One MH step of every chain, their runs side by side (in parallel on a pool); the runs made.

    ``prepare``, if given, sees the chains that ran and their candidates before any is settled
    (to compute, for all at once, what their targets need beyond the trace).
    """
    controllers = [chain.propose() for chain in chains]
    runnable = [i for i, controller in enumerate(controllers) if controller is not None]
    ran = simulator.run_many([controllers[i] for i in runnable], observations) if runnable else []
    if prepare is not None and ran:
        prepare([chains[i] for i in runnable], list(ran))
    candidates = dict(zip(runnable, ran))
    for index, chain in enumerate(chains):
        if index in candidates:
            chain.settle(candidates[index])
            candidates[index].release_observed_data()
        else:
            chain.reject()
    return len(ran)


def metropolis_hastings(
    simulator: Any,
    num_traces: int,
    observations: Optional[Mapping[str, Any]] = None,
    *,
    kernel: Kernel = "rmh",
    chains: Optional[int] = None,
    burn_in: Optional[int] = None,
    thin: int = 1,
    scale: float = 0.5,
    adapt: bool = True,
    initial_traces: int = 100,
    starts: Optional[Sequence[Trace]] = None,
    seed: Optional[int] = None,
    progress: bool = False,
) -> Posterior:
    """Equally weighted posterior samples from single-site MH chains.

    Args:
        simulator: a ``RemoteSimulator``, ``SimulatorPool`` or ``LocalSimulator``.
        num_traces: samples to keep, over all chains, after burn-in and thinning.
        observations: observed values by the name of their ``observe`` statement.
        kernel: ``"rmh"`` (random walk for continuous sites) or ``"lmh"`` (prior proposals).
        chains: independent chains; default one per pool worker (1 otherwise).
        burn_in: steps per chain discarded first; default a tenth of the kept steps.
        thin: keep every ``thin``-th step.
        scale: random-walk step, in prior standard deviations for real-valued
            sites and in unconstrained units otherwise; with ``adapt``, where each
            site's step starts.
        adapt: tune each site's ``rmh`` step during burn-in towards an acceptance
            rate of ``TARGET_ACCEPTANCE``.
        initial_traces: each chain starts from the most probable of this many
            prior traces (shortens burn-in).
        starts: traces to start from instead, run with the same observations (from an
            importance-sampling posterior, say); the chains take the most probable of them,
            one each, and ``initial_traces`` is ignored.
        seed: seeds the engine's random choices (numpy and torch).
    """
    if kernel not in ("lmh", "rmh"):
        raise ValueError(f"kernel must be 'lmh' or 'rmh', got {kernel!r}")
    if num_traces < 1 or thin < 1:
        raise ValueError(f"num_traces and thin must be at least 1, got {num_traces} and {thin}")
    observations, rng, chains, kept_per_chain = prepare_chains(simulator, num_traces, observations, chains, seed)
    burn_in = kept_per_chain * thin // 10 if burn_in is None else burn_in
    starts = starting_traces(simulator, starts, initial_traces, chains, observations)
    ranked = sorted(starts, key=_log_joint, reverse=True)
    chain_states = [_Chain(ranked[i], kernel, scale, np.random.default_rng(rng.integers(2 ** 63)))
                    for i in range(chains)]
    for chain in chain_states:
        chain.adapting = adapt and burn_in > 0

    def end_burn_in() -> None:
        for chain in chain_states:
            chain.adapting = False

    return run_chains(simulator, chain_states, observations, burn_in, kept_per_chain, thin, kernel, progress,
                      end_burn_in=end_burn_in)


def prepare_chains(simulator: Any, num_traces: int, observations: Optional[Mapping[str, Any]],
                   chains: Optional[int], seed: Optional[int]
                   ) -> tuple[Mapping[str, Any], np.random.Generator, int, int]:
    """The checked observations, the engine's generator (numpy and torch seeded by ``seed``), the
    number of chains (default one per pool worker) and the kept steps each owes to ``num_traces``."""
    observations = as_observations(observations)
    rng = np.random.default_rng(seed)
    if seed is not None:
        torch.manual_seed(seed)
    chains = chains or getattr(simulator, "workers", 1)
    return observations, rng, chains, math.ceil(num_traces / chains)


def starting_traces(simulator: Any, starts: Optional[Sequence[Trace]], initial_traces: int, chains: int,
                    observations: Mapping[str, Any]) -> list[Trace]:
    """``starts``, or ``initial_traces`` (at least ``chains``) prior traces run with the observations."""
    if starts is None:
        starts = simulator.prior(max(initial_traces, chains), observations)
        check_observed_names(starts, observations)
    elif len(starts) < chains:
        raise ValueError(f"{chains} chains need at least as many starting traces, got {len(starts)}")
    return list(starts)


def run_chains(simulator: Any, chains: Sequence[_Chain], observations: Mapping[str, Any], burn_in: int,
               kept_per_chain: int, thin: int, engine: str, progress: bool,
               burn_in_step: Optional[Callable[[int], None]] = None,
               end_burn_in: Optional[Callable[[], None]] = None) -> Posterior:
    """Step ``chains`` side by side through ``burn_in`` steps and ``kept_per_chain`` kept ones, ``thin``
    apart; the kept traces as a ``Posterior`` with each one's chain and the kept kernel's acceptance rate.

    ``burn_in_step(step)`` runs after each burn-in step, ``end_burn_in()`` once burn-in is over.
    """
    kept: list[Trace] = []
    chain_index: list[int] = []
    steps_per_chain = burn_in + kept_per_chain * thin
    with tqdm(total=steps_per_chain * len(chains), disable=not progress, unit="step", desc=engine) as bar:
        for step in range(steps_per_chain):
            if step == burn_in:
                if end_burn_in is not None:
                    end_burn_in()
                for chain in chains:
                    chain.accepted = chain.steps = 0  # the rate reported is that of the kept kernel
            step_chains(simulator, chains, observations)
            if step < burn_in:
                if burn_in_step is not None:
                    burn_in_step(step)
            elif (step - burn_in) % thin == 0:
                for index, chain in enumerate(chains):
                    kept.append(chain.trace)
                    chain_index.append(index)
            bar.update(len(chains))
    acceptance = sum(c.accepted for c in chains) / max(1, sum(c.steps for c in chains))
    log.info("%s acceptance rate %.3f over %d chains", engine, acceptance, len(chains))
    posterior = Posterior(kept, None, chain=np.asarray(chain_index), engine=engine)
    posterior.acceptance_rate = acceptance
    return posterior
