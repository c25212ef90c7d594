"""MCKP solvers against brute force on small random instances (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from budget.mckp import MCKPInfeasible, as_instance, brute_force, solve_exact, solve_greedy, with_skip


@st.composite
def instances(draw, max_classes=5, max_options=4, integer=True):
    k = draw(st.integers(1, max_classes))
    m = draw(st.integers(1, max_options))
    if integer:
        vals = draw(st.lists(st.lists(st.integers(0, 20), min_size=m, max_size=m), min_size=k, max_size=k))
        costs = draw(st.lists(st.lists(st.integers(0, 15), min_size=m, max_size=m), min_size=k, max_size=k))
    else:
        # Quarter steps: exact in binary, so feasibility is not a rounding question.
        fl = st.integers(0, 40).map(lambda x: x / 4)
        vals = draw(st.lists(st.lists(fl, min_size=m, max_size=m), min_size=k, max_size=k))
        costs = draw(st.lists(st.lists(fl, min_size=m, max_size=m), min_size=k, max_size=k))
    cap = draw(st.integers(0, 15 * k))
    return np.array(vals, dtype=float), np.array(costs, dtype=float), float(cap)


@settings(max_examples=300, deadline=None)
@given(instances())
def test_exact_equals_brute_force(inst):
    v, c, cap = inst
    bf = brute_force(v, c, cap)
    if bf is None:
        with pytest.raises(MCKPInfeasible):
            solve_exact(v, c, cap, unit=1.0)
        return
    ex = solve_exact(v, c, cap, unit=1.0)
    assert ex.value == pytest.approx(bf.value)
    assert ex.cost <= cap + 1e-9
    assert ex.value == pytest.approx(v[np.arange(len(v)), ex.choice].sum())


@settings(max_examples=300, deadline=None)
@given(instances(integer=False))
def test_greedy_bounds_and_dual_price(inst):
    v, c, cap = inst
    bf = brute_force(v, c, cap)
    if bf is None:
        with pytest.raises(MCKPInfeasible):
            solve_greedy(v, c, cap)
        return
    g = solve_greedy(v, c, cap)
    rows = np.arange(len(v))
    assert g.cost <= cap + 1e-9
    # LP bound is an upper bound on the integer optimum.
    assert g.lp_bound >= bf.value - 1e-9
    # greedy >= LP bound - the dropped step, which is <= the largest single step gain.
    assert g.value >= g.lp_bound - g.gap_bound - 1e-9
    assert g.value <= bf.value + 1e-9
    if len(v):
        largest_step = float((v.max(axis=1) - v.min(axis=1)).max())
        assert g.gap_bound <= largest_step + 1e-9
    # Every chosen option maximises value - lam * cost in its class.
    priced = v - g.lam * c
    assert np.all(priced[rows, g.choice] >= priced.max(axis=1) - 1e-7)
    assert g.lam >= 0


def test_greedy_dual_price_is_break_efficiency():
    # Two classes; increments: class 0 +4 value for +2 cost (eff 2), class 1 +3 for +3 (eff 1).
    v = np.array([[0.0, 4.0], [0.0, 3.0]])
    c = np.array([[0.0, 2.0], [0.0, 3.0]])
    g = solve_greedy(v, c, 3.5)
    assert list(g.choice) == [1, 0]
    assert g.lam == pytest.approx(1.0)
    assert g.lp_bound == pytest.approx(4.0 + 1.5 / 3.0 * 3.0)
    assert g.gap_bound == pytest.approx(3.0)
    # Capacity not binding: lam = 0 and everything at the top of its hull.
    g = solve_greedy(v, c, 10)
    assert list(g.choice) == [1, 1] and g.lam == 0 and g.lp_bound == pytest.approx(7.0)


def test_greedy_drops_lp_dominated_middle_option():
    # The middle option (cost 2, value 2.5) lies below the chord from (0,0) to (4,8).
    v = np.array([[0.0, 2.5, 8.0]])
    c = np.array([[0.0, 2.0, 4.0]])
    g = solve_greedy(v, c, 2.0)
    assert g.lam == pytest.approx(2.0)
    assert g.lp_bound == pytest.approx(4.0)


def test_skip_option_makes_instance_feasible():
    v = np.array([[5.0, 9.0], [4.0, 6.0]])
    c = np.array([[3.0, 6.0], [2.0, 5.0]])
    with pytest.raises(MCKPInfeasible):
        solve_exact(v, c, 4, unit=1.0)
    vs, cs = with_skip(v, c, [1.0, 0.5])
    ex = solve_exact(vs, cs, 4, unit=1.0)
    bf = brute_force(vs, cs, 4)
    assert ex.value == pytest.approx(bf.value) == pytest.approx(5.5)
    assert list(ex.choice) == [0, 2]  # solve class 0 cheaply, skip class 1


def test_exact_rounding_keeps_choice_feasible():
    rng = np.random.default_rng(3)
    v = rng.random((30, 5))
    c = rng.random((30, 5))
    cap = float(c.min(axis=1).sum() + 3.3)
    ex = solve_exact(v, c, cap, resolution=500)
    assert ex.cost <= cap
    g = solve_greedy(v, c, cap)
    # Error bound: the DP optimum is at least the optimum at capacity - K * unit.
    unit = cap / 500
    lower = solve_exact(v, c, cap - 30 * unit, resolution=20_000)
    assert ex.value >= lower.value - 1e-9
    assert ex.value <= g.lp_bound + 1e-9


def test_ragged_and_bad_input():
    v, c = as_instance([[1.0, 2.0], [3.0]], [[1.0, 2.0], [0.5]])
    assert v.shape == (2, 2) and np.isinf(c[1, 1])
    assert solve_greedy([[1.0, 2.0], [3.0]], [[1.0, 2.0], [0.5]], 2.5).value == pytest.approx(5.0)
    with pytest.raises(ValueError, match="costs"):
        as_instance([[1.0]], [[-1.0]])
    with pytest.raises(ValueError, match="values"):
        as_instance([[1.0], [2.0]], [[1.0]])
    with pytest.raises(ValueError, match="capacity"):
        solve_greedy([[1.0]], [[1.0]], float("nan"))
