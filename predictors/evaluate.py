"""Held-out evaluation of a predictor: calibration, ranking, lengths, and cost-aware routing.

All metrics are pure functions of arrays so they can be tested on small inputs.
Definitions:

* AUROC per option with labels ``score >= 0.5`` (undefined -> ``None`` when the
  test labels of an option have one class);
* Brier score against the (possibly fractional) score;
* ECE: 10 equal-width probability bins, ``sum_b (n_b / n) * |mean(p) - mean(score)|``;
* length MAE of the predicted mean, and coverage = fraction of actual lengths
  ``<=`` the predicted p90 (nominal 0.9); the p90's pinball loss (tau = 0.9, in
  tokens; a proper scoring rule for the 0.9-quantile, lower is better, so it
  ranks quantile methods where coverage alone cannot); for options with a
  thinking budget, the share of lengths at the cap (``>= budget - 1``: vLLM
  counts the newline after ``<think>`` against the budget) and the coverage
  among the lengths below it. Where more than 10% of an option's lengths sit
  at the cap, a correct per-prompt p90 is the cap for those prompts, so
  coverage above 0.9 is expected there, not a defect;
* quantile calibration for integer lengths: a tau-quantile of a discrete
  distribution F is any q with F(q-) <= tau <= F(q), so besides the coverage
  P(L <= p90) the report gives the strict coverage P(L < p90), and the p90 is
  called calibrated (``p90_calibrated``) when 0.9 lies in
  [strict - 0.05, coverage + 0.05]. For continuous lengths the two coverages
  coincide and this is the usual "within 5 points of nominal"; for a point
  mass (a greedy length that is a function of the prompt, or lengths at a
  cap) it accepts q equal to the mass and still rejects a p90 above every
  outcome (strict coverage ~1) or below too many (coverage < 0.85);
* routing: per query pick ``argmax_j P_ij - lambda * cost_j`` over a lambda sweep;
  ``routed_score_at_40pct_cost`` is the best mean score among sweep points whose
  mean cost is <= 40% of the best single option's mean cost (``None`` if none).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from predictors.featurizers import clean_text
from predictors.model import Predictor
from predictors.records import resolve_costs
from predictors.train import TrainingSet

__all__ = ["auroc", "brier", "ece", "evaluate_predictor", "load_costs", "pinball", "quantile_calibration",
           "routing_sweep"]


def auroc(p: np.ndarray, y: np.ndarray) -> float | None:
    """Area under the ROC curve (ties counted half); ``None`` if ``y`` has one class."""
    y = np.asarray(y, bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    from scipy.stats import rankdata

    ranks = rankdata(p)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def brier(p: np.ndarray, y: np.ndarray) -> float:
    """Mean squared error between probabilities and (soft) outcomes."""
    return float(np.mean((np.asarray(p, float) - np.asarray(y, float)) ** 2))


def ece(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error over ``bins`` equal-width bins."""
    p, y = np.asarray(p, float), np.asarray(y, float)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.mean() * abs(p[m].mean() - y[m].mean())
    return float(total)


