"""The vectorised hull/greedy against a straightforward per-class reference.

The reference walks each class in plain Python: lightest option first (most
valuable among equally light, first column among exact ties), then repeatedly
the option of steepest positive slope (first column among equal slopes); the
steps of all classes are ordered by decreasing efficiency, ties by (step
number, class). The vectorised code must reproduce it exactly, float for float.
"""

from __future__ import annotations

import math
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from budget import _mckp_hull
from budget._mckp_hull import hull_increments
from budget.mckp import MCKPInfeasible, as_instance, solve_greedy, with_skip


def reference_hulls(v: np.ndarray, c: np.ndarray) -> tuple[list[int], list[tuple[int, int, float, float, float]]]:
    """(base per class, [(class, to, dw, dp, eff)] in greedy order), one class at a time."""
    n_classes, width = v.shape
    v, c = v.tolist(), c.tolist()  # Python floats: the same IEEE doubles, faster scalar loops
    base: list[int] = []
    steps: list[tuple[float, int, int, int, float, float]] = []
    for k in range(n_classes):
        finite = [j for j in range(width) if math.isfinite(c[k][j])]
        cmin = min(c[k][j] for j in finite)
        cur = max((j for j in finite if c[k][j] == cmin), key=lambda j: (v[k][j], -j))
        base.append(cur)
        step = 0
        while True:
            best, nxt = 0.0, -1
            for j in range(width):
                dw, dp = c[k][j] - c[k][cur], v[k][j] - v[k][cur]
                if dw > 0 and dp > 0 and dp / dw > best:  # strict: the first column wins ties
                    best, nxt = dp / dw, j
            if nxt < 0:
                break
            dw, dp = c[k][nxt] - c[k][cur], v[k][nxt] - v[k][cur]
            steps.append((-(dp / dw), step, k, nxt, dw, dp))
            cur, step = nxt, step + 1
    steps.sort(key=lambda s: (s[0], s[1], s[2]))
    return base, [(k, to, dw, dp, -neg) for neg, _, k, to, dw, dp in steps]


def reference_greedy(v: np.ndarray, c: np.ndarray, capacity: float) -> tuple[list[int], float]:
    """Choice and dual price: apply steps in order while they fit; lam = the first misfit's efficiency."""
    base, steps = reference_hulls(v, c)
    choice = list(base)
    slack = capacity - float(c[np.arange(len(base)), base].sum())  # the solver's own (pairwise) sum
    used = 0.0
    for k, to, dw, _, eff in steps:
        if used + dw > slack * (1 + 1e-12) + 1e-300:
            return choice, eff
        used += dw
        choice[k] = to
    return choice, 0.0


def assert_same_hulls(v: np.ndarray, c: np.ndarray) -> None:
    v, c = as_instance(v, c)
    h = hull_increments(v, c)
    base, steps = reference_hulls(v, c)
    assert h.base.tolist() == base
    got = list(zip(h.inc_class.tolist(), h.inc_to.tolist(), h.inc_dw.tolist(), h.inc_dp.tolist(),
                   h.inc_eff.tolist(), strict=True))
    # Exact float equality: the same operations on the same operands.
    assert got == [(k, to, float(dw), float(dp), float(eff)) for k, to, dw, dp, eff in steps]


@st.composite
def tie_heavy(draw, max_classes=12, max_options=7):
    """Small-integer instances: duplicate options, equal costs, collinear points, missing options."""
    k = draw(st.integers(1, max_classes))
    m = draw(st.integers(1, max_options))
    vals = np.array(draw(st.lists(st.integers(-3, 6), min_size=k * m, max_size=k * m)), dtype=float).reshape(k, m)
    costs = np.array(draw(st.lists(st.integers(0, 6), min_size=k * m, max_size=k * m)), dtype=float).reshape(k, m)
    missing = np.array(draw(st.lists(st.booleans(), min_size=k * m, max_size=k * m))).reshape(k, m)
    missing[:, 0] = False  # every class keeps a finite option
    costs[missing] = np.inf
    if draw(st.booleans()):
        vals, costs = with_skip(vals, costs, draw(st.floats(-2, 4, allow_nan=False, allow_infinity=False)))
    return vals, costs


