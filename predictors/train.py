"""Training: outcome data -> :class:`predictors.model.Predictor`.

* Success: one L2 logistic regression per option on the shared feature matrix;
  fractional scores are soft labels (each row counted as positive with weight
  ``score`` and negative with weight ``1 - score``). Calibration is fitted on
  out-of-fold logits (``folds``-fold cross-fitting, so every calibration point
  is held out from the model that scored it): isotonic with >= 400 labelled
  rows, Platt scaling below; the final model is refitted on all rows.
* Lengths: per option and kind, ridge regression of ``log1p(tokens)`` with a
  log-normal residual whose scale comes from out-of-fold residuals.
* Cheapest sufficient option (EllieSQL-style): multinomial logistic regression
  whose label is the cheapest option scoring >= ``sufficient_threshold``
  (``"<none>"`` if none does); trained only when option costs are known.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from predictors.featurizers import clean_text, get_featurizer
from predictors.model import Calibrator, LengthHead, Predictor, lognormal_sigma
from predictors.records import (
    OutcomeRecord,
    OutcomeRow,
    RecordError,
    parse_option,
    records_to_table,
    validate_outcome_record,
    validate_outcome_row,
)

__all__ = ["TrainingSet", "load_training_data", "train_predictor", "training_set_from_records", "training_set_from_table"]


@dataclass
class TrainingSet:
    """Prompts x options score matrix (NaN = not observed) plus per-sample token lengths."""

    prompts: list[str]
    options: list[str]
    scores: np.ndarray  # (n, k) float, NaN where unobserved
    thinking: list[tuple[int, int, float]] = field(default_factory=list)  # (row, option, tokens)
    answer: list[tuple[int, int, float]] = field(default_factory=list)
    costs: dict[str, float] = field(default_factory=dict)  # mean observed cost per query

    def data_hash(self) -> str:
        """sha256 of the prompts, options, scores and lengths (format-independent)."""
        h = hashlib.sha256()
        h.update(json.dumps([self.prompts, self.options], ensure_ascii=False).encode("utf-8"))
        h.update(np.nan_to_num(self.scores, nan=-1.0).astype(np.float64).tobytes())
        h.update(json.dumps([self.thinking, self.answer]).encode())
        return h.hexdigest()


def training_set_from_table(rows: Sequence[OutcomeRow]) -> TrainingSet:
    """Build a training set from wide rows; options in first-seen order."""
    options: dict[str, int] = {}
    for r in rows:
        for o in r.scores:
            options.setdefault(o, len(options))
    Y = np.full((len(rows), len(options)), np.nan)
    think, ans = [], []
    cost_acc: dict[str, list[float]] = {}
    for i, r in enumerate(rows):
        for o, s in r.scores.items():
            Y[i, options[o]] = s
        for o, v in (r.thinking_tokens or {}).items():
            if o in options:
                think.append((i, options[o], v))
        for o, v in (r.answer_tokens or {}).items():
            if o in options:
                ans.append((i, options[o], v))
        for o, c in (r.costs or {}).items():
            cost_acc.setdefault(o, []).append(c)
    costs = {o: float(np.mean(v)) for o, v in cost_acc.items()}
    return TrainingSet([r.prompt for r in rows], list(options), Y, think, ans, costs)


def training_set_from_records(records: Sequence[OutcomeRecord]) -> TrainingSet:
    """Scores averaged per (prompt, option); every record's lengths kept as its own sample."""
    ts = training_set_from_table(records_to_table(records))
    row = {p: i for i, p in enumerate(ts.prompts)}
    col = {o: j for j, o in enumerate(ts.options)}
    ts.thinking = [(row[r.text], col[r.option], float(r.thinking_tokens)) for r in records if r.thinking_tokens is not None]
    ts.answer = [(row[r.text], col[r.option], float(r.answer_tokens)) for r in records if r.answer_tokens is not None]
    return ts


def load_training_data(path: str | Path) -> TrainingSet:
    """Load a wide table or outcome records (detected from the first object's keys)."""
    from predictors.records import _read_objects

    objs = _read_objects(path)
    if not objs:
        raise RecordError(None, None, "no records", str(path))
    first = objs[0]
    if isinstance(first, dict) and "scores" in first:
        return training_set_from_table([validate_outcome_row(o, i, str(path)) for i, o in enumerate(objs)])
    return training_set_from_records([validate_outcome_record(o, i, str(path)) for i, o in enumerate(objs)])


