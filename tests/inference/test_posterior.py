"""Posterior statistics and diagnostics against answers known in closed form."""

from __future__ import annotations

import json
import logging
import math
from statistics import NormalDist

import numpy as np
import pytest

from inference.posterior import Posterior
from inference.trace import Trace
from ppx.messages import RECORD_OBSERVE, RECORD_SAMPLE, RECORD_TAG, WireDistribution

NORMAL = WireDistribution(1, (np.array(0.0), np.array(1.0)))
CATEGORICAL = WireDistribution(3, (np.array([0.2, 0.3, 0.5]),))


def make_trace(mu: float, *, extra: float | None = None, vector: tuple = (),
               unnamed: float | None = None, result: float | None = None) -> Trace:
    trace = Trace()
    trace.add(RECORD_SAMPLE, "model/mu", "mu", np.array(mu), wire=NORMAL)
    if extra is not None:
        trace.add(RECORD_SAMPLE, "model/extra", "extra", np.array(extra), wire=NORMAL)
    if vector:
        trace.add(RECORD_TAG, "model/v", "v", np.array(vector, dtype=np.float64))
    if unnamed is not None:
        trace.add(RECORD_SAMPLE, "model/k", "", np.array(unnamed), wire=CATEGORICAL)
    trace.add(RECORD_OBSERVE, "model/y", "y", np.array(0.0), wire=NORMAL)
    trace.result = None if result is None else np.array(result)
    return trace


@pytest.fixture(scope="module")
def tilted() -> tuple[Posterior, float]:
    """Draws of N(0, 1) weighted by exp(a x): the weighted sample is N(a, 1)."""
    a = 0.6
    x = np.random.default_rng(1).normal(size=20_000)
    traces = [make_trace(value, vector=(value, -2 * value)) for value in x]
    return Posterior(traces, a * x), a


def test_weighted_mean_std_quantile_match_tilted_normal(tilted):
    posterior, a = tilted
    tolerance = 5 / math.sqrt(posterior.ess)
    assert posterior.mean("mu") == pytest.approx(a, abs=tolerance)
    assert posterior.std("mu") == pytest.approx(1.0, abs=tolerance)
    q = np.array([0.1, 0.5, 0.9])
    expected = [NormalDist(a, 1).inv_cdf(p) for p in q]
    np.testing.assert_allclose(posterior.quantile("mu", q), expected, atol=2 * tolerance)


def test_cdf_matches_tilted_normal_elementwise(tilted):
    posterior, a = tilted
    for z in (-1.0, 0.0, 1.5):
        expected = NormalDist().cdf(z)
        tolerance = 5 * math.sqrt(expected * (1 - expected) / posterior.ess)
        assert posterior.cdf("mu", a + z) == pytest.approx(expected, abs=tolerance)
        np.testing.assert_allclose(posterior.cdf("v", [a + z, -2 * (a + z)]), [expected, 1 - expected],
                                   atol=tolerance)


def test_vector_statistics_are_elementwise(tilted):
    posterior, a = tilted
    tolerance = 5 / math.sqrt(posterior.ess)
    np.testing.assert_allclose(posterior.mean("v"), [a, -2 * a], atol=2 * tolerance)
    np.testing.assert_allclose(posterior.std("v"), [1, 2], atol=4 * tolerance)
    quartiles = posterior.quantile("v", [0.25, 0.75])
    assert quartiles.shape == (2, 2)
    np.testing.assert_allclose(quartiles[:, 1], -2 * posterior.quantile("mu", [0.75, 0.25]))


def test_well_behaved_weights_have_small_khat_and_no_warning(tilted, caplog):
    x = np.random.default_rng(2).uniform(0.5, 1.5, size=2_000)
    with caplog.at_level(logging.WARNING, logger="inference.posterior"):
        posterior = Posterior([make_trace(0.0)] * len(x), np.log(x))
    assert posterior.khat < 0.5
    assert tilted[0].khat < 0.5
    assert not caplog.records


def test_heavy_tailed_weights_have_large_khat_and_log_a_warning(caplog):
    uniform = np.random.default_rng(3).uniform(size=2_000)
    pareto_log_weights = -np.log(uniform) / 0.5  # Pareto tail index 0.5, so k = 2
    with caplog.at_level(logging.WARNING, logger="inference.posterior"):
        posterior = Posterior([make_trace(0.0)] * len(uniform), pareto_log_weights)
    assert posterior.khat > 0.7
    assert any("unreliable" in r.getMessage() and r.name == "inference.posterior"
               for r in caplog.records)