# The hull has two code paths (one numpy call per option for many classes, whole
# arrays for few); each test runs both by moving the threshold between them.
PATHS = {"per-option": 1, "whole-array": 10**9}


@pytest.mark.parametrize("path", PATHS)
@settings(max_examples=300, deadline=None)
@given(inst=tie_heavy())
def test_hulls_match_reference_with_ties(path, inst):
    with mock.patch.object(_mckp_hull, "_COLUMNS_FROM", PATHS[path]):
        assert_same_hulls(*inst)


@pytest.mark.parametrize("path", PATHS)
@settings(max_examples=150, deadline=None)
@given(inst=tie_heavy(), frac=st.floats(0, 1))
def test_greedy_matches_reference(path, inst, frac):
    with mock.patch.object(_mckp_hull, "_COLUMNS_FROM", PATHS[path]):
        check_greedy(*inst, frac)


def check_greedy(v: np.ndarray, c: np.ndarray, frac: float) -> None:
    finite = np.where(np.isfinite(c), c, 0.0)
    capacity = float(frac * finite.sum())
    try:
        g = solve_greedy(v, c, capacity)
    except MCKPInfeasible:
        lightest = np.where(np.isfinite(c), c, np.inf).min(axis=1).sum()
        assert lightest > capacity
        return
    choice, lam = reference_greedy(v, c, capacity)
    assert g.choice.tolist() == choice
    assert g.lam == lam


@pytest.mark.parametrize("seed", range(2))
def test_many_classes_match_reference(seed):
    # Above the per-option threshold at first, then compacted below it as hulls finish.
    n = 6000
    rng = np.random.default_rng(seed)
    v = rng.random((n, 12))
    c = rng.random((n, 12)) * 10
    c[rng.random(c.shape) < 0.1] = np.inf
    c[:, 3] = rng.integers(0, 3, n)  # some zero-cost and equal-cost options
    v[::7, 5] = v[::7, 9]  # duplicate values at different costs
    assert n >= _mckp_hull._COLUMNS_FROM
    assert_same_hulls(v, c)
    cap = float(c[np.isfinite(c)].mean() * n * 0.3)
    choice, lam = reference_greedy(v, c, cap)
    g = solve_greedy(v, c, cap)
    assert g.choice.tolist() == choice and g.lam == lam


def test_first_column_wins_exact_ties():
    # Two identical options (columns 1 and 2) and two collinear ones ahead of the chord's end.
    v = np.array([[0.0, 2.0, 2.0], [0.0, 2.0, 1.0], [0.0, 4.0, 2.0]])
    c = np.array([[0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [0.0, 2.0, 1.0]])
    h = hull_increments(*as_instance(v, c))
    assert h.base.tolist() == [0, 2, 0]  # class 1: column 2 is lightest
    steps = sorted(zip(h.inc_class.tolist(), h.inc_to.tolist(), strict=True))
    # Class 2: (1, 2) and (2, 4) are collinear from (0, 0); column 1 comes first and is the far point.
    assert steps == [(0, 1), (1, 1), (2, 1)]
    assert_same_hulls(v, c)


@pytest.mark.parametrize("path", PATHS)
def test_more_options_than_a_byte_counts(path):
    # 300 options: the first-match scores (per-option path) no longer fit in uint8.
    rng = np.random.default_rng(7)
    v = np.round(rng.random((20, 300)) * 50)
    c = np.round(rng.random((20, 300)) * 50)
    with mock.patch.object(_mckp_hull, "_COLUMNS_FROM", PATHS[path]):
        assert_same_hulls(v, c)
