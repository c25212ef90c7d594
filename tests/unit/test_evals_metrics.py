"""Metrics on hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evals import metrics


def test_apgr_and_cpt_hand_computed():
    # Curve from a router on 4 queries: weak 0.5, strong 0.75 (see test_evals_replay for the table).
    share = [0.0, 0.25, 0.5, 0.75, 1.0]
    acc = [0.5, 0.75, 1.0, 1.0, 0.75]
    # AUC = 0.25 * (0.625 + 0.875 + 1.0 + 0.875) = 0.84375 -> (0.84375 - 0.5) / 0.25
    assert metrics.apgr(share, acc, 0.5, 0.75) == pytest.approx(1.375)
    assert metrics.cpt(0.5, share, acc, 0.5, 0.75) == pytest.approx(0.125)
    assert metrics.cpt(0.8, share, acc, 0.5, 0.75) == pytest.approx(0.2)


def test_apgr_random_line_is_half_and_endpoints_are_added():
    assert metrics.apgr([0.0, 1.0], [0.2, 0.6], 0.2, 0.6) == pytest.approx(0.5)
    # Only an interior point given: (0, weak) and (1, strong) are implied.
    assert metrics.apgr([0.5], [0.6], 0.2, 0.6) == pytest.approx((0.25 * 0.8 + 0.25 * 1.2 - 0.2) / 0.4)
    with pytest.raises(ValueError, match="strong_acc"):
        metrics.apgr([0.5], [0.5], 0.5, 0.5)


def test_cpt_unreached_and_first_crossing():
    assert math.isnan(metrics.cpt(0.8, [0.0, 0.5, 1.0], [0.0, 0.1, 0.5], 0.0, 1.0))
    # Non-monotone curve: first crossing of 0.5, not np.interp's undefined answer.
    assert metrics.cpt(0.5, [0.0, 0.5, 1.0], [0.0, 1.0, 0.5], 0.0, 1.0) == pytest.approx(0.25)


def test_non_decreasing_hull_and_aiq():
    costs = [1.0, 2.0, 3.0, 4.0, 2.5]
    quality = [0.5, 0.6, 0.9, 0.8, 0.55]
    hull = metrics.non_decreasing_hull(costs, quality)
    # (2, 0.6) lies below the chord (1, 0.5)-(3, 0.9); (4, 0.8) is past the peak.
    assert hull.tolist() == [[1.0, 0.5], [3.0, 0.9]]
    # Area: 2 * 0.7 (trapezoid 1..3) + 1 * 0.9 (flat 3..4) = 2.3, normalised by max cost 4.
    assert metrics.aiq(costs, quality) == pytest.approx(2.3 / 4)
    assert metrics.aiq([1.0, 4.0], [0.5, 0.75]) == pytest.approx(3 * 0.625 / 4)
    with pytest.raises(ValueError, match="max_cost"):
        metrics.aiq([0.0], [1.0])


def test_pareto_front():
    assert metrics.pareto_front([1, 2, 2, 3], [0.5, 0.4, 0.7, 0.6]) == [0, 2]


def test_tep_e3_utilisation_regret():
    assert metrics.tep(0.75, 45, 0.5, 15) == pytest.approx((0.25 / 0.5) / (30 / 15))
    assert math.isnan(metrics.tep(0.7, 10, 0.5, 10))
    assert metrics.e3(0.5, 15) == pytest.approx(0.25 / 15)
    with pytest.raises(ValueError, match="avg_tokens"):
        metrics.e3(0.5, 0)
    assert metrics.budget_utilisation(8.0, 10.0) == pytest.approx(0.8)
    assert metrics.regret(0.7, 0.75) == pytest.approx(0.05)


def test_reliability_bins():
    p = np.array([0.05, 0.05, 0.95, 0.95, 0.55])
    y = np.array([0.0, 1.0, 1.0, 1.0, 0.0])
    r = metrics.reliability_bins(p, y, bins=10)
    assert r["count"] == [2, 1, 2]
    assert r["mean_y"] == pytest.approx([0.5, 0.0, 1.0])
    # ECE = (2*|0.05-0.5| + 1*|0.55-0| + 2*|0.95-1|) / 5
    assert r["ece"] == pytest.approx((0.9 + 0.55 + 0.1) / 5)
