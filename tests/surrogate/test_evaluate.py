"""The fidelity report on constructed cases: identical showers score perfectly, a shifted response is caught."""

from __future__ import annotations

import pytest

from inference.surrogate.evaluate import evaluate
from tests.surrogate.blobs import blob_showers


def test_identical_showers_have_zero_distances():
    showers = blob_showers(300)
    report = evaluate(showers, showers, classifier=False)  # plots: see test_cli
    assert all(row.ks == 0.0 and row.separation_power == 0.0 for row in report.rows)
    assert report.mean_ks == 0.0 and report.cell_classifier is None
    assert "response[pion]" in [row.name for row in report.rows]
    assert "mean KS 0.0000" in report.table()


def test_a_shifted_response_is_detected(one_thread):
    real, same, shifted = blob_showers(600, seed=1), blob_showers(600, seed=2), blob_showers(600, seed=2,
                                                                                            response_shift=0.03)
    settings = dict(hidden=32, epochs=10)
    fair, off = evaluate(real, same, **settings), evaluate(real, shifted, **settings)
    response, fair_response = off.row("response"), fair.row("response")
    assert response.ks > 0.3 and response.ks > 4 * fair_response.ks
    assert response.separation_power > 10 * max(fair_response.separation_power, response.reference_separation_power)
    assert abs(fair.cell_classifier.auc - 0.5) < 4 * fair.cell_classifier.standard_error
    assert off.cell_classifier.auc > 0.5 + 6 * off.cell_classifier.standard_error
    assert off.observable_classifier.auc > 0.5 + 6 * off.observable_classifier.standard_error
    assert off.summary()["observables"]["response"]["ks"] == pytest.approx(response.ks)
