"""Separation power, KS distance and AUC on samples whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from inference.surrogate.classifier import classifier_auc
from inference.surrogate.metrics import (auc_standard_error, histogram_edges, ks_distance, roc_auc,
                                         separation_power, separation_power_of_histograms)

N = 5000


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_separation_power_is_zero_for_identical_and_one_for_disjoint_histograms():
    assert separation_power_of_histograms([1, 4, 0, 5], [2, 8, 0, 10]) == 0.0
    assert separation_power_of_histograms([3, 0, 0], [0, 0, 7]) == pytest.approx(1.0)
    sample = np.random.default_rng(1).normal(size=1000)
    assert separation_power(sample, sample.copy()) == 0.0


def test_separation_power_of_a_hand_made_pair():
    # p = (0.5, 0.5), q = (0.25, 0.75): 0.5 * (0.0625 / 0.75 + 0.0625 / 1.25)
    assert separation_power_of_histograms([1, 1], [1, 3]) == pytest.approx(0.5 * (0.0625 / 0.75 + 0.0625 / 1.25))


def test_separation_power_counts_values_outside_the_reference_range():
    reference = np.linspace(0.0, 1.0, 100)
    outside = reference + 5.0  # every value in the overflow bin
    assert separation_power(reference, outside, bins=10) == pytest.approx(1.0)


def test_shift_is_detected_well_above_the_finite_sample_floor(rng):
    a, b, shifted = rng.normal(size=N), rng.normal(size=N), rng.normal(0.5, 1.0, size=N)
    # Same distribution: separation power about bins * (2 / N) / 4 = 5e-3; a 0.5 sigma shift gives d^2 / 4 = 0.06.
    same, moved = separation_power(a, b), separation_power(a, shifted)
    assert same < 0.015 and moved > 0.04 and moved > 5 * same
    # KS of one distribution stays below its 0.1% critical value 1.95 sqrt(2 / N); the shift gives about 0.2.
    assert ks_distance(a, b) < 1.95 * math.sqrt(2 / N)
    assert ks_distance(a, shifted) > 0.15
    assert ks_distance(a, a.copy()) == 0.0


@pytest.mark.parametrize("a, b, expected", [
    ([1.0, 2.0, 3.0], [2.5], 2 / 3),        # the CDFs differ most just below 2.5: 2/3 against 0
    ([1.0, 1.0, 2.0], [1.0, 2.0, 2.0], 1 / 3),  # ties: compared after all equal values
    ([0.0, 1.0], [5.0, 6.0], 1.0),
])
def test_ks_of_hand_made_cases(a, b, expected):
    assert ks_distance(a, b) == pytest.approx(expected)
    assert ks_distance(b, a) == pytest.approx(expected)


def test_histogram_edges_of_a_constant_sample_still_bin_it():
    edges = histogram_edges(np.full(10, 3.0), bins=4)
    assert edges[0] < 3.0 < edges[-1]


@pytest.mark.parametrize("scores, labels, expected", [
    ([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], 0.75),
    ([1, 1, 2, 2], [0, 1, 0, 1], 0.5),
    ([0.0, 0.1, 0.9, 1.0], [0, 0, 1, 1], 1.0),
    ([0.0, 0.1, 0.9, 1.0], [1, 1, 0, 0], 0.0),
    ([3, 3, 3, 3, 3], [0, 1, 1, 0, 1], 0.5),
])
def test_roc_auc_of_hand_made_cases(scores, labels, expected):
    assert roc_auc(scores, labels) == pytest.approx(expected)


def test_roc_auc_needs_both_classes():
    with pytest.raises(ValueError, match="both classes"):
        roc_auc([0.1, 0.2], [1, 1])


def test_classifier_cannot_tell_one_distribution_from_itself_but_sees_a_shift(rng, one_thread):
    real, same = rng.normal(size=(1500, 5)), rng.normal(size=(1500, 5))
    shifted = same.copy()
    shifted[:, 0] += 1.0  # the best possible AUC is Phi(1 / sqrt 2) = 0.76
    settings = dict(hidden=32, epochs=15, seed=0)
    identical = classifier_auc(real, same, **settings)
    # The test part is unseen, so for one distribution the AUC is 0.5 give or take its standard error.
    assert identical.standard_error == pytest.approx(auc_standard_error(450, 450))
    assert abs(identical.auc - 0.5) < 4 * identical.standard_error
    itself = classifier_auc(real, real, **settings)
    assert abs(itself.auc - 0.5) < 4 * itself.standard_error
    detected = classifier_auc(real, shifted, **settings)
    assert detected.auc > 0.5 + 6 * detected.standard_error


def test_classifier_rejects_mismatched_features():
    with pytest.raises(ValueError, match="same features"):
        classifier_auc(np.zeros((10, 3)), np.zeros((10, 4)))
