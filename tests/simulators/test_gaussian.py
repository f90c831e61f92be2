import math

import pytest
import torch

from ppx.messages import RECORD_OBSERVE, RECORD_SAMPLE
from ppx.simulator import record_prior_trace
from simulators import gaussian


def test_posterior_of_the_reference_observations():
    mean, std = gaussian.posterior([8.0, 9.0])
    assert mean == pytest.approx(7.25)
    assert std == pytest.approx(math.sqrt(1 / 1.2))


def test_model_runs_standalone():
    mu = gaussian.model()
    assert isinstance(mu, torch.Tensor)
    assert mu.dtype == torch.float64
    assert torch.isfinite(mu)


def test_records_name_mu_and_both_observations():
    records, result = record_prior_trace(gaussian.model)
    assert [record.address for record in records] == ["mu", "obs0", "obs1"]
    assert [record.kind for record in records] == [RECORD_SAMPLE, RECORD_OBSERVE, RECORD_OBSERVE]
    assert result == pytest.approx(records[0].value)
