import math
from dataclasses import dataclass

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

from ppx.distributions import from_wire
from ppx.messages import RECORD_OBSERVE, RECORD_SAMPLE, RECORD_TAG
from ppx.simulator import record_prior_trace
from simulators import branching

NUM_PRIOR_TRACES = 10_000
STANDARD_ERRORS = 5.0
"""Tolerance of the importance-sampling checks, in standard errors (a two-sided 5-sigma miss has
probability 6e-7 per comparison)."""
MIN_EFFECTIVE_DRAWS = 10.0
"""Values expected in fewer effective draws than this are checked pooled (see below)."""


@dataclass
class WeightedTraces:
    """The latent values of each prior trace, and its importance weight."""

    counts: np.ndarray
    levels: np.ndarray
    """-1 where the trace took the per-particle branch and has no level site."""
    hits: np.ndarray
    """-1 where the trace took the level branch and has no hit sites."""
    weights: np.ndarray

    @property
    def effective_sample_size(self) -> float:
        """Kish's (sum w)^2 / sum w^2."""
        return float(self.weights.sum() ** 2 / (self.weights ** 2).sum())

    def probability(self, mask: np.ndarray) -> float:
        return float(self.weights[mask].sum() / self.weights.sum())


@pytest.fixture(scope="module")
def prior_traces_weighted_by_default_observation() -> WeightedTraces:
    """Self-normalised importance sampling with the prior as proposal, done in this process.

    Each trace's weight is the density of its recorded ``obs`` distribution at the
    user's observed value (the simulated value is ignored). The jitter inside that
    distribution comes from the prior, which keeps the estimate unbiased for the
    jitter-marginal posterior that ``exact_posterior`` enumerates.
    """
    pyro.set_rng_seed(0)
    counts, levels, hits, observe_records = [], [], [], []
    for _ in range(NUM_PRIOR_TRACES):
        records, _ = record_prior_trace(branching.model)
        by_name = {}
        for record in records:
            by_name.setdefault(record.name, []).append(record)
        counts.append(int(by_name["count"][0].value))
        levels.append(int(by_name["level"][0].value) if "level" in by_name else -1)
        hits.append(int(sum(record.value for record in by_name["hit"])) if "hit" in by_name else -1)
        observe_records.append(by_name["obs"][0])
    type_id = observe_records[0].distribution.type_id
    batched_params = tuple(np.stack([r.distribution.params[i] for r in observe_records])
                           for i in range(len(observe_records[0].distribution.params)))
    likelihood = from_wire(type_id, batched_params)
    observed = torch.tensor(branching.DEFAULT_OBSERVATION["obs"], dtype=torch.float64)
    log_weights = likelihood.log_prob(observed).numpy()
    weights = np.exp(log_weights - log_weights.max())
    return WeightedTraces(np.array(counts), np.array(levels), np.array(hits), weights)


def _assert_within_standard_errors(estimate: float, exact: float, standard_error: float, what: str) -> None:
    assert abs(estimate - exact) <= STANDARD_ERRORS * standard_error, (
        f"{what}: importance sampling gives {estimate:.4f}, enumeration {exact:.4f}; "
        f"tolerance {STANDARD_ERRORS:g} x {standard_error:.4f}")


def _assert_probabilities_agree(traces: WeightedTraces, values: np.ndarray, exact: dict, what: str) -> None:
    """Compare the estimated P(value) with ``exact`` for every value the sample can resolve.

    Kish's ESS stands in for the number of independent posterior draws, so an estimated
    probability p has standard error sqrt(p (1 - p) / ESS). That normal approximation needs
    several effective draws in the bin: one heavy trace in a bin of probability 1e-5 would
    be a 5-sigma miss, so values with p * ESS < MIN_EFFECTIVE_DRAWS are pooled into one bin.
    """
    ess = traces.effective_sample_size
    rare = [value for value, probability in exact.items() if probability * ess < MIN_EFFECTIVE_DRAWS]
    bins = [([value], probability) for value, probability in exact.items() if value not in rare]
    bins.append((rare, sum(exact[value] for value in rare)))
    for members, probability in bins:
        standard_error = math.sqrt(probability * (1 - probability) / ess)
        estimate = traces.probability(np.isin(values, members))
        _assert_within_standard_errors(estimate, probability, standard_error, f"P({what} in {members})")


def test_model_runs_standalone():
    pyro.set_rng_seed(0)
    energies = [branching.model() for _ in range(20)]
    assert all(energy.dtype == torch.float64 and energy.dim() == 0 for energy in energies)
    assert len({float(energy) for energy in energies}) > 1


