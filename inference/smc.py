"""Sequential Monte Carlo over a likelihood-tempered ladder: a sampler that mixes where chains stick.

The particles start as prior traces and pass through the targets
p(x) p(y | x) ** beta, beta rising from 0 to 1. Each stage raises beta as far as
keeps the effective sample size of the reweighted particles at
``ess_fraction`` of their number (found by bisection), resamples them
systematically and moves each by ``moves`` single-site random-walk MH steps
that leave the stage's target invariant (the kernel of ``inference.mcmc`` with
the likelihood raised to beta). A posterior far narrower than the prior is so
reached in many small steps, and each mode keeps the share of the particles
its posterior mass gives it, where single RMH chains stay in the mode they
start in. The product over stages of the mean incremental weight estimates
the evidence p(y) (Del Moral, Doucet and Jasra, 2006).

Moves alternate between two kernels. The single-site step walks one site by the
spread of its particles' unconstrained values on the stage times a multiplier,
retuned after every stage towards ``TARGET_ACCEPTANCE``: the step shrinks as
the targets narrow. The joint step walks every continuous controlled site at
once, with the weighted covariance of the particles that share the trace's
sites (its structure) times a multiplier retuned towards
``JOINT_TARGET_ACCEPTANCE``: where the posterior is a narrow ridge along which
the latents trade off (a tau's momentum against its decay angles), one site at
a time can hardly move while the joint step follows the ridge. A joint step
whose run changes the trace's structure is rejected; structure changes are the
single-site step's. ``model_moves`` (``ModelMove``) add a third kernel, written for one
model: a deterministic change of several sites that keeps what the observations pin
down (a tau's momentum along the neutrino's mass shell, its image kept), judged like a
joint step with the move's own proposal ratio and change of measure.

With a ``bridge`` (``inference.ic.bridge.NetworkBridge``) the ladder starts from
a proposal q instead of the prior: the targets are q(x) ** (1 - beta) p(x, y) ** beta,
the particles start as q's draws, and each stage reweights by the importance
weight p(x, y) / q(x) to the power of beta's rise. The moves are the same, on
these targets; the evidence estimate still holds, as q is normalised.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Mapping, Optional, Protocol, Sequence

import numpy as np
import torch
from torch.distributions import biject_to
from tqdm.auto import tqdm

from inference.controllers import Replay
from inference.mcmc import (TARGET_ACCEPTANCE, _Chain, _controlled, _is_discrete, replay_with, step_chains,
                            walk_jointly)
from inference.observations import as_observations, check_observed_names
from inference.posterior import Posterior, _log_mean_exp
from inference.trace import Choice, Trace
from ppx.messages import RECORD_SAMPLE

log = logging.getLogger(__name__)

RETUNE_GAIN = 1.5
"""log multiplier change per unit of acceptance-rate error, after each stage."""
INITIAL_SCALE = 0.5
"""The step, in prior standard deviations, at a site no particle has spread along yet."""
JOINT_TARGET_ACCEPTANCE = 0.234
"""The optimal acceptance rate of a random walk in many dimensions (Roberts, Gelman and Gilks, 1997)."""
MIN_SHARERS_PER_DIMENSION = 2
"""A structure's covariance is estimated only from at least this many particles per dimension (and 4)."""


class ModelMove(Protocol):
    """A move that knows the model: a deterministic change of several sites at once, which a
    random walk would not find (``simulators.tau.mass_shell.MassShellMove``)."""

    def propose(self, trace: Trace, rng: np.random.Generator) -> Optional[tuple[dict[str, np.ndarray], float]]:
        """New values of some controlled sites, by key, and what the acceptance ratio needs besides
        the targets' ratio (the log proposal ratio plus the log change of measure; -inf where the
        step leaves the prior's support); None where the move does not apply to ``trace``."""


class Bridge(Protocol):
    """A normalised proposal q that starts the ladder (``inference.ic.bridge.NetworkBridge``)."""

    def draw(self, simulator: Any, num_traces: int, observations: Mapping[str, Any]) -> list[Trace]:
        """Traces drawn from q."""

    def log_density_ratio(self, traces: Sequence[Trace]) -> np.ndarray:
        """log q(x) - log p(x) per trace (over the controlled choices; the rest cancel)."""


def _relative_ess(log_weights: np.ndarray) -> float:
    weights = np.exp(log_weights - np.max(log_weights))
    return float(weights.sum() ** 2 / np.sum(weights ** 2) / len(weights))


