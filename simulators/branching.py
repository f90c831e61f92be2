"""Branching shower: a model whose trace structure depends on an earlier choice, with an exact posterior.

count ~ Poisson(3) particles enter a detector. A soft event (count < 3) deposits
one of three energy levels, ``level ~ Categorical(0.5, 0.3, 0.2)`` with energies
0, 2 and 4. A hard event (count >= 3) instead gives each of its ``count``
particles a chance to register, ``hit ~ Bernoulli(0.6)`` inside
``ppx.scope("particles")``, so the address ``particles/hit`` repeats ``count``
times and only the engine's instance counters tell the repeats apart; the
energy is 1.5 per hit. The detector adds nuisance noise ``jitter ~ Normal(0,
0.5)`` drawn with ``control=False`` and reports ``obs ~ Normal(energy + jitter,
1)``; ``energy`` is tagged. Traces therefore hold either three or ``count + 2``
sample statements.

Every latent choice the engine controls is discrete, and the jitter
marginalises analytically (``obs ~ Normal(energy, sqrt(1 + 0.5**2))``), so
``exact_posterior`` enumerates count, level and the number of hits exactly. An
importance sampler that proposes the jitter from its prior weighs each trace by
the conditional likelihood, whose prior expectation is that marginal, so it
stays unbiased for this posterior.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyro.distributions as dist
import torch

import ppx

COUNT_RATE = 3.0
HARD_COUNT = 3
"""Events with at least this many particles take the per-particle branch."""
LEVEL_PROBS = (0.5, 0.3, 0.2)
LEVEL_ENERGIES = (0.0, 2.0, 4.0)
HIT_PROB = 0.6
HIT_ENERGY = 1.5
JITTER_STD = 0.5
NOISE_STD = 1.0
NEGLECTED_MASS = 1e-12
"""The enumeration stops once the posterior mass it has not visited is provably below this."""
MAX_ENUMERATED_COUNT = 500
"""A guard against observations so far in the tail that enumerating them would take minutes."""

DEFAULT_OBSERVATION = {"obs": 6.0}
"""An energy well above the prior mean of 2.75: P(count < 3) falls from 0.42 to 0.10 and E[count]
rises from 3 to 4.45."""


def _float64(value: float) -> torch.Tensor:
    return torch.tensor(value, dtype=torch.float64)


def _soft_energy() -> torch.Tensor:
    level = ppx.sample(dist.Categorical(probs=torch.tensor(LEVEL_PROBS, dtype=torch.float64)), name="level")
    return torch.tensor(LEVEL_ENERGIES, dtype=torch.float64)[level]


def _hard_energy(count: int) -> torch.Tensor:
    hit = dist.Bernoulli(probs=_float64(HIT_PROB))
    hits = _float64(0.0)
    with ppx.scope("particles"):
        for _ in range(count):
            hits = hits + ppx.sample(hit, name="hit")
    return HIT_ENERGY * hits


def model() -> torch.Tensor:
    count = int(ppx.sample(dist.Poisson(_float64(COUNT_RATE)), name="count").item())
    energy = _soft_energy() if count < HARD_COUNT else _hard_energy(count)
    ppx.tag(energy, name="energy")
    jitter = ppx.sample(dist.Normal(_float64(0.0), _float64(JITTER_STD)), name="jitter", control=False)
    ppx.observe(dist.Normal(energy + jitter, _float64(NOISE_STD)), name="obs")
    return energy


def _log_poisson(k: int, rate: float) -> float:
    return k * math.log(rate) - rate - math.lgamma(k + 1)


def _log_poisson_tail_bound(k: int, rate: float) -> float:
    """An upper bound on log P(count > k) for k + 2 > rate, by a geometric series.

    Past k + 1 each pmf ratio P(j + 1) / P(j) = rate / (j + 1) is at most rate / (k + 2).
    """
    return _log_poisson(k + 1, rate) - math.log1p(-rate / (k + 2))


def _log_binomial(h: int, n: int, prob: float) -> float:
    return (math.lgamma(n + 1) - math.lgamma(h + 1) - math.lgamma(n - h + 1)
            + h * math.log(prob) + (n - h) * math.log1p(-prob))


def _log_normal_density(x: float, mean: float, std: float) -> float:
    return -0.5 * ((x - mean) / std) ** 2 - math.log(std * math.sqrt(2.0 * math.pi))


def _normalised(log_weights: dict, log_evidence: float) -> dict:
    return {key: math.exp(log_weight - log_evidence) for key, log_weight in sorted(log_weights.items())}


def _log_add(table: dict, key: Any, log_weight: float) -> None:
    table[key] = float(np.logaddexp(table.get(key, -math.inf), log_weight))


def exact_posterior(observations: dict[str, float]) -> dict[str, Any]:
    """The posterior over count, level, hits and energy, by enumeration.

    Each count k contributes its Poisson mass times, for a soft event, a sum over
    the three levels, or, for a hard event, a sum over the Binomial(k, 0.6)
    number of hits (which particles hit does not change the energy). The
    Poisson is unbounded, so the enumeration stops at the first k for which the
    unvisited prior mass (bounded by a geometric series) times the largest
    possible likelihood is below 1e-12 of the evidence found so far; as that is
    a lower bound on the evidence, the posterior mass left out is below 1e-12.

    Args:
        observations: ``{"obs": value}``, or ``{}`` for the prior.

    Returns:
        A dict with
        ``count``: {k: P(count = k)} for k = 0 .. ``max_count``, summing to 1;
        ``count_mean`` and ``count_std``: the posterior mean and standard deviation of count;
        ``level``: {level: P(count < 3 and level)}, summing to P(count < 3), since the
        traces of hard events have no ``level`` site;
        ``hits``: {h: P(count >= 3 and h hits)}, summing to P(count >= 3);
        ``energy``: {energy: P(energy)} for the tagged energy, summing to 1;
        ``max_count``: the largest count enumerated.

    Raises:
        ValueError: for observations other than ``obs``, or an ``obs`` so far in the
            tail that the enumeration would need more than ``MAX_ENUMERATED_COUNT`` particles.
    """
    unknown = set(observations) - {"obs"}
    if unknown:
        raise ValueError(f"expected an observation for 'obs' only, got {sorted(unknown)}")
    marginal_std = math.sqrt(NOISE_STD ** 2 + JITTER_STD ** 2)
    observed = observations.get("obs")

    def log_likelihood(energy: float) -> float:
        return 0.0 if observed is None else _log_normal_density(float(observed), energy, marginal_std)

    max_log_likelihood = log_likelihood(float(observed)) if observed is not None else 0.0
    count: dict[int, float] = {}
    level: dict[int, float] = {}
    hits: dict[int, float] = {}
    energy: dict[float, float] = {}
    log_evidence = -math.inf
    for k in range(MAX_ENUMERATED_COUNT + 1):
        log_prior_k = _log_poisson(k, COUNT_RATE)
        if k < HARD_COUNT:
            outcomes = [(level, index, math.log(prob), value)
                        for index, (prob, value) in enumerate(zip(LEVEL_PROBS, LEVEL_ENERGIES))]
        else:
            outcomes = [(hits, h, _log_binomial(h, k, HIT_PROB), HIT_ENERGY * h) for h in range(k + 1)]
        for table, key, log_prob, value in outcomes:
            log_weight = log_prior_k + log_prob + log_likelihood(value)
            _log_add(table, key, log_weight)
            _log_add(count, k, log_weight)
            _log_add(energy, value, log_weight)
        log_evidence = float(np.logaddexp(log_evidence, count[k]))
        if k + 2 > COUNT_RATE and (_log_poisson_tail_bound(k, COUNT_RATE) + max_log_likelihood
                                   < math.log(NEGLECTED_MASS) + log_evidence):
            break
    else:
        raise ValueError(f"obs = {observed} is too far in the tail: the enumeration would need "
                         f"more than {MAX_ENUMERATED_COUNT} particles")

    count_posterior = _normalised(count, log_evidence)
    mean = sum(k * prob for k, prob in count_posterior.items())
    variance = sum((k - mean) ** 2 * prob for k, prob in count_posterior.items())
    return {
        "count": count_posterior,
        "count_mean": mean,
        "count_std": math.sqrt(variance),
        "level": _normalised(level, log_evidence),
        "hits": _normalised(hits, log_evidence),
        "energy": _normalised(energy, log_evidence),
        "max_count": k,
    }


if __name__ == "__main__":
    from simulators._cli import serve_main

    serve_main(model, description=__doc__.splitlines()[0])
