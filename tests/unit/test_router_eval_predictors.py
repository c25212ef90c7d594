"""The router evaluation's predictor choice: curve criteria, the structural context block, validation selection."""

from __future__ import annotations

import random

import numpy as np
import pytest

from predictors.records import OutcomeRow
from router.eval_predictors import (
    PREDICTOR_CONFIGS,
    PredictorConfig,
    score_at_cost,
    select_predictor,
    structural_block,
    trained_predictor,
)

PRICES = {"cheap": (0.1, 0.1), "dear": (1.0, 1.0)}


def _rows(n: int, seed: int = 0) -> list[OutcomeRow]:
    """Short arithmetic prompts the cheap model solves; long essays only the dear one does."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        if i % 2:
            prompt = f"what is {rng.randint(1, 99)} plus {rng.randint(1, 99)}"
            scores = {"cheap": 1.0, "dear": 1.0}
        else:
            words = " ".join(rng.choice(["essay", "argue", "history", "compare", "policy"]) for _ in range(60))
            prompt = f"Write a long essay: {words}"
            scores = {"cheap": 0.0, "dear": 1.0}
        rows.append(OutcomeRow(prompt, scores))
    return rows


def test_score_at_cost_is_the_best_point_within_the_cost():
    pts = [(0.2, 0.3), (0.5, 0.6), (0.4, 0.55), (1.0, 0.7)]
    assert score_at_cost(pts, 0.45) == 0.55
    assert score_at_cost(pts, 0.5) == 0.6
    assert score_at_cost(pts, 0.1) is None


def test_configs_name_what_predictors_offers():
    assert PREDICTOR_CONFIGS["minilm8-rbf"] == PredictorConfig("minilm8+hashed+structural", "rbf", 1.0)
    assert len({c.key() for c in PREDICTOR_CONFIGS.values()}) == len(PREDICTOR_CONFIGS)


def test_structural_block_is_the_weighted_standardised_counts(tmp_path, monkeypatch):
    monkeypatch.setenv("THINKGATE_CACHE_DIR", str(tmp_path))
    rows = _rows(40)
    pred = trained_predictor(rows, PREDICTOR_CONFIGS["hashed-linear"], "t")
    block = structural_block(pred, [r.prompt for r in rows])
    assert block.shape == (40, 23)
    # Standardised on these very prompts, then scaled by the block weight 0.05.
    assert np.allclose(block.mean(axis=0), 0, atol=1e-4)
    assert 0.04 < float(block.std(axis=0).max()) < 0.06
    # The second call loads the cached artifact and gives the same predictions.
    again = trained_predictor(rows, PREDICTOR_CONFIGS["hashed-linear"], "t")
    p1 = [e.p_correct for e in pred.predict(rows[0].prompt)]
    assert [e.p_correct for e in again.predict(rows[0].prompt)] == pytest.approx(p1)
    assert len(list(tmp_path.glob("router_eval/t-*.tgp"))) == 1
    hashed_only = trained_predictor(rows, PredictorConfig("hashed"), "h")
    with pytest.raises(ValueError, match="no structural block"):
        structural_block(hashed_only, ["x"])


def test_select_predictor_uses_a_disjoint_validation_fold_and_ranks_by_the_40pct_criterion(tmp_path, monkeypatch):
    monkeypatch.setenv("THINKGATE_CACHE_DIR", str(tmp_path))
    rows = _rows(100, seed=1)
    kappas = (0.0, 0.5, 1.0, 2.0)
    sel = select_predictor(rows, PRICES, kappas, names=("hashed-linear", "hashed-rbf"))
    assert sel["split"]["val_rows"] == 20 and sel["split"]["fit_rows"] == 80
    assert sel["best_single"]["model"] == "dear" and sel["best_single"]["score"] == 1.0
    for name, m in sel["candidates"].items():
        assert [p["kappa"] for p in m["curve"]] == list(kappas)
        # The task is learnable: routing keeps the full score at well under the dear model's cost.
        assert m["fraction_of_cost_at_best_score"] is not None and m["fraction_of_cost_at_best_score"] < 0.8, name
        assert m["mean_auroc"] is not None and m["mean_auroc"] > 0.9, name  # cheap's success is predictable
    best = max(sel["candidates"], key=lambda n: sel["candidates"][n]["score_at_40pct_cost"] or -1)
    ties = [n for n in sel["candidates"]
            if sel["candidates"][n]["score_at_40pct_cost"] == sel["candidates"][best]["score_at_40pct_cost"]]
    if len(ties) == 1:
        assert sel["chosen"] == best
    else:  # tie on score: the lower cost fraction wins
        assert sel["chosen"] == min(ties, key=lambda n: sel["candidates"][n]["fraction_of_cost_at_best_score"])
    with pytest.raises(ValueError, match="available"):
        select_predictor(rows, PRICES, kappas, names=("nope",))
    with pytest.raises(ValueError, match="val_fraction"):
        select_predictor(rows, PRICES, kappas, val_fraction=1.0)


def test_decision_prices_table_model_makes_expected_cost_proportional_to_the_table_cost():
    from predictors.model import OptionEstimate
    from router.evaluation import decision_prices, snapshot_from_prices, views_for
    from router.options import build_candidates

    prices = {"cheap": (0.1, 0.3), "dear": (0.9, 0.9)}
    ests = [OptionEstimate(m, 0.5, None, None, None, None) for m in prices]
    for prompt in ("short", "x" * 4000):  # the prompt's length must not change the cost ratio
        (v,) = views_for([prompt], [ests])
        c = {x.model: x.cost_usd for x in build_candidates(v, snapshot_from_prices(decision_prices(prices, "table")))}
        assert c["dear"] / c["cheap"] == pytest.approx(1.8 / 0.4)
    (v,) = views_for(["x" * 4000], [ests])
    c = {x.model: x.cost_usd for x in build_candidates(v, snapshot_from_prices(decision_prices(prices, "tokens")))}
    assert c["dear"] / c["cheap"] != pytest.approx(1.8 / 0.4)  # per-token prices weigh the long prompt's input
    with pytest.raises(ValueError, match="cost_model"):
        decision_prices(prices, "dollars")
