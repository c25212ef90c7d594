"""Math of the routing strategies: candidates and costs, utility, tiers calibration, random, registry."""

from __future__ import annotations

import collections
import dataclasses

import numpy as np
import pytest

import router.strategies  # noqa: F401  (registers the strategies)
from predictors.model import OptionEstimate
from router.options import Pricing, build_candidates, with_healthy
from router.seam import ModelInfo, NoModelAvailable, RequestView, RoutingSnapshot, UnknownModel, make_policy
from router.strategies import RandomPolicy, TierCalibrator, TiersPolicy, UtilityPolicy, quantile

SNAP = RoutingSnapshot(
    (ModelInfo("small", 1.0, 2.0, True, False, True), ModelInfo("big", 10.0, 20.0, True, False, True)),
    frozenset({"auto"}),
)
PROMPT = "x" * 400  # 100 expected prompt tokens at 4 characters per token


def est(option: str, p: float, think: float | None = 100.0, answer: float | None = 50.0) -> OptionEstimate:
    return OptionEstimate(option, p, think, think, answer, answer)


def view(*ests: OptionEstimate, **kw) -> RequestView:
    base = dict(model="auto", prompt_text=PROMPT, max_tokens=None, max_thinking_tokens=None, effort=None,
                max_cost_usd=None, min_quality=None, allow_skip=None, tenant_id="t")
    base.update(kw)
    return RequestView(estimates=tuple(ests), **base)


def cost(info_in: float, info_out: float, think: float, answer: float) -> float:
    return (100 * info_in + (think + answer) * info_out) / 1e6


# ------------------------------------------------------------------ candidates


def test_candidate_cost_is_prompt_plus_predicted_tokens_at_model_prices():
    cands = {c.option: c for c in build_candidates(view(est("small", 0.5), est("big", 0.8, 300, 20)), SNAP)}
    assert cands["small"].cost_usd == pytest.approx(cost(1, 2, 100, 50))
    assert cands["big"].cost_usd == pytest.approx(cost(10, 20, 300, 20))


def test_missing_lengths_use_defaults_and_budget_caps_thinking():
    pricing = Pricing(default_thinking_tokens=1000, default_answer_tokens=10)
    c = build_candidates(view(est("small@256", 0.5, None, None)), SNAP, pricing)[0]
    assert (c.budget, c.thinking_tokens, c.answer_tokens) == (256, 256, 10)
    assert c.cost_usd == pytest.approx(cost(1, 2, 256, 10))


def test_max_thinking_tokens_caps_budgets_and_merges_options():
    cands = build_candidates(view(est("big", 0.8, 900), est("big@4096", 0.7, 900), est("big@128", 0.4, 100),
                                  max_thinking_tokens=512), SNAP)
    by = {c.option: c for c in cands}
    assert set(by) == {"big@512", "big@128"}  # unlimited and 4096 both become 512
    # They would think 900 tokens, so the cap binds: P(correct) is the largest budget under the cap's.
    assert by["big@512"].p_correct == 0.4 and by["big@512"].thinking_tokens == 512
    # A cap that does not bind (predicted thinking 300 < 512) keeps the option's own estimate.
    cands = build_candidates(view(est("big", 0.8, 300), est("big@128", 0.4, 100), max_thinking_tokens=512), SNAP)
    assert {c.option: c.p_correct for c in cands} == {"big@512": 0.8, "big@128": 0.4}
    # Without an option under the cap there is nothing better to use than the option's own estimate.
    cands = build_candidates(view(est("big", 0.8, 900), max_thinking_tokens=64), SNAP)
    assert [(c.option, c.p_correct) for c in cands] == [("big@64", 0.8)]


def test_named_model_keeps_only_its_options_and_unknown_names_fail():
    cands = build_candidates(view(est("small", 0.5), est("big", 0.8), model="small"), SNAP)
    assert [c.model for c in cands] == ["small"]
    with pytest.raises(UnknownModel, match="available: auto, big, small"):
        build_candidates(view(est("small", 0.5), model="nope"), SNAP)


# ------------------------------------------------------------------ utility


