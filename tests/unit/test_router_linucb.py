"""LinUCB with a preference prior: closed form, prior, learning, shared statistics, replay helpers."""

from __future__ import annotations

import numpy as np
import pytest

import router.strategies  # noqa: F401  (registers the strategies)
from budget import open_ledger
from predictors.model import OptionEstimate
from router.evaluation import run_policy, snapshot_from_prices, surface_group, views_for
from router.linucb import LinUCBPolicy, LinUCBState, fit_prior
from router.seam import ModelInfo, RequestView, RoutingSnapshot

SNAP = RoutingSnapshot(
    (ModelInfo("small", 1.0, 1.0, True, False, True), ModelInfo("big", 1.0, 1.0, True, False, True)),
    frozenset({"auto"}),
)


def view(p_small: float, p_big: float, tenant: str = "t") -> RequestView:
    ests = (OptionEstimate("small", p_small, 10, 10, 10, 10), OptionEstimate("big", p_big, 10, 10, 10, 10))
    return RequestView("auto", "q", None, None, None, None, None, None, tenant, estimates=ests)


def test_state_matches_the_ridge_closed_form_with_prior():
    rng = np.random.default_rng(0)
    d, lam = 4, 2.5
    theta0 = rng.normal(size=d)
    st = LinUCBState(d, lam, {"a": theta0})
    X, r = rng.normal(size=(30, d)), rng.random(30)
    for x, y in zip(X, r, strict=True):
        st.add("a", x, float(y))
    A = lam * np.eye(d) + X.T @ X
    theta = np.linalg.solve(A, lam * theta0 + X.T @ r)
    x = rng.normal(size=d)
    mean, width = st.score("a", x)
    assert mean == pytest.approx(float(theta @ x))
    assert width == pytest.approx(float(np.sqrt(x @ np.linalg.solve(A, x))))
    # The store vector round-trips to the same statistics (exact inverse instead of Sherman-Morrison).
    st2 = LinUCBState(d, lam, {"a": theta0})
    total = np.sum([LinUCBState.observation(x, float(y)) for x, y in zip(X, r, strict=True)], axis=0)
    st2.set_totals("a", total)
    assert st2.score("a", x) == pytest.approx((mean, width))
    assert st2.count("a") == 30
    with pytest.raises(ValueError, match="need 21 values"):
        st2.set_totals("a", [0.0] * 5)


def test_prior_reproduces_the_offline_estimate_before_any_feedback():
    pol = LinUCBPolicy(alpha=0.0, prior_weight=3.0)
    d = pol.decide(view(0.3, 0.7), SNAP)
    assert d.model == "big"
    x, names = pol.context_vector(view(0.3, 0.7))
    assert names == ("big", "small") and x.tolist() == [0.7, 0.3, 1.0]
    assert pol.state is not None
    assert pol.state.score("big", x)[0] == pytest.approx(0.7)
    assert pol.state.score("small", x)[0] == pytest.approx(0.3)
    plain = LinUCBPolicy(alpha=0.0, use_prior=False)
    plain.decide(view(0.3, 0.7), SNAP)
    assert plain.state is not None and plain.state.score("big", x)[0] == 0.0


def test_feedback_overrides_a_wrong_prior():
    # The prior says big is better; in truth small always succeeds and big never does.
    pol = LinUCBPolicy(alpha=0.2, prior_weight=1.0)
    chosen = []
    for _ in range(120):
        v = view(0.3, 0.7)
        d = pol.decide(v, SNAP)
        chosen.append(d.model)
        pol.update(d, pol.context_vector(v)[0], 1.0 if d.model == "small" else 0.0)
    assert chosen[0] == "big"
    assert chosen[-20:] == ["small"] * 20


def test_exploration_bonus_shrinks_with_feedback_and_alpha_scales_it():
    pol = LinUCBPolicy(alpha=1.0)
    v = view(0.5, 0.5)
    pol.decide(v, SNAP)
    x = pol.context_vector(v)[0]
    assert pol.state is not None
    w0 = pol.state.score("big", x)[1]
    for _ in range(10):
        pol.update("big", x, 0.5)
    assert pol.state.score("big", x)[1] < w0 / 3
    assert "ucb=" in pol.decide(v, SNAP).reason


def test_cost_price_trades_the_ucb_against_cost():
    snap = RoutingSnapshot((ModelInfo("small", 1.0, 1.0, True, False, True),
                            ModelInfo("big", 100.0, 100.0, True, False, True)), frozenset({"auto"}))
    assert LinUCBPolicy(alpha=0.0).decide(view(0.5, 0.8), snap).model == "big"
    assert LinUCBPolicy(alpha=0.0, default_lambda=1e5).decide(view(0.5, 0.8), snap).model == "small"


