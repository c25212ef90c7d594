"""Adapters from ``predictors`` to replay's ``PredictFn`` (values and costs per query and option).

Imported only when a predictor is asked for; ``predictors`` pulls in numpy and
scikit-learn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from evals.replay_table import ReplayTable
from evals.strategies import PredictFn

__all__ = ["load_predictor_fn", "predictor_fn", "train_predictor_fn"]


def predictor_fn(pred: Any) -> PredictFn:
    """Wrap a ``predictors.Predictor``: values = calibrated P(correct) per option.

    Costs: ``None`` (the table's own costs) when they are prices or dollars,
    since those are known before the call; for token-cost tables the predicted
    mean thinking + answer tokens, else the predictor's per-option mean cost, so
    the allocator never sees a query's realised length.
    """

    def predict(table: ReplayTable) -> tuple[np.ndarray, np.ndarray | None]:
        missing = [o for o in table.options if o not in pred.options]
        if missing:
            raise ValueError(f"--predictor: it has no estimates for option(s) {', '.join(missing)}")
        ests = pred.predict_batch(table.prompts, table.options)
        values = np.array([[e.p_correct for e in row] for row in ests], dtype=np.float64)
        if table.cost_unit != "tokens":
            return values, None
        costs = np.empty_like(values)
        for i, row in enumerate(ests):
            for j, e in enumerate(row):
                parts = [x for x in (e.thinking_tokens_mean, e.answer_tokens_mean) if x is not None]
                if parts:
                    costs[i, j] = sum(parts)
                elif table.options[j] in getattr(pred, "option_costs", {}):
                    costs[i, j] = pred.option_costs[table.options[j]]
                else:
                    costs[i, j] = float(table.costs[:, j].mean())
        return values, costs

    return predict


def load_predictor_fn(path: str | Path) -> PredictFn:
    """A saved predictor artifact (``predictors.load_predictor``) as a ``PredictFn``."""
    try:
        from predictors import ArtifactError, load_predictor
    except (ImportError, AttributeError) as exc:  # the artifact module may not be installed
        raise ValueError(f"--predictor: predictors.load_predictor is unavailable ({exc})") from exc
    try:
        return predictor_fn(load_predictor(path))
    except ArtifactError as exc:
        raise ValueError(f"--predictor: {exc}") from exc


def train_predictor_fn(train_table: str | Path, featurizer: str = "hashed+structural", seed: int = 0) -> PredictFn:
    """Train ``predictors.train_predictor`` on a wide table (e.g. a train split) and wrap it."""
    from predictors.records import load_outcome_table
    from predictors.train import train_predictor, training_set_from_table

    data = training_set_from_table(load_outcome_table(train_table))
    return predictor_fn(train_predictor(data, featurizer, seed=seed))

