"""The simulator-side primitives: standalone behaviour, handlers, addresses, Pyro models."""

from __future__ import annotations

import textwrap

import pyro
import pyro.distributions as dist
import pytest
import torch

import ppx
from ppx.runtime import Handler, run_model
from ppx.simulator import record_prior_trace


def addresses(model) -> list[str]:
    records, _ = record_prior_trace(model)
    return [r.address for r in records]


def test_standalone_model_runs_without_an_engine():
    torch.manual_seed(0)
    x = ppx.sample(dist.Normal(0.0, 1.0), name="x")
    assert isinstance(x, torch.Tensor) and x.shape == ()
    assert ppx.observe(dist.Normal(0.0, 1.0), name="y") is None
    assert ppx.observe(dist.Normal(0.0, 1.0), 2.5, name="y") == 2.5
    assert ppx.tag(3.0, name="t") == 3.0


def test_handler_can_set_values_and_sees_every_site():
    class FixEverything(Handler):
        def __init__(self):
            self.seen = []

        def process(self, site):
            if site.kind == 0:
                site.value = torch.tensor(4.0)

        def postprocess(self, site):
            self.seen.append((site.kind, site.address, float(site.value) if site.value is not None else None))

    def model():
        x = ppx.sample(dist.Normal(0.0, 1.0), name="x")
        ppx.observe(dist.Normal(x, 1.0), name="y")
        ppx.tag(x * 2, name="double")
        return x

    with FixEverything() as handler:
        assert run_model(model) == 4.0
    assert handler.seen == [(0, "x", 4.0), (1, "y", None), (2, "double", 8.0)]


def _compile(source: str):
    namespace: dict = {"ppx": ppx, "dist": dist}
    exec(compile(textwrap.dedent(source), "<simulator>", "exec"), namespace)
    return namespace["model"]


def test_unnamed_addresses_follow_call_structure_not_line_numbers():
    original = _compile("""
        def decay():
            return ppx.sample(dist.Uniform(0.0, 1.0))
        def model():
            energy = ppx.sample(dist.Normal(0.0, 1.0))
            return decay() + energy
    """)
    edited = _compile("""
        def decay():
            unrelated = 1 + 1
            return ppx.sample(dist.Uniform(0.0, 1.0))

        def model():
            note = "an unrelated line above the call"
            energy = ppx.sample(dist.Normal(0.0, 1.0))
            return decay() + energy
    """)
    assert addresses(original) == addresses(edited) == ["model", "model/decay"]


def test_scopes_prefix_names_and_repeats_share_an_address():
    def model():
        with ppx.scope("event"):
            for _ in range(3):
                with ppx.scope("particle"):
                    ppx.sample(dist.Bernoulli(0.5), name="charge")
        ppx.sample(dist.Normal(0.0, 1.0), name="energy")

    assert addresses(model) == ["event/particle/charge"] * 3 + ["energy"]


def test_pyro_models_are_served_through_ppx():
    def model():
        loc = pyro.sample("loc", dist.Normal(torch.tensor(0.0), 1.0))
        pyro.sample("data", dist.Normal(loc, 1.0), obs=torch.tensor(0.5))
        return loc

    records, result = record_prior_trace(model)
    assert [(r.kind, r.address, r.name) for r in records] == [(0, "loc", "loc"), (1, "data", "data")]
    assert float(records[1].value) == 0.5 and float(result) == float(records[0].value)


def test_unsupported_distribution_is_named():
    def model():
        return ppx.sample(dist.Normal(torch.zeros(2), 1.0).to_event(1), name="v")

    with pytest.raises(TypeError, match="expected one of the PPX distributions.*Independent"):
        record_prior_trace(model)