def test_trace_structure_follows_the_count():
    structures = set()
    for seed in range(40):
        pyro.set_rng_seed(seed)
        records, result = record_prior_trace(branching.model)
        count = int(records[0].value)
        addresses = [record.address for record in records]
        if count < branching.HARD_COUNT:
            assert addresses == ["count", "level", "energy", "jitter", "obs"]
            energy = branching.LEVEL_ENERGIES[int(records[1].value)]
        else:
            assert addresses == ["count"] + ["particles/hit"] * count + ["energy", "jitter", "obs"]
            assert all(record.name == "hit" for record in records[1:count + 1])
            energy = branching.HIT_ENERGY * sum(float(record.value) for record in records[1:count + 1])
        kinds = [record.kind for record in records]
        assert kinds[-3:] == [RECORD_TAG, RECORD_SAMPLE, RECORD_OBSERVE]
        assert [record.control for record in records if record.kind == RECORD_SAMPLE][-1] is False
        assert all(record.control for record in records[:-2])
        assert float(records[-3].value) == pytest.approx(energy)
        assert float(result) == pytest.approx(energy)
        structures.add(tuple(addresses))
    assert any("level" in structure for structure in structures)
    assert any("particles/hit" in structure for structure in structures)
    assert len({len(structure) for structure in structures}) >= 3


def test_exact_prior_over_count_is_poisson():
    prior = branching.exact_posterior({})
    counts = torch.arange(prior["max_count"] + 1, dtype=torch.float64)
    poisson = dist.Poisson(torch.tensor(branching.COUNT_RATE, dtype=torch.float64)).log_prob(counts).exp()
    assert list(prior["count"]) == list(range(prior["max_count"] + 1))
    assert np.allclose(list(prior["count"].values()), poisson.numpy(), rtol=1e-9, atol=1e-15)
    assert 1.0 - float(poisson.sum()) < 1e-12
    assert prior["count_mean"] == pytest.approx(branching.COUNT_RATE, abs=1e-9)
    assert prior["count_std"] == pytest.approx(math.sqrt(branching.COUNT_RATE), abs=1e-9)
    soft = float(poisson[:branching.HARD_COUNT].sum())
    assert list(prior["level"].values()) == pytest.approx([soft * p for p in branching.LEVEL_PROBS])


@pytest.mark.parametrize("observations", [branching.DEFAULT_OBSERVATION, {}, {"obs": -4.0}, {"obs": 60.0}])
def test_exact_posterior_is_normalised(observations):
    posterior = branching.exact_posterior(observations)
    assert sum(posterior["count"].values()) == pytest.approx(1.0, abs=1e-9)
    assert sum(posterior["energy"].values()) == pytest.approx(1.0, abs=1e-9)
    branches = sum(posterior["level"].values()) + sum(posterior["hits"].values())
    assert branches == pytest.approx(1.0, abs=1e-9)
    soft = sum(posterior["count"][k] for k in range(branching.HARD_COUNT))
    assert sum(posterior["level"].values()) == pytest.approx(soft, abs=1e-9)


def test_default_observation_moves_the_posterior_away_from_the_prior():
    posterior = branching.exact_posterior(branching.DEFAULT_OBSERVATION)
    assert posterior["count_mean"] > branching.COUNT_RATE + 1.0
    assert sum(posterior["count"][k] for k in range(branching.HARD_COUNT)) < 0.2


def test_exact_posterior_rejects_unknown_observations():
    with pytest.raises(ValueError, match="'obs' only"):
        branching.exact_posterior({"energy": 3.0})


def test_importance_sampling_agrees_on_the_count(prior_traces_weighted_by_default_observation):
    traces = prior_traces_weighted_by_default_observation
    exact = branching.exact_posterior(branching.DEFAULT_OBSERVATION)
    ess = traces.effective_sample_size
    assert ess > 1_500
    _assert_probabilities_agree(traces, traces.counts, exact["count"], "count")
    # The weighted mean's standard error is std(count) / sqrt(ESS), by the same reading of ESS.
    estimated_mean = float(np.sum(traces.weights * traces.counts) / traces.weights.sum())
    _assert_within_standard_errors(estimated_mean, exact["count_mean"], exact["count_std"] / math.sqrt(ess),
                                   "E[count]")


def test_importance_sampling_agrees_on_level_and_hits(prior_traces_weighted_by_default_observation):
    traces = prior_traces_weighted_by_default_observation
    exact = branching.exact_posterior(branching.DEFAULT_OBSERVATION)
    # Traces of the other branch carry -1: in the exact tables they are the missing mass.
    no_level = 1.0 - sum(exact["level"].values())
    _assert_probabilities_agree(traces, traces.levels, {**exact["level"], -1: no_level}, "level")
    no_hits = 1.0 - sum(exact["hits"].values())
    _assert_probabilities_agree(traces, traces.hits, {**exact["hits"], -1: no_hits}, "hits")
