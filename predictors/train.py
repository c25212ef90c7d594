"""Training: outcome data -> :class:`predictors.model.Predictor`.

* Success: ridge regression of the (possibly fractional) score on the shared
  feature matrix, all options at once (options observed on the same rows share
  one fit). Up to ``max_dual`` rows it is solved in kernel form from one
  eigendecomposition of the linear Gram matrix, which gives exact leave-one-out
  predictions for every ridge strength in ``alphas`` (the one with the lowest
  LOO squared error is kept); above, primal ridge with ``folds``-fold
  cross-fitting. The raw scores are turned into probabilities by a calibrator
  fitted on those held-out predictions: isotonic with >= 400 rows, Platt below.
  The runtime model stays linear: weights ``X^T @ dual``.
* Lengths: per option and kind, ridge regression of ``log1p(tokens)`` with a
  log-normal residual whose scale comes from out-of-fold residuals (the mean).
  The p90 comes from a linear 0.9-quantile regression with a cross-conformal
  correction when the features are dense and narrow and the option has
  >= ``QUANTILE_MIN_SAMPLES`` samples (:func:`_quantile_head`), else from the
  conformal quantile of the out-of-fold residuals around the mean.
* Cheapest sufficient option (EllieSQL-style): one-vs-rest ridge classifier
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
from predictors.length_heads import _folds, _length_head
from predictors.model import Calibrator, Predictor
from predictors.records import (
    OutcomeRecord,
    OutcomeRow,
    RecordError,
    parse_option,
    records_to_table,
    resolve_costs,
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


def _dual_ridge_loo(eig: tuple[np.ndarray, np.ndarray], Y: np.ndarray, alphas: Sequence[float]) -> tuple[np.ndarray, np.ndarray, float]:
    """Kernel ridge on a linear kernel with leave-one-out predictions, alpha chosen by LOO MSE.

    ``Y`` is centred column-wise (the mean is the unpenalised intercept). Uses one
    eigendecomposition ``K = Q diag(lam) Q^T``: for each alpha the dual weights are
    ``Q diag(1 / (lam + alpha)) Q^T Yc`` and the LOO residual is
    ``(Yc - H Yc)_i / (1 - H_ii)`` with ``H = Q diag(lam / (lam + alpha)) Q^T``.
    Returns (dual weights ``(n, k)``, LOO predictions ``(n, k)`` incl. the mean, alpha).
    """
    lam, Q = eig
    mean = Y.mean(axis=0)
    Yc = Y - mean
    QtY = Q.T @ Yc
    Q2 = Q * Q
    best: tuple[float, np.ndarray, np.ndarray, float] | None = None
    for a in alphas:
        shrink = lam / (lam + a)
        fitted = Q @ (shrink[:, None] * QtY)
        h = np.clip(Q2 @ shrink, 0.0, 1.0 - 1e-6)
        loo = Yc - (Yc - fitted) / (1.0 - h)[:, None]
        mse = float(np.mean((loo - Yc) ** 2))
        if best is None or mse < best[0]:
            dual = Q @ (QtY / (lam + a)[:, None])
            best = (mse, dual, loo + mean, float(a))
    assert best is not None
    return best[1], best[2], best[3]


def _primal_ridge_oof(X: Any, Y: np.ndarray, alpha: float, folds: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Primal ridge for large n: (weights ``(d, k)``, out-of-fold predictions incl. the mean)."""
    from sklearn.linear_model import Ridge

    mean = Y.mean(axis=0)
    oof = np.zeros_like(Y)
    for test in _folds(len(Y), folds, seed):
        train = np.setdiff1d(np.arange(len(Y)), test)
        oof[test] = Ridge(alpha=alpha, fit_intercept=False).fit(_rows(X, train), Y[train] - mean).predict(_rows(X, test)) + mean
    W = Ridge(alpha=alpha, fit_intercept=False).fit(X, Y - mean).coef_.T
    return np.asarray(W, np.float32), oof