@pytest.mark.parametrize("weights, expected", [
    ([1, 1, 2, 4], 64 / 22),
    ([1, 1, 2, 0], 16 / 6),
    ([3, 3, 3, 3], 4.0),
])
def test_kish_ess_is_exact(weights, expected):
    with np.errstate(divide="ignore"):
        log_weights = np.log(np.array(weights, dtype=np.float64)) + 100.0
    posterior = Posterior([make_trace(float(i)) for i in range(4)], log_weights)
    assert posterior.ess == pytest.approx(expected)
    assert posterior.ess_fraction == pytest.approx(expected / 4)


def test_log_evidence_is_log_mean_weight():
    posterior = Posterior([make_trace(0.0)] * 3, np.log([1.0, 2.0, 6.0]))
    assert posterior.log_evidence == pytest.approx(math.log(3.0))


def test_missing_variable_is_conditional_with_presence():
    traces = [make_trace(0.0, extra=10.0), make_trace(1.0), make_trace(2.0, extra=20.0),
              make_trace(3.0)]
    posterior = Posterior(traces, np.log([1.0, 2.0, 3.0, 4.0]))
    assert posterior.presence("extra") == pytest.approx(0.4)
    assert posterior.presence("mu") == pytest.approx(1.0)
    np.testing.assert_allclose(posterior.weights("extra"), [0.25, 0.75])
    assert posterior.mean("extra") == pytest.approx(17.5)
    assert posterior.std("extra") == pytest.approx(math.sqrt(0.25 * 7.5**2 + 0.75 * 2.5**2))
    assert posterior.values("extra").shape == (2,)


def test_unnamed_samples_are_reached_by_address_key():
    traces = [make_trace(0.0, unnamed=k) for k in (0.0, 2.0, 2.0, 1.0)]
    posterior = Posterior(traces, np.log([1.0, 1.0, 1.0, 2.0]))
    key = "model/k__Categorical__0"
    assert key in posterior.address_keys
    assert "model/k" not in posterior.variable_names
    assert posterior.probabilities(key) == pytest.approx({0: 0.2, 1: 0.4, 2: 0.4})
    with pytest.raises(KeyError, match="nowhere"):
        posterior.values("nowhere")


def test_histogram_is_weighted(tilted):
    posterior, _ = tilted
    heights, edges = posterior.histogram("mu", bins=20, range=(-4, 5))
    assert heights.sum() == pytest.approx(1.0, abs=0.01)
    density, _ = posterior.histogram("mu", bins=20, range=(-4, 5), density=True)
    assert np.sum(density * np.diff(edges)) == pytest.approx(1.0)
    assert edges[np.argmax(heights)] == pytest.approx(posterior.mean("mu"), abs=0.5)
    with pytest.raises(ValueError, match="scalar"):
        posterior.histogram("v")


def test_resample_gives_equally_weighted_posterior(tilted):
    posterior, a = tilted
    resampled = posterior.resample(4_000, np.random.default_rng(4))
    assert len(resampled) == 4_000 and not resampled.is_weighted
    assert resampled.khat is None and resampled.log_evidence is None
    assert resampled.mean("mu") == pytest.approx(a, abs=0.1)


def test_mcmc_ess_uses_chain_structure():
    rng = np.random.default_rng(5)
    draws, chains = 500, 2
    sticky = np.empty((chains, draws))
    sticky[:, 0] = rng.normal(size=chains)
    for t in range(1, draws):  # AR(1) with correlation 0.9: ESS about n / 19
        sticky[:, t] = 0.9 * sticky[:, t - 1] + math.sqrt(1 - 0.81) * rng.normal(size=chains)
    iid = rng.normal(size=(chains, draws))
    traces = [make_trace(s, extra=i) for s, i in zip(sticky.ravel(), iid.ravel())]
    posterior = Posterior(traces, chain=np.repeat(np.arange(chains), draws), engine="rmh")
    assert posterior.ess == pytest.approx(chains * draws)
    assert posterior.khat is None
    assert posterior.variable_ess("mu") < 0.2 * chains * draws
    assert posterior.variable_ess("extra") > 0.6 * chains * draws
    data = posterior.to_inference_data()
    assert data.posterior["mu"].shape == (chains, draws)
    np.testing.assert_allclose(data.posterior["mu"].values, sticky)