def next_increment(log_ratios: np.ndarray, remaining: float, ess_fraction: float) -> float:
    """The rise in beta, at most ``remaining``, after which the particles reweighted by
    exp(rise * log_ratios) keep ``ess_fraction`` of their number as effective sample size.

    ``log_ratios`` are each particle's log of the target at beta 1 over the one at beta 0:
    its log-likelihood, or log p(x, y) / q(x) on a ladder from a bridge q."""
    if _relative_ess(remaining * log_ratios) >= ess_fraction:
        return remaining
    low, high = 0.0, remaining
    for _ in range(60):
        middle = 0.5 * (low + high)
        if _relative_ess(middle * log_ratios) >= ess_fraction:
            low = middle
        else:
            high = middle
    return low if low > 0 else high


def systematic_resample(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``len(weights)`` offspring, each particle getting floor or ceil of n w_i of them."""
    count = len(weights)
    positions = (rng.random() + np.arange(count)) / count
    return np.minimum(np.searchsorted(np.cumsum(weights) / np.sum(weights), positions), count - 1)


def _unconstrained(choice: Choice) -> np.ndarray:
    value = torch.as_tensor(choice.value, dtype=torch.float64)
    return biject_to(choice.distribution.support).inv(value).numpy().ravel()


def _continuous_sites(trace: Trace) -> list[Choice]:
    return [choice for choice in _controlled(trace).values() if not _is_discrete(choice.distribution)]


def _structure(sites: Sequence[Choice]) -> tuple:
    """What a joint step needs to be shared: the continuous sites' keys and shapes, in order."""
    return tuple((choice.key, np.shape(choice.value)) for choice in sites)


class _Multipliers:
    """Log step multipliers by key (a site's or a structure's), retuned after every stage
    towards one acceptance rate."""

    def __init__(self, target_acceptance: float) -> None:
        self.target_acceptance = target_acceptance
        self.log_multipliers: dict[Any, float] = {}
        self._acceptance: dict[Any, list[float]] = {}

    def scaled(self, key: Any, base: Any) -> Any:
        return None if base is None else base * math.exp(self.log_multipliers.get(key, 0.0))

    def record(self, key: Any, acceptance_probability: float) -> None:
        totals = self._acceptance.setdefault(key, [0.0, 0.0])
        totals[0] += acceptance_probability
        totals[1] += 1

    def retune(self) -> None:
        for key, (accepted, visits) in self._acceptance.items():
            self.log_multipliers[key] = (self.log_multipliers.get(key, 0.0)
                                         + RETUNE_GAIN * (accepted / visits - self.target_acceptance))
        self._acceptance.clear()


class AcceptanceTally:
    """The mean acceptance probability of one kind of step since it was last taken."""

    def __init__(self) -> None:
        self.total, self.count = 0.0, 0

    def record(self, acceptance_probability: float) -> None:
        self.total += acceptance_probability
        self.count += 1

    def take(self) -> Optional[float]:
        """The mean so far (None when no step was tallied), and a fresh start."""
        rate = self.total / self.count if self.count else None
        self.total, self.count = 0.0, 0
        return rate


class StepSizes:
    """The random-walk steps on the current stage, shared by the particles: each continuous
    site's for single-site steps, and each structure's covariance factor for joint steps."""

    def __init__(self) -> None:
        self.spreads: dict[str, float] = {}
        self.factors: dict[tuple, np.ndarray] = {}
        self.sites = _Multipliers(TARGET_ACCEPTANCE)
        self.structures = _Multipliers(JOINT_TARGET_ACCEPTANCE)
        self.model_moves = AcceptanceTally()

    def measure(self, traces: Sequence[Trace], weights: np.ndarray) -> None:
        self._measure_sites(traces, weights)
        self._measure_structures(traces, weights)

    def _measure_structures(self, traces: Sequence[Trace], weights: np.ndarray) -> None:
        """Each shared structure's Cholesky factor of the particles' weighted covariance, scaled by
        2.38 / sqrt(dimension) (the optimal random walk for a Gaussian target)."""
        groups: dict[tuple, list[int]] = {}
        vectors = []
        for i, trace in enumerate(traces):
            sites = _continuous_sites(trace)
            vectors.append(np.concatenate([_unconstrained(c) for c in sites]) if sites else np.zeros(0))
            if sites:
                groups.setdefault(_structure(sites), []).append(i)
        self.factors = {}
        for structure, members in groups.items():
            dimension = len(vectors[members[0]])
            group_weights = weights[members]
            if len(members) < max(4, MIN_SHARERS_PER_DIMENSION * dimension) or group_weights.sum() <= 0:
                continue
            relative = group_weights / group_weights.max()
            if relative.sum() ** 2 / np.sum(relative ** 2) < 2:
                continue  # one trace holds the weight: there is no spread to measure
            stacked = np.stack([vectors[i] for i in members])
            covariance = np.atleast_2d(np.cov(stacked, rowvar=False, aweights=group_weights))
            # A little ridge keeps the factor defined where few particles, or copies, span the space.
            covariance += 1e-6 * np.diag(np.diag(covariance)) + 1e-12 * np.eye(dimension)
            try:
                factor = np.linalg.cholesky(covariance)
            except np.linalg.LinAlgError:
                continue
            if np.all(np.isfinite(factor)):
                self.factors[structure] = factor * 2.38 / math.sqrt(dimension)

    def joint_factor(self, structure: tuple) -> Optional[np.ndarray]:
        return self.structures.scaled(structure, self.factors.get(structure))

    def record_joint(self, structure: tuple, acceptance_probability: float) -> None:
        self.structures.record(structure, acceptance_probability)

    def _measure_sites(self, traces: Sequence[Trace], weights: np.ndarray) -> None:
        """Each site's weighted standard deviation over the particles, in its unconstrained space."""
        values: dict[str, list[np.ndarray]] = {}
        holders: dict[str, list[float]] = {}
        for trace, weight in zip(traces, weights):
            for choice in trace.choices:
                if choice.kind == RECORD_SAMPLE and choice.control and not _is_discrete(choice.distribution):
                    values.setdefault(choice.key, []).append(_unconstrained(choice))
                    holders.setdefault(choice.key, []).append(weight)
        for key, site_values in values.items():
            site_weights = np.asarray(holders[key])
            if len(site_values) < 2 or site_weights.sum() <= 0 or len({v.shape for v in site_values}) > 1:
                continue
            stacked = np.stack(site_values)
            mean = np.average(stacked, axis=0, weights=site_weights)
            spread = float(np.sqrt(np.average((stacked - mean) ** 2, axis=0, weights=site_weights)).mean())
            if spread > 0 and math.isfinite(spread):
                self.spreads[key] = spread

    def step(self, key: str) -> Optional[float]:
        return self.sites.scaled(key, self.spreads.get(key))

    def record(self, key: str, acceptance_probability: float) -> None:
        self.sites.record(key, acceptance_probability)

    def retune(self) -> None:
        """Move each visited site's and structure's multiplier towards its target acceptance rate."""
        self.sites.retune()
        self.structures.retune()


class _SeveralSiteStep:
    """A pending step of several sites at once (a joint step's or a model move's): the structure it
    keeps, its replay, its kernel's log ratio, and whether a model move made it."""

    def __init__(self, structure: tuple, replay: Replay, kernel_log_ratio: float, by_model: bool) -> None:
        self.structure = structure
        self.replay = replay
        self.kernel_log_ratio = kernel_log_ratio
        self.by_model = by_model


class Particle(_Chain):
    """An RMH chain on the stage's tempered target whose steps come from the population;
    it cycles through single-site steps, joint steps and, given ``model_moves``, one of
    those (picked at random), starting with a single-site step. A turn whose step cannot
    be made (no covariance yet, a move that does not apply) takes a single-site step.

    ``density_ratio`` is log q(x) - log p(x) of its trace under the ladder's bridge (0
    without one), and ``candidate_density_ratio`` the same of the trace its step ran.
    """

    def __init__(self, trace: Trace, steps: StepSizes, rng: np.random.Generator, temperature: float,
                 density_ratio: float = 0.0, model_moves: Sequence[ModelMove] = ()) -> None:
        super().__init__(trace, "rmh", INITIAL_SCALE, rng, temperature)
        self.density_ratio = density_ratio
        self.candidate_density_ratio = 0.0
        self.step_sizes = steps
        self.adapting = True  # so that every step's acceptance reaches ``_adapt``
        self.model_moves = tuple(model_moves)
        self.turns = ("single", "joint", "model") if self.model_moves else ("single", "joint")
        self.turn = 0
        self.unrun: Optional[str] = None
        """Which kind of several-site step ``reject`` settles ("joint" or "model"), if any."""
        self.joint_structure: Optional[tuple] = None

    def _log_target(self, trace: Trace) -> float:
        ratio = self.density_ratio if trace is self.trace else self.candidate_density_ratio
        return super()._log_target(trace) + (1.0 - self.temperature) * ratio

    def log_weight(self) -> float:
        """log p(x, y) - log q(x) of the trace: what a stage's reweighting raises to beta's rise."""
        return self.trace.log_likelihood - self.density_ratio

    def step_size(self, target: Choice) -> float:
        step = self.step_sizes.step(target.key)
        return super().step_size(target) if step is None else step

    def _adapt(self, key: str, acceptance_probability: float) -> None:
        self.step_sizes.record(key, acceptance_probability)

    def propose(self):
        kind = self.turns[self.turn % len(self.turns)]
        self.turn += 1
        self.unrun = None
        if kind == "joint":
            sites = _continuous_sites(self.trace)
            structure = _structure(sites)
            factor = self.step_sizes.joint_factor(structure) if sites else None
            if factor is not None:
                return self._propose_jointly(sites, structure, factor)
        elif kind == "model":
            move = self.model_moves[self.rng.integers(len(self.model_moves))]
            proposal = move.propose(self.trace, self.rng)
            if proposal is not None:
                return self._propose_by_model(*proposal)
        return super().propose()

    def _propose_jointly(self, sites: list[Choice], structure: tuple, factor: np.ndarray):
        self.joint_structure = structure
        walked = walk_jointly(sites, factor, self.rng)
        if walked is None:
            self.pending, self.unrun = None, "joint"
            return None
        proposed, kernel_log_ratio = walked
        replay = replay_with(self.trace, proposed)
        self.pending = _SeveralSiteStep(structure, replay, kernel_log_ratio, by_model=False)
        return replay

    def _propose_by_model(self, proposed: dict[str, np.ndarray], log_ratio: float):
        if not math.isfinite(log_ratio):  # outside the prior's support: rejected without a run
            self.pending, self.unrun = None, "model"
            return None
        replay = replay_with(self.trace, proposed)
        self.pending = _SeveralSiteStep(_structure(_continuous_sites(self.trace)), replay, log_ratio, by_model=True)
        return replay

    def settle(self, candidate: Trace) -> None:
        self._settle(candidate)
        if self.trace is candidate:
            self.density_ratio = self.candidate_density_ratio

    def _settle(self, candidate: Trace) -> None:
        step = self.pending
        if not isinstance(step, _SeveralSiteStep):
            super().settle(candidate)
            return
        self.steps += 1
        # Every proposed value must have been replayed, and no site added or dropped: the step keeps
        # the structure, and one that leaves it is rejected (the indicator is symmetric, so the
        # kernel stays reversible).
        same = (not step.replay.fresh
                and _structure(_continuous_sites(candidate)) == step.structure
                and set(_controlled(candidate)) == set(_controlled(self.trace)))
        log_accept = (self._log_target(candidate) - self._log_target(self.trace) + step.kernel_log_ratio
                      if same else -math.inf)
        if math.log(self.rng.random()) < log_accept:
            self.trace = candidate
            self.accepted += 1
        probability = 0.0 if math.isnan(log_accept) else math.exp(min(0.0, log_accept))
        if step.by_model:
            self.step_sizes.model_moves.record(probability)
        else:
            self.step_sizes.record_joint(step.structure, probability)

    def reject(self) -> None:
        if self.unrun is None:
            super().reject()
            return
        self.steps += 1
        if self.unrun == "model":
            self.step_sizes.model_moves.record(0.0)
        else:
            self.step_sizes.record_joint(self.joint_structure, 0.0)


def _move(simulator: Any, particles: list[Particle], observations: Mapping[str, Any], moves: int,
          bridge: Optional[Bridge]) -> tuple[float, int]:
    """``moves`` MH steps of every particle, run side by side: the fraction accepted, and the runs made."""

    def score(moved: list[Particle], candidates: list[Trace]) -> None:
        for particle, ratio in zip(moved, bridge.log_density_ratio(candidates)):
            particle.candidate_density_ratio = float(ratio)

    accepted_before = sum(particle.accepted for particle in particles)
    runs = sum(step_chains(simulator, particles, observations, score if bridge is not None else None)
               for _ in range(moves))
    accepted = sum(particle.accepted for particle in particles) - accepted_before
    return accepted / (moves * len(particles)), runs


def tempered_smc(
    simulator: Any,
    num_particles: int,
    observations: Optional[Mapping[str, Any]] = None,
    *,
    moves: int = 20,
    ess_fraction: float = 0.5,
    max_stages: int = 1000,
    seed: Optional[int] = None,
    bridge: Optional[Bridge] = None,
    model_moves: Sequence[ModelMove] = (),
    progress: bool = False,
) -> Posterior:
    """Weighted posterior particles from sequential Monte Carlo on a tempering ladder.

    Args:
        simulator: a ``RemoteSimulator``, ``SimulatorPool`` or ``LocalSimulator``.
        num_particles: the population's size (the traces returned).
        observations: observed values by the name of their ``observe`` statement.
        moves: single-site RMH steps per particle on each stage; more decorrelate
            the copies resampling makes, at ``num_particles`` runs each.
        ess_fraction: the effective sample size, as a fraction of the particles,
            that each stage's reweighting keeps; closer to 1 makes more, smaller stages.
        max_stages: the ladder's longest allowed length.
        seed: seeds the engine's random choices (numpy and torch).
        bridge: a proposal to start the ladder from instead of the prior (see the module);
            its draws count among ``simulator_runs``.
        model_moves: moves that know the model (``ModelMove``), taking every third step.

    The returned ``Posterior`` (engine "smc") carries ``temperatures`` (the
    ladder, from 0 to 1), ``acceptance_rates`` (per stage), ``simulator_runs``
    (the prior draws and every move run), ``model_move_acceptance`` (per stage; None where no
    model move applied) and the SMC estimate of ``log_evidence``.

    Raises:
        RuntimeError: the ladder would need more than ``max_stages`` stages.
    """
    if num_particles < 2:
        raise ValueError(f"num_particles must be at least 2, got {num_particles}")
    if moves < 1:
        raise ValueError(f"moves must be at least 1, got {moves}")
    if not 0.0 < ess_fraction < 1.0:
        raise ValueError(f"ess_fraction must lie strictly between 0 and 1, got {ess_fraction}")
    observations = as_observations(observations)
    rng = np.random.default_rng(seed)
    if seed is not None:
        torch.manual_seed(seed)
    if bridge is None:
        traces, density_ratios = simulator.prior(num_particles, observations), np.zeros(num_particles)
    else:
        traces = bridge.draw(simulator, num_particles, observations)
        density_ratios = bridge.log_density_ratio(traces)
    check_observed_names(traces, observations)
    steps = StepSizes()
    particles = [Particle(trace, steps, rng, 0.0, ratio, model_moves) for trace, ratio in zip(traces, density_ratios)]
    temperature, log_evidence = 0.0, 0.0
    temperatures, acceptance_rates, model_move_acceptance = [0.0], [], []
    simulator_runs = num_particles
    with tqdm(total=1000, disable=not progress, unit="‰ beta", desc="smc") as bar:
        while True:
            log_ratios = np.array([particle.log_weight() for particle in particles])
            if np.isnan(log_ratios).any() or not np.isfinite(log_ratios).any():
                raise ValueError("no particle has a finite likelihood of the observations "
                                 f"{list(observations)}: they are NaN or impossible under the model")
            increment = next_increment(log_ratios, 1.0 - temperature, ess_fraction)
            log_weights = increment * log_ratios
            log_evidence += _log_mean_exp(log_weights)
            temperature = 1.0 if increment == 1.0 - temperature else temperature + increment
            temperatures.append(temperature)
            weights = np.exp(log_weights - log_weights.max())
            steps.measure([particle.trace for particle in particles], weights)
            if temperature < 1.0:
                offspring = systematic_resample(weights, rng)
                particles = [Particle(particles[i].trace, steps, rng, temperature, particles[i].density_ratio,
                                      model_moves) for i in offspring]
            else:
                for particle in particles:
                    particle.temperature = 1.0
            acceptance_rate, runs = _move(simulator, particles, observations, moves, bridge)
            acceptance_rates.append(acceptance_rate)
            model_move_acceptance.append(steps.model_moves.take())
            simulator_runs += runs
            steps.retune()
            bar.update(round(1000 * temperature) - bar.n)
            bar.set_postfix(stage=len(acceptance_rates), accepted=f"{acceptance_rates[-1]:.2f}")
            if temperature == 1.0:
                break
            if len(acceptance_rates) >= max_stages:
                raise RuntimeError(f"the tempering ladder reached max_stages={max_stages} at beta "
                                   f"{temperature:.3g}; raise max_stages or lower ess_fraction")
    log.info("smc: %d stages, acceptance %.3f on the last", len(acceptance_rates), acceptance_rates[-1])
    # The last stage moved its particles without resampling them: they keep that stage's weights.
    posterior = Posterior([particle.trace for particle in particles], log_weights, engine="smc",
                          log_evidence=log_evidence)
    posterior.temperatures = temperatures
    posterior.acceptance_rates = acceptance_rates
    posterior.model_move_acceptance = model_move_acceptance
    posterior.simulator_runs = simulator_runs
    return posterior