def test_utility_switches_exactly_at_the_price_where_the_gain_equals_the_extra_cost():
    v = view(est("small", 0.5), est("big", 0.8))
    c_small, c_big = cost(1, 2, 100, 50), cost(10, 20, 100, 50)
    switch = (0.8 - 0.5) / (c_big - c_small)
    assert UtilityPolicy(default_lambda=0.0).decide(v, SNAP).model == "big"
    assert UtilityPolicy(default_lambda=switch * 0.99).decide(v, SNAP).model == "big"
    assert UtilityPolicy(default_lambda=switch * 1.01).decide(v, SNAP).model == "small"
    # The tenant's dual price overrides the configured default.
    d = UtilityPolicy(default_lambda=0.0).decide(dataclasses.replace(v, price_lambda=switch * 1.01), SNAP)
    assert d.model == "small" and d.p_correct == 0.5 and d.predicted_thinking_tokens == 100


def test_utility_respects_cost_cap_and_quality_floor_and_relaxes_with_a_note():
    v = view(est("small", 0.5), est("big", 0.8))
    c_small = cost(1, 2, 100, 50)
    assert UtilityPolicy().decide(dataclasses.replace(v, max_cost_usd=c_small * 1.5), SNAP).model == "small"
    d = UtilityPolicy().decide(dataclasses.replace(v, max_cost_usd=c_small / 2), SNAP)
    assert d.model == "small" and "no option fits max_cost_usd" in d.reason
    big_lambda = UtilityPolicy(default_lambda=1e6)
    assert big_lambda.decide(dataclasses.replace(v, min_quality=0.7), SNAP).model == "big"
    d = big_lambda.decide(dataclasses.replace(v, min_quality=0.95), SNAP)
    assert d.model == "big" and "no option reaches min_quality" in d.reason


def test_effort_prefers_larger_budgets_when_high_and_smaller_when_low():
    v = view(est("big@256", 0.6, 200), est("big@1024", 0.6, 200), est("big@4096", 0.6, 200))
    pol = UtilityPolicy(effort_weight=0.05)
    assert pol.decide(dataclasses.replace(v, effort=1.0), SNAP).thinking_budget == 4096
    assert pol.decide(dataclasses.replace(v, effort=0.0), SNAP).thinking_budget == 256
    # Effort is a preference, not an override: a clearly likelier option still wins.
    v2 = view(est("big@256", 0.9, 200), est("big@4096", 0.6, 200), effort=1.0)
    assert pol.decide(v2, SNAP).thinking_budget == 256


def test_unhealthy_models_are_removed_and_the_reason_names_the_fallback():
    v = view(est("small", 0.5), est("big", 0.8))
    d = UtilityPolicy().decide(v, with_healthy(SNAP, "big", False))
    assert d.model == "small"
    assert "preferred big is down" in d.reason and "next best small" in d.reason
    d = UtilityPolicy().decide(v, with_healthy(SNAP, "small", False))
    assert d.model == "big" and "skipped down model(s) small" in d.reason
    down = with_healthy(with_healthy(SNAP, "small", False), "big", False)
    with pytest.raises(NoModelAvailable):
        UtilityPolicy().decide(v, down)


def test_without_estimates_strategies_fall_back_to_the_default_model():
    d = UtilityPolicy(default_model="big").decide(view(), SNAP)
    assert d.model == "big" and d.strategy == "utility" and d.reason.startswith("no predictor estimates")


def test_budget_and_mode_go_into_the_decision():
    d = UtilityPolicy().decide(view(est("big@512", 0.9, 300)), SNAP)
    assert (d.thinking_budget, d.mode, d.strategy) == (512, "hard", "utility")
    d = UtilityPolicy(default_thinking_budget=2048, default_max_tokens=99).decide(view(est("big", 0.9)), SNAP)
    assert (d.thinking_budget, d.max_tokens) == (2048, 99)


# ------------------------------------------------------------------ tiers


def test_quantile_matches_numpy():
    xs = list(np.random.default_rng(0).random(37))
    for q in (0.0, 0.13, 0.5, 0.9, 1.0):
        assert quantile(xs, q) == pytest.approx(float(np.quantile(xs, q)))


def test_reference_threshold_is_the_target_share_quantile_of_the_reference_scores():
    ref = np.linspace(0, 1, 101)
    cal = TierCalibrator(0.3, reference_scores=ref)
    assert cal.threshold("anyone") == (pytest.approx(0.3), "reference")
    pol = TiersPolicy(calibrator=cal)
    assert pol.decide(view(est("small", 0.31), est("big", 0.9)), SNAP).model == "small"
    d = pol.decide(view(est("small", 0.29), est("big", 0.9)), SNAP)
    assert d.model == "big" and "threshold=0.300" in d.reason