class _EigenCache:
    """Eigendecompositions of the linear kernel per row subset (success and cheapest heads share one)."""

    def __init__(self, X: Any, kernel: str = "linear", gamma: float = 1.0) -> None:
        self.X = X
        self.kernel = kernel
        self.gamma = gamma
        self._cache: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}

    def get(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        key = rows.tobytes()
        if key not in self._cache:
            from scipy.linalg import eigh

            Xr = _rows(self.X, rows)
            G = Xr @ Xr.T
            G = np.asarray(G.toarray() if sp.issparse(G) else G, dtype=np.float64)
            if self.kernel == "rbf":
                sq = np.diag(G).copy()
                G = np.exp(self.gamma * (G - 0.5 * (sq[:, None] + sq[None, :])))
            lam, Q = eigh(G, overwrite_a=True, check_finite=False)
            self._cache[key] = (np.maximum(lam, 0.0), Q)
        return self._cache[key]


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


def _ridge_fit(
    eigs: _EigenCache, rows: np.ndarray, Y: np.ndarray, alphas: Sequence[float], folds: int, seed: int, max_dual: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Multi-target ridge: (primal weights ``(d, k)``, intercepts ``(k,)``, held-out predictions, alpha).

    Dual (kernel) form with exact leave-one-out predictions up to ``max_dual``
    rows, primal with ``folds``-fold out-of-fold predictions (first alpha) above.
    """
    mean = Y.mean(axis=0)
    X = _rows(eigs.X, rows)
    if len(Y) <= max_dual:
        dual, held_out, alpha = _dual_ridge_loo(eigs.get(rows), Y, alphas)
        if eigs.kernel == "rbf":  # weights over all support rows (zero where the group is unobserved)
            W = np.zeros((eigs.X.shape[0], Y.shape[1]), np.float32)
            W[rows] = dual
        else:
            W = np.asarray(X.T @ dual, np.float32)
        return W, mean, held_out, alpha
    if eigs.kernel == "rbf":
        raise ValueError(f"kernel: rbf needs at most max_dual={max_dual} training rows, got {len(Y)}; use linear")
    W, held_out = _primal_ridge_oof(X, Y, alphas[0], folds, seed)
    return W, mean, held_out, float(alphas[0])


def _success_models(
    eigs: _EigenCache, scores: np.ndarray, alphas: Sequence[float], folds: int, calibration: str, seed: int, max_dual: int
) -> tuple[np.ndarray, np.ndarray, list[Calibrator], dict[str, float]]:
    """Ridge score models + calibrators for all options; options sharing a row mask are fitted together."""
    n, k = scores.shape
    W = np.zeros((eigs.X.shape[0] if eigs.kernel == "rbf" else eigs.X.shape[1], k), np.float32)
    b = np.zeros(k)
    cals: list[Calibrator | None] = [None] * k
    chosen: dict[str, float] = {}
    groups: dict[bytes, list[int]] = {}
    for j in range(k):
        groups.setdefault((~np.isnan(scores[:, j])).tobytes(), []).append(j)
    for mask_bytes, cols in groups.items():
        rows = np.flatnonzero(np.frombuffer(mask_bytes, dtype=bool))
        Y = scores[np.ix_(rows, cols)]
        if len(rows) < 2:
            for j in cols:
                cals[j] = Calibrator("constant", y=np.array([float(np.nanmean(scores[:, j]))]))
            continue
        Wg, bg, held_out, alpha = _ridge_fit(eigs, rows, Y, alphas, folds, seed, max_dual)
        for c, j in enumerate(cols):
            W[:, j], b[j] = Wg[:, c], bg[c]
            y = Y[:, c]
            if y.min() == y.max():
                cals[j] = Calibrator("constant", y=np.array([float(y[0])]))
            else:
                cals[j] = _fit_calibrator(held_out[:, c], y, calibration)
            chosen[str(j)] = alpha
    return W, b, [c for c in cals if c is not None], chosen


def _cheapest_head(
    eigs: _EigenCache, ts: TrainingSet, costs: dict[str, float], threshold: float, alphas: Sequence[float], folds: int, seed: int, max_dual: int
) -> tuple[list[str], np.ndarray, np.ndarray] | None:
    """One-vs-rest ridge over "cheapest option scoring >= threshold" labels (``"<none>"`` if none)."""
    order = sorted((j for j, o in enumerate(ts.options) if o in costs), key=lambda j: costs[ts.options[j]])
    if not order:
        return None
    labels = [next((ts.options[j] for j in order if ts.scores[i, j] >= threshold), "<none>") for i in range(len(ts.prompts))]
    classes = sorted(set(labels))
    if len(classes) < 2:
        return None
    onehot = np.array([[lbl == c for c in classes] for lbl in labels], dtype=np.float64)
    W, b, _, _ = _ridge_fit(eigs, np.arange(len(labels)), onehot, alphas, folds, seed, max_dual)
    return classes, W, b


def _compact(W: np.ndarray, sparse_features: bool) -> Any:
    """Store coefficients sparsely when most rows are zero (unseen hash buckets)."""
    if sparse_features and np.count_nonzero(W) < 0.5 * W.size:
        return sp.csr_matrix(W)
    return W


# ---------------------------------------------------------------- entry point


#: Ridge kernels of :func:`train_predictor`; ``linear+rbf`` averages the calibrated
#: probabilities of one model of each (lengths and the cheapest head: the linear one).
KERNELS = ("linear", "rbf", "linear+rbf")


def train_predictor(
    data: TrainingSet,
    featurizer: str = "hashed+structural",
    *,
    alphas: Sequence[float] = (0.3, 1.0, 3.0, 10.0),
    folds: int = 5,
    calibration: str = "auto",
    length_alpha: float = 10.0,
    option_costs: dict[str, float] | None = None,
    sufficient_threshold: float = 0.5,
    featurizer_weights: Sequence[float] | None = None,
    max_dual: int = 12_000,
    kernel: str = "linear",
    gamma: float = 2.0,
    seed: int = 0,
) -> Predictor:
    """Fit a :class:`Predictor` on ``data``; see the module docstring for the method.

    ``alphas``: ridge strengths tried (chosen by leave-one-out MSE; the first is
    used above ``max_dual`` rows, where ``folds``-fold cross-fitting replaces
    leave-one-out). ``kernel="rbf"`` uses ``exp(-gamma/2 * |x - y|^2)`` over the
    feature rows instead of the linear kernel (dual form only; the predictor
    then keeps the training rows as support vectors); ``kernel="linear+rbf"``
    fits one of each and averages their calibrated probabilities. ``option_costs`` (cost per query) override the costs
    observed in the data for the cheapest-sufficient head and are stored in the
    predictor. Raises ``ValueError`` naming the parameter for bad arguments.
    """
    if folds < 2:
        raise ValueError(f"folds: must be >= 2, got {folds}")
    if not alphas or any(not (a > 0 and math.isfinite(a)) for a in alphas):
        raise ValueError(f"alphas: must be positive finite numbers, got {list(alphas)}")
    if kernel not in KERNELS:
        raise ValueError(f"kernel: unknown {kernel!r}, available: {', '.join(KERNELS)}")
    if len(data.prompts) < 2 * folds:
        raise ValueError(f"data: need at least {2 * folds} prompts for {folds}-fold calibration, got {len(data.prompts)}")
    t0 = time.time()
    feat = get_featurizer(featurizer, featurizer_weights)
    texts = [clean_text(p) for p in data.prompts]
    feat.fit(texts)
    X = feat.transform(texts)
    blend = kernel == "linear+rbf"
    if blend:  # the linear model is the predictor; the rbf success model joins it below
        kernel = "linear"
    eigs = _EigenCache(X, kernel, gamma)
    W, b, cals, chosen = _success_models(eigs, data.scores, alphas, folds, calibration, seed, max_dual)
    k = len(data.options)
    budgets = [parse_option(o)[1] for o in data.options]
    think = [_length_head(X, data.thinking, j, budgets[j], length_alpha, folds, seed) for j in range(k)]
    ans = [_length_head(X, data.answer, j, None, length_alpha, folds, seed) for j in range(k)]
    given = {**data.costs, **(option_costs or {})}
    costs = {**given, **resolve_costs(given, data.options)}  # model@budget falls back to its model's cost
    head = _cheapest_head(eigs, data, costs, sufficient_threshold, alphas, folds, seed, max_dual) if costs else None
    meta = {
        "featurizer": feat.name,
        "options": list(data.options),
        "n_prompts": len(data.prompts),
        "n_thinking_samples": len(data.thinking),
        "n_answer_samples": len(data.answer),
        "kernel": kernel,
        "gamma": gamma if kernel == "rbf" else None,
        "alphas": list(alphas),
        "chosen_alpha": sorted(set(chosen.values())),
        "folds": folds,
        "calibration": [c.kind for c in cals],
        "sufficient_threshold": sufficient_threshold,
        "data_sha256": data.data_hash(),
    }
    members: tuple[Predictor, ...] = ()
    if blend:
        # Same features, so only the success model is fitted again; lengths and the
        # cheapest head stay the linear model's.
        rW, rb, rcals, rchosen = _success_models(_EigenCache(X, "rbf", gamma), data.scores, alphas, folds,
                                                 calibration, seed, max_dual)
        none = [None] * k
        members = (Predictor(feat, data.options, rW, rb, rcals, none, none, kernel="rbf", gamma=gamma,
                             support_t=_support(X)),)
        meta.update({"kernel": "linear+rbf", "gamma": gamma,
                     "blend": [{"kernel": "rbf", "gamma": gamma, "chosen_alpha": sorted(set(rchosen.values())),
                                "calibration": [c.kind for c in rcals]}]})
    meta["train_seconds"] = round(time.time() - t0, 2)
    pred = Predictor(
        feat,
        data.options,
        _compact(W, feat.sparse and kernel == "linear"),
        b,
        cals,
        think,
        ans,
        cheapest_classes=head[0] if head else None,
        cheapest_coef=_compact(head[1], feat.sparse and kernel == "linear") if head else None,
        cheapest_intercept=head[2] if head else None,
        option_costs=costs,
        metadata=meta,
        kernel=kernel,
        gamma=gamma,
        support_t=_support(X) if kernel == "rbf" else None,
    )
    pred.blend = members
    return pred


def _support(X: Any) -> Any:
    """Training feature rows, transposed, as the rbf kernel's support (``Predictor.support_t``)."""
    return X.T.tocsr() if sp.issparse(X) else np.ascontiguousarray(X.T)
