"""Token-length heads: mean (ridge on ``log1p(tokens)``) and p90 (quantile head or conformal residual rule).

Used by :mod:`predictors.train`; the fitted :class:`predictors.model.LengthHead`
is what the gateway evaluates.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from predictors.model import LengthHead, lognormal_sigma

__all__ = ["QUANTILE_MAX_DIM", "QUANTILE_MIN_SAMPLES"]


def _folds(n: int, folds: int, seed: int) -> list[np.ndarray]:
    """``folds`` disjoint index sets covering ``range(n)`` (seeded permutation); shared with predictors.train."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    return [perm[f::folds] for f in range(folds)]


def _length_head(X: Any, samples: list[tuple[int, int, float]], j: int, budget: int | None, alpha: float, folds: int, seed: int) -> LengthHead | None:
    rows = np.array([r for r, o, _ in samples if o == j], dtype=int)
    if rows.size == 0:
        return None
    t = np.log1p(np.array([v for _, o, v in samples if o == j], dtype=float))
    cap = float(budget) if budget is not None else None
    if rows.size < 20:
        return LengthHead(None, float(t.mean()), max(float(t.std()), 0.05), cap,
                          q90=_conformal_q90(t - t.mean()))
    from sklearn.linear_model import Ridge

    Xj = X[rows]
    resid = np.zeros_like(t)
    for test in _folds(rows.size, folds, seed):
        train = np.setdiff1d(np.arange(rows.size), test)
        m = Ridge(alpha=alpha).fit(Xj[train], t[train])
        resid[test] = t[test] - m.predict(Xj[test])
    m = Ridge(alpha=alpha).fit(Xj, t)
    head = LengthHead(np.asarray(m.coef_, np.float32), float(m.intercept_), lognormal_sigma(resid), cap,
                      q90=_conformal_q90(resid))
    if rows.size >= QUANTILE_MIN_SAMPLES and not sp.issparse(Xj) and Xj.shape[1] <= QUANTILE_MAX_DIM:
        head.q_coef, head.q_intercept, head.q90 = _quantile_head(np.asarray(Xj, np.float64), t, folds, seed)
    return head


#: A length quantile head needs this many samples of the option (else the residual rule is used).
QUANTILE_MIN_SAMPLES = 50
#: ... and dense features of at most this width (the pinball-loss fit is a linear program).
QUANTILE_MAX_DIM = 256
_QUANTILE_L1 = 1e-3  # small L1 penalty: keeps the linear program bounded on collinear columns


def _quantile_head(X: np.ndarray, t: np.ndarray, folds: int, seed: int) -> tuple[np.ndarray, float, float]:
    """Linear 0.9-quantile regression of ``t`` on ``X`` with a cross-conformal correction.

    Why a quantile head: budget-capped lengths are a point mass at the cap for
    hard prompts and spread out below it for easy ones, so residuals around a
    mean model are far from one shared distribution; a per-prompt 0.9-quantile
    puts the p90 at the cap exactly when P(hitting the cap | prompt) > 10%.
    The correction is the split-conformal one on cross-fitted scores: every
    sample's score ``t - q(x)`` comes from a fit that did not see it, and the
    correction is the ceil(0.9 (n + 1))-th smallest score.
    Returns (coefficients, intercept, correction).
    """
    from sklearn.linear_model import QuantileRegressor

    def fit(rows: np.ndarray) -> Any:
        return QuantileRegressor(quantile=0.9, alpha=_QUANTILE_L1, solver="highs").fit(X[rows], t[rows])

    scores = np.zeros_like(t)
    for test in _folds(t.size, folds, seed):
        scores[test] = t[test] - fit(np.setdiff1d(np.arange(t.size), test)).predict(X[test])
    m = fit(np.arange(t.size))
    return np.asarray(m.coef_, np.float32), float(m.intercept_), _conformal_q90(scores)


def _conformal_q90(resid: np.ndarray) -> float:
    """The ceil(0.9 (n + 1))-th smallest held-out score: split-conformal 90% upper bound."""
    n = resid.size
    k = min(n, int(np.ceil(0.9 * (n + 1))))
    return float(np.sort(resid)[k - 1])