# ---------------------------------------------------------------- fitting helpers


def _rows(X: Any, idx: np.ndarray) -> Any:
    return X[idx]


def _vstack(a: Any, b: Any) -> Any:
    return sp.vstack([a, b], format="csr") if sp.issparse(a) else np.vstack([a, b])


def _fit_logistic(X: Any, y: np.ndarray, C: float, seed: int) -> tuple[np.ndarray, float] | None:
    """Soft-label L2 logistic regression; ``None`` when the labels carry one class only."""
    from sklearn.linear_model import LogisticRegression

    pos, neg = y > 0, y < 1
    if not pos.any() or not neg.any():
        return None
    Xd = _vstack(X[pos], X[neg])
    labels = np.r_[np.ones(pos.sum()), np.zeros(neg.sum())]
    weights = np.r_[y[pos], 1.0 - y[neg]]
    clf = LogisticRegression(C=C, max_iter=2000, random_state=seed)
    clf.fit(Xd, labels, sample_weight=weights)
    return clf.coef_[0].astype(np.float32), float(clf.intercept_[0])


def _fit_calibrator(z: np.ndarray, y: np.ndarray, method: str) -> Calibrator:
    """Isotonic or Platt map from out-of-fold logits to (soft) labels."""
    if method == "auto":
        method = "isotonic" if len(z) >= 400 else "platt"
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(z, y)
        return Calibrator("isotonic", np.asarray(iso.X_thresholds_, float), np.asarray(iso.y_thresholds_, float))
    if method == "platt":
        from sklearn.linear_model import LogisticRegression

        pos, neg = y > 0, y < 1
        zz = np.r_[z[pos], z[neg]].reshape(-1, 1)
        lr = LogisticRegression(C=1e4).fit(zz, np.r_[np.ones(pos.sum()), np.zeros(neg.sum())], sample_weight=np.r_[y[pos], 1 - y[neg]])
        return Calibrator("platt", np.array([lr.coef_[0, 0]]), np.array([lr.intercept_[0]]))
    if method == "none":
        return Calibrator("sigmoid")
    raise ValueError(f"calibration: unknown method {method!r}, available: auto, isotonic, platt, none")


