"""Online pricing policies: choice rule, thresholds, dual pacing, and the simulator."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from budget.online import (
    DualPacer,
    PacingState,
    ThresholdPolicy,
    _lambert_w0,
    choose_option,
    ect_threshold,
    zcl_threshold,
)
from budget.simulate import load_llmrouter, offline_optimum, run_policies, shared_data_dir, table_from_records


def test_choose_option_prices_filters_and_falls_back():
    vals, costs = [0.2, 0.6, 0.9], [1.0, 2.0, 5.0]
    assert choose_option([0.5, 0.5], [2.0, 1.0], 0.0).index == 1  # ties go to the cheaper option
    assert choose_option(vals, costs, 0.0).index == 2
    assert choose_option(vals, costs, 0.25).index == 1
    assert choose_option(vals, costs, 1.0).index == 0
    assert choose_option(vals, costs, 0.0, remaining=2.5).index == 1
    d = choose_option(vals, costs, 0.0, remaining=0.5)
    assert (d.index, d.reason, d.cost) == (0, "cheapest", 1.0)
    d = choose_option(vals, costs, 0.0, remaining=0.5, must_choose=False)
    assert (d.index, d.reason) == (None, "refused")
    with pytest.raises(ValueError, match="costs"):
        choose_option([1.0], [1.0, 2.0], 0.0)


def test_zcl_threshold_shape():
    low, high = 0.5, 8.0
    beta = 1 / (1 + math.log(high / low))
    assert zcl_threshold(0.0, low, high) == low
    assert zcl_threshold(beta, low, high) == pytest.approx(low)
    assert zcl_threshold(1.0, low, high) == pytest.approx(high)
    zs = np.linspace(0, 1, 50)
    psi = [zcl_threshold(z, low, high) for z in zs]
    assert all(b >= a - 1e-12 for a, b in zip(psi, psi[1:], strict=False))
    with pytest.raises(ValueError, match="low"):
        zcl_threshold(0.5, 2.0, 1.0)


def test_ect_threshold_shape_and_lambert():
    for x in (0.0, 0.1, 1.0, 7.5, 1e4):
        w = _lambert_w0(x)
        assert w * math.exp(w) == pytest.approx(x, rel=1e-10, abs=1e-12)
    low, high, alpha = 0.5, 8.0, 0.3
    assert ect_threshold(0.1, low, high, alpha) == low
    assert ect_threshold(1.0, low, high, alpha) == pytest.approx(high)
    after = [ect_threshold(z, low, high, alpha) for z in np.linspace(alpha, 1, 20)]
    assert all(b > a for a, b in zip(after, after[1:], strict=False))
    with pytest.raises(ValueError, match="alpha"):
        ect_threshold(0.5, low, high, 1.0)


def test_dual_pacer_moves_price_toward_plan():
    p = DualPacer(budget=100.0, horizon=100, eta=0.1, lam0=0.5)
    s = p.initial()
    assert s == PacingState(lam=0.5)
    over = p.update(s, 3.0)  # planned 1.0 per step
    assert over.lam == pytest.approx(0.5 + 0.1 * 2.0) and over.spent == 3.0 and over.step == 1
    under = p.update(s, 0.0)
    assert under.lam == pytest.approx(0.4)
    assert p.update(PacingState(lam=0.05), 0.0).lam == 0.0  # clipped at zero
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.lam = 1.0  # type: ignore[misc]
    adaptive = DualPacer(budget=100.0, horizon=100, eta=0.1, adaptive=True)
    assert adaptive.planned(PacingState(spent=90.0, step=95)) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="plan"):
        DualPacer(budget=1.0, horizon=3, eta=0.1, plan=(1.0,))


def test_dual_pacer_holds_back_floor_for_later_requests():
    p = DualPacer(budget=10.0, horizon=5, eta=0.0, floor_cost=1.0)
    # Step 0 with 4 later requests: only 10 - 4 = 6 may be spent now.
    d = p.decide(p.initial(), [0.1, 0.9], [1.0, 7.0])
    assert d.index == 0
    d = p.decide(p.initial(), [0.1, 0.9], [1.0, 6.0])
    assert d.index == 1


def test_threshold_policy_buys_only_above_threshold():
    pol = ThresholdPolicy(budget=10.0, low=0.1, high=10.0)
    s = pol.initial()
    assert s.lam == pytest.approx(0.1)
    assert pol.decide(s, [0.0, 0.05], [0.0, 1.0]).index == 0  # density 0.05 < 0.1
    assert pol.decide(s, [0.0, 5.0], [0.0, 1.0]).index == 1
    late = pol.update(s, 9.5)
    assert late.lam > 5 and pol.decide(late, [0.0, 2.0], [0.0, 0.4]).index == 0


def _synthetic(n=300, seed=1):
    rng = np.random.default_rng(seed)
    recs = []
    for i in range(n):
        q = rng.random()
        recs.append({
            "question": f"q{i}",
            "scores": {"small": float(q > 0.6), "mid": float(q > 0.3), "big": float(q > 0.1)},
            "costs": {"small": 0.2, "mid": 0.4, "big": 1.8},
        })
    return table_from_records(recs)


def test_simulator_reports_regret_against_offline_optimum():
    table = _synthetic()
    res = {r.policy: r for r in run_policies(table, 0.35, train=_synthetic(seed=2), seed=0)}
    assert set(res) >= {"paced", "paced_cold", "static", "greedy", "zcl"}
    for r in res.values():
        assert r.value <= r.opt_at_spend + 1e-9 or r.spend > r.budget
        assert r.opt_at_spend <= r.opt_at_budget + 1e-9
        assert r.overshoot == max(0.0, r.spend - r.budget) / r.budget
    assert res["paced"].regret < 0.1 and res["paced"].overshoot <= 0.01
    # Spending greedily first is worse than pacing on this table.
    assert res["greedy"].value < res["paced"].value
    assert offline_optimum(table, 0.2 * 300) == pytest.approx(sum(table.values[:, 2]))


def test_table_from_records_names_missing_option():
    with pytest.raises(ValueError, match=r"records\[0\]"):
        table_from_records([{"question": "x", "scores": {"a": 1.0}, "costs": {}}])


@pytest.mark.skipif(not (shared_data_dir() / "llmrouter").is_dir(), reason="needs ../shared/data/llmrouter")
@pytest.mark.parametrize("bpr", [0.3, 0.4])
def test_paced_policy_near_offline_optimum_on_llmrouter(bpr):
    table, train = load_llmrouter("test"), load_llmrouter("train")
    res = {r.policy: r for r in run_policies(table, bpr, train=train, seed=0)}
    paced = res["paced"]
    assert paced.value >= 0.95 * paced.opt_at_spend
    assert paced.overshoot <= 0.01