def test_update_validates_reward_and_dimension():
    pol = LinUCBPolicy()
    with pytest.raises(ValueError, match="has not decided yet"):
        pol.update("big", [1.0, 0.0, 1.0], 1.0)
    pol.decide(view(0.5, 0.5), SNAP)
    with pytest.raises(ValueError, match="reward"):
        pol.update("big", [1.0, 0.0, 1.0], 1.5)
    with pytest.raises(ValueError, match="need 3 values"):
        pol.update("big", [1.0, 0.0], 1.0)
    with pytest.raises(ValueError, match="context"):
        LinUCBPolicy(context="nope")


def test_fit_prior_recovers_a_linear_map():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 5))
    theta = rng.normal(size=(5, 2))
    assert np.allclose(fit_prior(X, X @ theta, ridge=1e-6), theta, atol=1e-4)


async def test_statistics_are_shared_through_the_ledger_store(tmp_path):
    store = open_ledger(f"sqlite:///{tmp_path / 'l.db'}")
    try:
        a, b = LinUCBPolicy(alpha=0.0), LinUCBPolicy(alpha=0.0)  # two gateway replicas
        v = view(0.3, 0.7)
        a.decide(v, SNAP)
        b.decide(v, SNAP)
        x = a.context_vector(v)[0]
        for _ in range(40):
            a.update("big", x, 0.0)
            await a.push(store, "big", x, 0.0)
        assert b.decide(v, SNAP).model == "big"  # b has not synced yet
        assert await b.pull(store, ["big", "small"]) == 1
        assert b.state is not None and a.state is not None
        assert b.state.score("big", x)[0] == pytest.approx(a.state.score("big", x)[0])
        assert b.decide(v, SNAP).model == "small"
    finally:
        await store.close()


def test_run_policy_learns_from_bandit_feedback_on_a_table():
    n = 400
    # Truth: small succeeds on every other query, big never; the predictor is uninformative.
    scores = np.zeros((n, 2))
    scores[::2, 0] = 1.0
    ests = [[OptionEstimate("small", 0.4, 1, 1, 1, 1), OptionEstimate("big", 0.6, 1, 1, 1, 1)] for _ in range(n)]
    snap = snapshot_from_prices({"small": (1.0, 1.0), "big": (1.0, 1.0)})
    views = views_for([f"q{i}" for i in range(n)], ests)
    pol = LinUCBPolicy(alpha=0.1)
    run = run_policy(pol, views, snap, ["small", "big"], scores, np.ones((n, 2)), learn=True)
    assert (run.choice[-100:] == 0).mean() > 0.9
    assert run.mean_score > 0.4
    frozen = run_policy(LinUCBPolicy(alpha=0.1), views, snap, ["small", "big"], scores, np.ones((n, 2)))
    assert (frozen.choice == 1).all() and frozen.mean_score == 0.0


@pytest.mark.parametrize(("text", "group"), [
    ("Q: There are 3 houses in a row...\n\nClue(s):\n1. x", "logic"),
    ("Write a python function to check whether a number is odd.", "code"),
    ('\ndef f(a):\n    """Return a."""\n', "code"),
    ("Tom has 3 apples and buys 4 more. How many?", "math"),
    ("A" * 700, "reading"),
    ("Ozonolysis of compound A produces 3-methylcyclopentanone and acetone. Determine the product of the reaction of A with sulfuric acid.", "science"),
    ("who wrote the boys from brazil", "openqa"),
    ("Why would someone be listening to music?", "commonsense"),
])
def test_surface_groups(text, group):
    assert surface_group(text) == group


def test_both_context_clips_features_and_keeps_the_prior_on_the_estimate_block():
    import dataclasses

    pol = LinUCBPolicy(alpha=0.0, context="both", feature_clip=2.0)
    assert pol.needs_features
    v = dataclasses.replace(view(0.2, 0.6), features=np.array([10.0, -1.0]))
    x, _ = pol.context_vector(v)
    assert x.tolist() == [0.6, 0.2, 1.0, 1.0, -0.5]
    assert pol.decide(v, SNAP).model == "big"
    assert pol.state is not None and pol.state.score("big", x)[0] == pytest.approx(0.6)
    with pytest.raises(ValueError, match="needs the request's feature vector"):
        pol.decide(view(0.2, 0.6), SNAP)


def test_cost_at_score_interpolates_the_cost_sorted_curve():
    from evals.router_eval import cost_at_score

    pts = [(1.0, 0.6), (0.2, 0.4), (0.5, 0.5)]
    assert cost_at_score(pts, 0.55) == pytest.approx(0.75)
    assert cost_at_score(pts, 0.3) == pytest.approx(0.2)
    assert cost_at_score(pts, 0.7) is None
