"""Real data smoke test (llmrouter split); skips when ../shared/data is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DATA = Path(os.environ.get("THINKGATE_SHARED_DATA", Path(__file__).resolve().parents[2] / ".." / "shared" / "data"))
LLMROUTER = DATA / "llmrouter"

pytestmark = pytest.mark.skipif(not (LLMROUTER / "dcrouter_test.json").is_file(), reason=f"shared data not found at {LLMROUTER}")


def test_llmrouter_subset_learns_and_routes():
    from predictors.evaluate import evaluate_predictor, load_costs
    from predictors.records import load_outcome_table
    from predictors.train import train_predictor, training_set_from_table

    train = training_set_from_table(load_outcome_table(LLMROUTER / "dcrouter_train.json")[::7])
    test = training_set_from_table(load_outcome_table(LLMROUTER / "dcrouter_test.json"))
    costs = load_costs(LLMROUTER / "default_llm.json")
    assert costs["llama-3.1-nemotron-51b-instruct"] == pytest.approx(1.8)  # input + output price
    r = evaluate_predictor(train_predictor(train, "hashed+structural", option_costs=costs), test, costs)
    # Every 7th row (the file is grouped by source cluster); full-data figures are in reports/predictors.md.
    assert r["mean_auroc"] > 0.72
    assert r["best_single_score"] == pytest.approx(0.5626, abs=1e-3)  # the data README's figure
    assert r["oracle_score"] == pytest.approx(0.743, abs=2e-3)