def test_rhat_flags_chains_that_disagree():
    """Four chains of 500 independent draws: R-hat is within 1.01 of 1 when they share a
    distribution (it spreads by about 0.001 at this size) and far above it when one chain sits
    two standard deviations away, as a chain stuck in another mode does."""
    rng = np.random.default_rng(11)
    draws, chains = 500, 4
    shared = rng.normal(size=(chains, draws))
    stuck = shared + np.array([0.0, 0.0, 0.0, 2.0])[:, None]
    traces = [make_trace(s, extra=t) for s, t in zip(shared.ravel(), stuck.ravel())]
    posterior = Posterior(traces, chain=np.repeat(np.arange(chains), draws), engine="rmh")
    assert abs(float(posterior.variable_rhat("mu")) - 1) < 0.01
    assert float(posterior.variable_rhat("extra")) > 1.2
    summary = posterior.summary()
    assert summary["r_hat"] == pytest.approx(float(posterior.variable_rhat("extra")))
    assert summary["variables"]["mu"]["r_hat"] == pytest.approx(float(posterior.variable_rhat("mu")))
    assert "R-hat" in posterior.table() and "r_hat" in posterior.table()
    weighted = Posterior(traces, np.zeros(len(traces)))
    assert np.isnan(weighted.variable_rhat("mu"))
    assert "r_hat" not in weighted.summary() and "r_hat" not in weighted.table()


def test_prior_draws_count_whole_in_the_summary_ess():
    """A variable present in few prior traces has a small ESS of its own; the run's is every draw."""
    rng = np.random.default_rng(3)
    traces = [make_trace(mu, extra=mu if i % 50 == 0 else None) for i, mu in enumerate(rng.normal(size=1000))]
    summary = Posterior(traces, None, engine="prior").summary()
    assert summary["ess"] == pytest.approx(1000)
    assert summary["variables"]["extra"]["ess"] < 100
    mcmc = Posterior(traces, None, engine="rmh").summary()
    assert mcmc["ess"] == pytest.approx(min(v["ess"] for v in mcmc["variables"].values()))


def test_summary_is_json_and_table_lists_variables(tilted):
    posterior, a = tilted
    summary = posterior.summary(truth={"mu": a, "v": [a, -2 * a]})
    json.dumps(summary, allow_nan=False)
    assert summary["engine"] == "is" and summary["num_traces"] == len(posterior)
    assert summary["khat"] == summary["variables"]["mu"]["khat"] == pytest.approx(posterior.khat)
    assert set(summary["variables"]) == {"mu", "v[0]", "v[1]"}
    assert summary["variables"]["v[1]"]["truth"] == pytest.approx(-2 * a)
    table = posterior.table(truth={"mu": a})
    assert "v[1]" in table and "truth" in table and "k-hat" in table


def test_summary_of_few_traces_has_no_infinities(caplog):
    traces = [make_trace(0.0, vector=tuple(range(40)), result=1.0), make_trace(1.0, result=2.0)]
    with caplog.at_level(logging.WARNING, logger="inference.posterior"):
        posterior = Posterior(traces, np.array([0.0, 1.0]))
    summary = posterior.summary()
    json.dumps(summary, allow_nan=False)
    assert summary["khat"] is None and caplog.records
    assert summary["variables"]["v"] == {"presence": pytest.approx(posterior.presence("v")),
                                         "shape": [40]}
    assert "result" in summary["variables"]


@pytest.mark.parametrize("log_weights, problem", [
    (np.array([0.0, np.nan]), "NaN"),
    (np.array([-np.inf, -np.inf]), "every log weight"),
    (np.array([0.0]), "shape"),
])
def test_bad_log_weights_are_rejected(log_weights, problem):
    with pytest.raises(ValueError, match=problem):
        Posterior([make_trace(0.0), make_trace(1.0)], log_weights)


def test_inference_data_round_trip(tmp_path, tilted):
    posterior, _ = tilted
    path = tmp_path / "posterior.nc"
    posterior.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["posterior.nc"]
    data = Posterior.load_inference_data(path)
    assert data.posterior["mu"].shape == (1, len(posterior))
    assert data.posterior["v"].shape == (1, len(posterior), 2)
    np.testing.assert_array_equal(data.posterior["mu"].values[0], posterior.values("mu"))
    np.testing.assert_array_equal(data.sample_stats["log_weight"].values[0],
                                  posterior.log_weights)
    assert data.attrs["engine"] == "is"
    assert float(data.attrs["khat"]) == pytest.approx(posterior.khat)
    assert float(data.attrs["ess"]) == pytest.approx(posterior.ess)


def test_inference_data_leaves_out_variables_missing_from_some_traces():
    traces = [make_trace(0.0, extra=1.0), make_trace(1.0)] * 5
    data = Posterior(traces, np.zeros(10)).to_inference_data()
    assert "mu" in data.posterior and "extra" not in data.posterior