def _folds(n: int, folds: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    return [perm[f::folds] for f in range(folds)]


def _success_option(X: Any, y: np.ndarray, C: float, folds: int, calibration: str, seed: int) -> tuple[np.ndarray, float, Calibrator]:
    d = X.shape[1]
    full = _fit_logistic(X, y, C, seed)
    if full is None:
        return np.zeros(d, np.float32), 0.0, Calibrator("constant", y=np.array([float(np.mean(y))]))
    oof = np.zeros(len(y))
    for test in _folds(len(y), folds, seed):
        train = np.setdiff1d(np.arange(len(y)), test)
        fit = _fit_logistic(_rows(X, train), y[train], C, seed)
        w, b = fit if fit is not None else (full[0], full[1])
        oof[test] = np.asarray(_rows(X, test) @ w).ravel() + b
    return full[0], full[1], _fit_calibrator(oof, y, calibration)


def _length_head(X: Any, samples: list[tuple[int, int, float]], j: int, budget: int | None, alpha: float, folds: int, seed: int) -> LengthHead | None:
    rows = np.array([r for r, o, _ in samples if o == j], dtype=int)
    if rows.size == 0:
        return None
    t = np.log1p(np.array([v for _, o, v in samples if o == j], dtype=float))
    cap = float(budget) if budget is not None else None
    if rows.size < 20:
        return LengthHead(None, float(t.mean()), max(float(t.std()), 0.05), cap)
    from sklearn.linear_model import Ridge

    Xj = X[rows]
    resid = np.zeros_like(t)
    for test in _folds(rows.size, folds, seed):
        train = np.setdiff1d(np.arange(rows.size), test)
        m = Ridge(alpha=alpha).fit(_rows(Xj, train), t[train])
        resid[test] = t[test] - m.predict(_rows(Xj, test))
    m = Ridge(alpha=alpha).fit(Xj, t)
    return LengthHead(np.asarray(m.coef_, np.float32), float(m.intercept_), lognormal_sigma(resid), cap)


def _cheapest_head(X: Any, ts: TrainingSet, costs: dict[str, float], threshold: float, C: float, seed: int) -> tuple[list[str], np.ndarray, np.ndarray] | None:
    from sklearn.linear_model import LogisticRegression

    order = sorted((j for j, o in enumerate(ts.options) if o in costs), key=lambda j: costs[ts.options[j]])
    if not order:
        return None
    labels = []
    for i in range(len(ts.prompts)):
        hit = next((ts.options[j] for j in order if ts.scores[i, j] >= threshold), "<none>")
        labels.append(hit)
    if len(set(labels)) < 2:
        return None
    clf = LogisticRegression(C=C, max_iter=2000, random_state=seed).fit(X, labels)
    classes = [str(c) for c in clf.classes_]
    coef, icpt = clf.coef_, clf.intercept_
    if len(classes) == 2:  # sklearn's binary case has one row: expand to two logits
        coef, icpt = np.vstack([-coef[0] / 2, coef[0] / 2]), np.r_[-icpt[0] / 2, icpt[0] / 2]
    return classes, np.asarray(coef.T, np.float32), np.asarray(icpt, float)


def _compact(W: np.ndarray, sparse_features: bool) -> Any:
    """Store coefficients sparsely when most rows are zero (unseen hash buckets)."""
    if sparse_features and np.count_nonzero(W) < 0.5 * W.size:
        return sp.csr_matrix(W)
    return W


# ---------------------------------------------------------------- entry point


def train_predictor(
    data: TrainingSet,
    featurizer: str = "hashed+structural",
    *,
    C: float = 1.0,
    folds: int = 5,
    calibration: str = "auto",
    length_alpha: float = 10.0,
    option_costs: dict[str, float] | None = None,
    sufficient_threshold: float = 0.5,
    featurizer_weights: Sequence[float] | None = None,
    seed: int = 0,
) -> Predictor:
    """Fit a :class:`Predictor` on ``data``; see the module docstring for the method.

    ``option_costs`` (cost per query) override the costs observed in the data for
    the cheapest-sufficient head and are stored in the predictor. Raises
    ``ValueError`` naming the parameter for bad arguments.
    """
    if folds < 2:
        raise ValueError(f"folds: must be >= 2, got {folds}")
    if C <= 0 or not math.isfinite(C):
        raise ValueError(f"C: must be a positive number, got {C}")
    if len(data.prompts) < 2 * folds:
        raise ValueError(f"data: need at least {2 * folds} prompts for {folds}-fold calibration, got {len(data.prompts)}")
    t0 = time.time()
    feat = get_featurizer(featurizer, featurizer_weights)
    texts = [clean_text(p) for p in data.prompts]
    feat.fit(texts)
    X = feat.transform(texts)
    k = len(data.options)
    W = np.zeros((X.shape[1], k), np.float32)
    b = np.zeros(k)
    cals: list[Calibrator] = []
    for j in range(k):
        obs = np.flatnonzero(~np.isnan(data.scores[:, j]))
        w, b[j], cal = _success_option(_rows(X, obs), data.scores[obs, j], C, folds, calibration, seed)
        W[:, j] = w
        cals.append(cal)
    budgets = [parse_option(o)[1] for o in data.options]
    think = [_length_head(X, data.thinking, j, budgets[j], length_alpha, folds, seed) for j in range(k)]
    ans = [_length_head(X, data.answer, j, None, length_alpha, folds, seed) for j in range(k)]
    costs = {**data.costs, **(option_costs or {})}
    head = _cheapest_head(X, data, costs, sufficient_threshold, C, seed) if costs else None
    meta = {
        "featurizer": feat.name,
        "options": list(data.options),
        "n_prompts": len(data.prompts),
        "n_thinking_samples": len(data.thinking),
        "n_answer_samples": len(data.answer),
        "C": C,
        "folds": folds,
        "calibration": [c.kind for c in cals],
        "sufficient_threshold": sufficient_threshold,
        "data_sha256": data.data_hash(),
        "train_seconds": round(time.time() - t0, 2),
    }
    return Predictor(
        feat,
        data.options,
        _compact(W, feat.sparse),
        b,
        cals,
        think,
        ans,
        cheapest_classes=head[0] if head else None,
        cheapest_coef=_compact(head[1], feat.sparse) if head else None,
        cheapest_intercept=head[2] if head else None,
        option_costs=costs,
        metadata=meta,
    )