def test_online_calibration_hits_the_target_share_per_tenant():
    rng = np.random.default_rng(1)
    cal = TierCalibrator(0.25, window=2000, min_samples=50)
    pol = TiersPolicy(calibrator=cal)
    scores = {"easy": rng.beta(8, 2, 1500), "hard": rng.beta(2, 8, 1500)}
    escalated = collections.Counter()
    for tenant, xs in scores.items():
        for i, s in enumerate(xs):
            v = view(est("small", float(s)), est("big", 0.95), tenant_id=tenant)
            d = pol.decide(v, SNAP)
            if i >= 500:  # after warm-up the share must be near the target
                escalated[tenant] += d.model == "big"
            pol.observe(v, SNAP)
    for tenant in scores:
        assert abs(escalated[tenant] / 1000 - 0.25) < 0.05, (tenant, escalated)
    # Different traffic, different thresholds; a new tenant uses the pooled window.
    assert cal.threshold("easy")[0] > cal.threshold("hard")[0] + 0.3
    assert cal.threshold("new")[1] == "pooled"


def test_tiers_pick_the_cheapest_sufficient_tier_and_the_likeliest_when_none_is():
    snap = RoutingSnapshot(SNAP.models + (ModelInfo("mid", 4.0, 8.0, True, False, True),), SNAP.aliases)
    pol = TiersPolicy(calibrator=TierCalibrator(0.5, reference_scores=[0.6]))
    assert pol.decide(view(est("small", 0.5), est("mid", 0.65), est("big", 0.9)), snap).model == "mid"
    d = pol.decide(view(est("small", 0.1), est("mid", 0.2), est("big", 0.3)), snap)
    assert d.model == "big" and "no tier sufficient" in d.reason


def test_tiers_escalate_top_sends_a_query_no_tier_handles_to_the_most_expensive_tier():
    snap = RoutingSnapshot(SNAP.models + (ModelInfo("mid", 4.0, 8.0, True, False, True),), SNAP.aliases)
    cal = TierCalibrator(0.5, reference_scores=[0.6])
    likeliest, top = TiersPolicy(calibrator=cal), TiersPolicy(calibrator=cal, escalate="top")
    # The expensive model is predicted the worst: "likeliest" stays cheap, "top" escalates anyway.
    hard = view(est("small", 0.3), est("mid", 0.2), est("big", 0.1))
    assert likeliest.decide(hard, snap).model == "small"
    d = top.decide(hard, snap)
    assert d.model == "big" and "escalated to the most expensive tier" in d.reason
    # Tiers are (price, budget): the top one is the expensive model unlimited, even when a budget is likelier.
    d = top.decide(view(est("small", 0.1), est("big@64", 0.3), est("big", 0.2)), snap)
    assert (d.model, d.thinking_budget) == ("big", None)
    # A sufficient cheap tier still wins over escalation.
    assert top.decide(view(est("small", 0.7), est("big", 0.1)), snap).model == "small"
    # The top tier among healthy models: with big down, mid is the most expensive left.
    assert top.decide(hard, with_healthy(snap, "big", False)).model == "mid"
    with pytest.raises(ValueError, match="escalate"):
        TiersPolicy(escalate="up")
    assert make_policy("tiers", escalate="top").escalate == "top"


# ------------------------------------------------------------------ random and registry


def test_random_is_uniform_over_healthy_options():
    pol = RandomPolicy(seed=3)
    snap = with_healthy(SNAP, "big", False)
    v = view(est("small", 0.5), est("small@128", 0.4), est("big", 0.8))
    counts = collections.Counter(pol.decide(v, snap).thinking_budget for _ in range(2000))
    assert set(counts) == {None, 128}  # the down model never serves
    assert abs(counts[128] / 2000 - 0.5) < 0.05
    counts = collections.Counter(pol.decide(v, SNAP).model for _ in range(3000))
    assert abs(counts["big"] / 3000 - 1 / 3) < 0.04


def test_registry_builds_every_strategy_with_the_gateway_kwargs():
    kw = dict(default_model="small", default_thinking_budget=None, default_max_tokens=None, guidance_mode="hard")
    for name in ("fixed", "utility", "tiers", "linucb", "random"):
        pol = make_policy(name, **kw)
        assert pol.name == name
        assert pol.decide(view(est("small", 0.5), est("big", 0.8)), SNAP).model in ("small", "big")
    with pytest.raises(ValueError, match="available: fixed, linucb, random, tiers, utility"):
        make_policy("nope")
    with pytest.raises(ValueError, match="default_lambda"):
        make_policy("utility", default_lambda=-1.0)