def load_costs(spec: str | Path) -> dict[str, float]:
    """Read ``{option: cost}`` or a ``default_llm.json``-style price file.

    For a price file (values are objects with ``input_price`` and
    ``output_price``) the cost per query is ``input_price + output_price``.
    Raises ``ValueError`` naming the offending key.
    """
    data = json.loads(Path(spec).read_text(encoding="utf-8"))
    if not isinstance(data, Mapping):
        raise ValueError(f"--costs: {spec} must hold a JSON object")
    out: dict[str, float] = {}
    for k, v in data.items():
        if isinstance(v, Mapping):
            try:
                out[k] = float(v["input_price"]) + float(v["output_price"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"--costs: {spec}: entry {k!r} needs numeric input_price and output_price") from exc
        elif isinstance(v, int | float) and not isinstance(v, bool) and v >= 0:
            out[k] = float(v)
        else:
            raise ValueError(f"--costs: {spec}: entry {k!r} must be a non-negative number or a price object")
    return out


def routing_sweep(P: np.ndarray, S: np.ndarray, cost: np.ndarray, n_lambda: int = 120) -> list[dict[str, float]]:
    """Score and mean cost of ``argmax_j P_ij - lambda * cost_j`` for a sweep of lambdas.

    ``P``, ``S``: ``(n, k)`` predicted probabilities and true scores (no NaN);
    ``cost``: ``(k,)``. Lambdas: 0 and a geometric grid from 1e-4 to 1e3 divided
    by the largest cost, which reaches "always the cheapest" at the top.
    """
    scale = float(cost.max()) if cost.max() > 0 else 1.0
    lambdas = np.r_[0.0, np.geomspace(1e-4, 1e3, n_lambda) / scale]
    out = []
    for lam in lambdas:
        pick = np.argmax(P - lam * cost[None, :], axis=1)
        out.append({"lambda": float(lam), "score": float(S[np.arange(len(S)), pick].mean()), "cost": float(cost[pick].mean())})
    return out


def _lengths_report(pred: Predictor, X: Any, test: TrainingSet, kind: str) -> dict[str, dict[str, float]]:
    samples = test.thinking if kind == "thinking" else test.answer
    heads = pred.thinking_heads if kind == "thinking" else pred.answer_heads
    idx = {o: j for j, o in enumerate(pred.options)}
    out: dict[str, dict[str, float]] = {}
    for jt, o in enumerate(test.options):
        j = idx.get(o)
        rows = [(r, v) for r, oo, v in samples if oo == jt]
        if j is None or heads[j] is None or not rows:
            continue
        r = np.array([a for a, _ in rows])
        v = np.array([b for _, b in rows], float)
        mean, p90 = pred.lengths(X[r], [heads[j]])[0]  # type: ignore[misc]
        cov, strict, ok = quantile_calibration(v, p90, 0.9)
        out[o] = {"n": len(rows), "mae": float(np.abs(mean - v).mean()), "p90_coverage": cov,
                  "p90_coverage_strict": strict, "p90_calibrated": ok, "p90_pinball": pinball(v, p90, 0.9)}
        budget = pred.option_budget(o) if kind == "thinking" else None
        if budget is not None:
            below = v < budget - 1
            out[o]["at_cap_share"] = float(1.0 - below.mean())
            out[o]["p90_coverage_below_cap"] = float((v[below] <= p90[below]).mean()) if below.any() else None
    return out


def quantile_calibration(y: np.ndarray, q: np.ndarray, tau: float, tol: float = 0.05) -> tuple[float, float, bool]:
    """``(P(y <= q), P(y < q), calibrated)`` of predicted ``tau``-quantiles ``q`` of integer outcomes ``y``.

    Calibrated: ``tau`` lies in ``[P(y < q) - tol, P(y <= q) + tol]`` (a
    ``tau``-quantile q of a discrete F satisfies F(q-) <= tau <= F(q)).
    """
    y, q = np.asarray(y, float), np.asarray(q, float)
    if y.shape != q.shape or y.size == 0:
        raise ValueError(f"quantile_calibration: need equal non-empty shapes, got {y.shape} and {q.shape}")
    cov, strict = float((y <= q).mean()), float((y < q).mean())
    return cov, strict, bool(strict - tol <= tau <= cov + tol)


def pinball(y: np.ndarray, q: np.ndarray, tau: float) -> float:
    """Mean pinball (quantile) loss of predictions ``q`` for the ``tau``-quantile of ``y``."""
    d = np.asarray(y, float) - np.asarray(q, float)
    return float(np.mean(np.maximum(tau * d, (tau - 1.0) * d)))


def evaluate_predictor(pred: Predictor, test: TrainingSet, costs: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Metrics of ``pred`` on ``test`` (see the module docstring). Options unknown to ``pred`` are skipped.

    Routing uses ``costs`` if given, else the test set's observed costs, else the
    predictor's training costs; routing is skipped (``None`` fields) when an
    option lacks a cost or some test rows lack a score for it.
    """
    known = [o for o in test.options if o in pred.options]
    if not known:
        raise ValueError("test: no option in common with the predictor's options")
    jt = [test.options.index(o) for o in known]
    X = pred.featurizer.transform([clean_text(p) for p in test.prompts])  # as Predictor.predict_batch does
    P = pred.probabilities(X)[:, [pred.options.index(o) for o in known]]
    S = test.scores[:, jt]
    per_option: dict[str, dict[str, Any]] = {}
    for c, o in enumerate(known):
        m = ~np.isnan(S[:, c])
        if not m.any():
            continue
        per_option[o] = {
            "n": int(m.sum()),
            "auroc": auroc(P[m, c], S[m, c] >= 0.5),
            "brier": brier(P[m, c], S[m, c]),
            "ece": ece(P[m, c], S[m, c]),
            "mean_p": float(P[m, c].mean()),
            "mean_score": float(S[m, c].mean()),
        }
    aurocs = [v["auroc"] for v in per_option.values() if v["auroc"] is not None]
    result: dict[str, Any] = {
        "n_test": len(test.prompts),
        "options": per_option,
        "mean_auroc": float(np.mean(aurocs)) if aurocs else None,
        "mean_brier": float(np.mean([v["brier"] for v in per_option.values()])),
        "mean_ece": float(np.mean([v["ece"] for v in per_option.values()])),
        "lengths": {"thinking": _lengths_report(pred, X, test, "thinking"), "answer": _lengths_report(pred, X, test, "answer")},
    }
    cost_map = resolve_costs(dict(costs) if costs else (test.costs or pred.option_costs), known)
    full = ~np.isnan(S).any(axis=1)
    routing: dict[str, Any] = dict.fromkeys(
        ["best_single", "best_single_score", "best_single_cost", "oracle_score", "oracle_cost", "routed_score_at_40pct_cost", "sweep"]
    )
    if all(o in cost_map for o in known) and full.any():
        Sf, Pf = S[full], P[full]
        cost = np.array([cost_map[o] for o in known], float)
        means = Sf.mean(axis=0)
        best = int(np.argmax(means))
        # Oracle: best score per query, cheapest among ties.
        best_per = Sf.max(axis=1, keepdims=True)
        oracle_pick = np.argmin(np.where(Sf >= best_per - 1e-12, cost[None, :], np.inf), axis=1)
        sweep = routing_sweep(Pf, Sf, cost)
        budget = 0.4 * cost[best]
        ok = [p["score"] for p in sweep if p["cost"] <= budget + 1e-12]
        routing.update(
            best_single=known[best],
            best_single_score=float(means[best]),
            best_single_cost=float(cost[best]),
            oracle_score=float(best_per.mean()),
            oracle_cost=float(cost[oracle_pick].mean()),
            routed_score_at_40pct_cost=max(ok) if ok else None,
            routed_score_at_lambda0=sweep[0]["score"],
            routed_cost_at_lambda0=sweep[0]["cost"],
            n_routed=int(full.sum()),
            sweep=sweep,
        )
        if pred.cheapest_classes is not None:
            routing.update(_cheapest_routing(pred, X[np.flatnonzero(full)], Sf, known, cost))
    result["routing"] = routing
    result.update({k: routing[k] for k in ("best_single_score", "best_single_cost", "oracle_score", "routed_score_at_40pct_cost")})
    return result


def _cheapest_routing(pred: Predictor, X: Any, S: np.ndarray, known: list[str], cost: np.ndarray) -> dict[str, float]:
    """Score/cost of following the cheapest-sufficient head ("<none>" -> the best single option)."""
    F = pred.kernel_features(X) @ pred.cheapest_coef
    z = np.asarray(F.toarray() if hasattr(F, "toarray") else F, float) + pred.cheapest_intercept
    labels = [pred.cheapest_classes[i] for i in np.argmax(z, axis=1)]  # type: ignore[index]
    fallback = int(np.argmax(S.mean(axis=0)))
    pick = np.array([known.index(lbl) if lbl in known else fallback for lbl in labels])
    return {"cheapest_head_score": float(S[np.arange(len(S)), pick].mean()), "cheapest_head_cost": float(cost[pick].mean())}
