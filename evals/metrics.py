"""Pure evaluation metrics for routing and budget allocation (numpy only).

Definitions and sources:

* APGR / CPT(x): RouteLLM (arXiv 2406.18665, ``routellm/evals/evaluate.py``):
  a router's curve is accuracy as a function of the share of calls sent to the
  strong model; APGR = (AUC - weak AUC) / (strong AUC - weak AUC) with the
  weak/strong AUCs the flat lines at their accuracies; CPT(x) = the strong-call
  share needed to recover a fraction x of the weak-to-strong accuracy gap.
* AIQ: RouterBench (arXiv 2403.12031, ``evaluation/AIQ.py``): area under the
  non-decreasing convex hull of the (cost, quality) points, extended flat to the
  largest cost, divided by that cost.
* TEP: EllieSQL (arXiv 2503.22402): (dEX / EX_B) / (dT / T_B) against a base B.
* E3 = A^2 / T: Plan-and-Budget (arXiv 2505.16122).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "aiq",
    "apgr",
    "budget_utilisation",
    "cpt",
    "e3",
    "non_decreasing_hull",
    "pareto_front",
    "regret",
    "reliability_bins",
    "tep",
]


def _curve(strong_share: Sequence[float], accuracy: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(strong_share, dtype=np.float64)
    y = np.asarray(accuracy, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size == 0:
        raise ValueError("strong_share: must be a non-empty 1-D sequence as long as accuracy")
    if np.any((x < 0) | (x > 1)) or not np.all(np.isfinite(y)):
        raise ValueError("strong_share: values must lie in [0, 1]; accuracy must be finite")
    order = np.argsort(x, kind="stable")
    return x[order], y[order]


def apgr(strong_share: Sequence[float], accuracy: Sequence[float], weak_acc: float, strong_acc: float) -> float:
    """Average performance gap recovered (RouteLLM).

    ``strong_share[i]`` in [0, 1] is the fraction of queries a router sent to
    the strong model at threshold i and ``accuracy[i]`` the accuracy it got.
    Missing endpoints are added as (0, ``weak_acc``) and (1, ``strong_acc``)
    (a router at threshold 0/1 *is* the weak/strong model). Trapezoidal AUC over
    [0, 1]. Raises ``ValueError`` when ``strong_acc == weak_acc``.
    """
    if math.isclose(strong_acc, weak_acc):
        raise ValueError("strong_acc: must differ from weak_acc (no gap to recover)")
    x, y = _curve(strong_share, accuracy)
    if x[0] > 0:
        x, y = np.concatenate([[0.0], x]), np.concatenate([[weak_acc], y])
    if x[-1] < 1:
        x, y = np.concatenate([x, [1.0]]), np.concatenate([y, [strong_acc]])
    auc = float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))
    return (auc - weak_acc) / (strong_acc - weak_acc)


def cpt(
    fraction: float, strong_share: Sequence[float], accuracy: Sequence[float], weak_acc: float, strong_acc: float
) -> float:
    """Call-performance threshold CPT(``fraction``): smallest strong share reaching the target accuracy.

    Target = weak + fraction * (strong - weak). The curve is linearly
    interpolated between points, starting from (0, weak_acc); this equals
    RouteLLM's ``np.interp`` when accuracy rises monotonically, and stays
    well-defined when it does not (first crossing). ``nan`` if never reached.
    """
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction: must be in [0, 1], got {fraction}")
    x, y = _curve(strong_share, accuracy)
    if x[0] > 0:
        x, y = np.concatenate([[0.0], x]), np.concatenate([[weak_acc], y])
    target = weak_acc + fraction * (strong_acc - weak_acc)
    if y[0] >= target - 1e-12:
        return float(x[0])
    for i in range(1, len(x)):
        if y[i] >= target - 1e-12:
            if y[i] == y[i - 1]:
                return float(x[i])
            t = (target - y[i - 1]) / (y[i] - y[i - 1])
            return float(x[i - 1] + t * (x[i] - x[i - 1]))
    return float("nan")


def non_decreasing_hull(costs: Sequence[float], quality: Sequence[float]) -> np.ndarray:
    """Vertices ``[[cost, quality], ...]`` of the non-decreasing upper convex hull (RouterBench).

    The upper hull of the points, cut at its highest-quality vertex (beyond it
    one can always pay more and keep that quality, so the hull turns flat).
    Sorted by cost.
    """
    c = np.asarray(costs, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    if c.shape != q.shape or c.ndim != 1 or c.size == 0:
        raise ValueError("costs: must be a non-empty 1-D sequence as long as quality")
    if not (np.all(np.isfinite(c)) and np.all(np.isfinite(q))):
        raise ValueError("costs: costs and quality must be finite")
    pts = sorted(zip(c.tolist(), q.tolist(), strict=True), key=lambda p: (p[0], -p[1]))
    hull: list[tuple[float, float]] = []
    for p in pts:
        if hull and p[0] == hull[-1][0]:
            continue  # same cost, lower or equal quality: dominated
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            # Drop the middle point when it lies on or below the chord (upper hull).
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) >= 0:
                hull.pop()
            else:
                break
        hull.append(p)
    best = max(range(len(hull)), key=lambda i: (hull[i][1], -hull[i][0]))
    return np.asarray(hull[: best + 1], dtype=np.float64)


def aiq(costs: Sequence[float], quality: Sequence[float], max_cost: float | None = None) -> float:
    """Average improvement in quality (RouterBench): normalised area under the non-decreasing hull.

    The hull (:func:`non_decreasing_hull`) is extended flat to ``max_cost``
    (default: the largest cost given) and integrated with the trapezoid rule
    from its cheapest vertex; the area is divided by ``max_cost``. With quality
    in [0, 1] the result is in [0, 1].
    """
    hull = non_decreasing_hull(costs, quality)
    top = float(np.max(np.asarray(costs, dtype=np.float64))) if max_cost is None else float(max_cost)
    if top <= 0:
        raise ValueError("max_cost: must be > 0")
    xs, ys = hull[:, 0], hull[:, 1]
    if xs[-1] < top:
        xs, ys = np.concatenate([xs, [top]]), np.concatenate([ys, [ys[-1]]])
    area = float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2))
    return area / top


def pareto_front(costs: Sequence[float], quality: Sequence[float]) -> list[int]:
    """Indices of the Pareto-optimal points (no other point is cheaper-or-equal and better), by cost."""
    c = np.asarray(costs, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    order = np.lexsort((-q, c))
    front: list[int] = []
    best = -math.inf
    for i in order:
        if q[i] > best:
            front.append(int(i))
            best = float(q[i])
    return front


def tep(acc: float, tokens: float, base_acc: float, base_tokens: float) -> float:
    """Token elasticity of performance (EllieSQL): relative accuracy gain per relative token increase.

    ``((acc - base_acc) / base_acc) / ((tokens - base_tokens) / base_tokens)``.
    ``nan`` when the base accuracy or tokens are 0 or the token counts are equal.
    """
    if base_acc == 0 or base_tokens == 0 or tokens == base_tokens:
        return float("nan")
    return ((acc - base_acc) / base_acc) / ((tokens - base_tokens) / base_tokens)


def e3(accuracy: float, avg_tokens: float) -> float:
    """Plan-and-Budget's E3 = A^2 / T (accuracy squared over average tokens per query)."""
    if avg_tokens <= 0:
        raise ValueError(f"avg_tokens: must be > 0, got {avg_tokens}")
    return accuracy * accuracy / avg_tokens


def budget_utilisation(spent: float, budget: float) -> float:
    """Share of the budget spent (``spent / budget``; > 1 means overspent)."""
    if budget <= 0:
        raise ValueError(f"budget: must be > 0, got {budget}")
    return spent / budget


def regret(value: float, optimum: float) -> float:
    """Shortfall against the offline optimum at the same budget (``optimum - value``, >= 0 if optimal)."""
    return optimum - value


def reliability_bins(p: np.ndarray, y: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Reliability-diagram data: per equal-width bin of predicted p, mean p, mean outcome and count; plus ECE.

    ``y`` may be fractional (mean score); empty bins are dropped.
    """
    p = np.asarray(p, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if p.shape != y.shape or p.size == 0:
        raise ValueError("p: must be a non-empty array shaped like y")
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    out: dict[str, Any] = {"mean_p": [], "mean_y": [], "count": []}
    ece = 0.0
    for b in range(bins):
        mask = idx == b
        if mask.any():
            mp, my, n = float(p[mask].mean()), float(y[mask].mean()), int(mask.sum())
            out["mean_p"].append(mp)
            out["mean_y"].append(my)
            out["count"].append(n)
            ece += n / p.size * abs(mp - my)
    out["ece"] = ece
    return out
