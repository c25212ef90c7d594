"""Replay: evaluate strategies on a logged outcome table without calling any model.

:func:`run_replay` runs the named strategies (:mod:`evals.strategies`), scores
every operating point (score, cost, tokens, per-difficulty score, E3, TEP,
budget utilisation, regret against the offline MCKP optimum at the same
budget), and computes the curve metrics: AIQ per strategy family and, for a
strong/weak pair, APGR and CPT(50%/80%) of the oracle, random and (when a
predictor is given) predictor-ranked routers. The result is one JSON-ready dict.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from evals import metrics
from evals.replay_table import ReplayTable
from evals.strategies import Choice, ReplayContext, best_single_index, get_strategy, knapsack_choice

__all__ = ["DEFAULT_STRATEGIES", "evaluate_choice", "pair_curve", "run_replay"]

DEFAULT_STRATEGIES: tuple[str, ...] = (
    "fixed", "best_single", "oracle", "random", "oracle_knapsack", "predictor_knapsack", "predictor_paced",
    "predictor_argmax",
)


def _finite_or_none(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def evaluate_choice(table: ReplayTable, choice: Choice) -> dict[str, Any]:
    """Metrics of one operating point: mean ``score``, mean ``cost`` and ``tokens`` per query, and more.

    ``tokens``/``thinking_tokens`` are ``None`` when the table has no counts;
    ``by_difficulty`` maps each ``meta["difficulty"]`` value to its mean score.
    """
    w = choice.weights
    if w.shape != table.scores.shape:
        raise ValueError(f"strategy {choice.name!r}: weights shape {w.shape} != table shape {table.scores.shape}")
    per_score = (w * table.scores).sum(axis=1)
    per_cost = (w * table.costs).sum(axis=1)
    out: dict[str, Any] = {
        "family": choice.family,
        "score": float(per_score.mean()),
        "cost": float(per_cost.mean()),
        "total_cost": float(per_cost.sum()),
        "tokens": None,
        "thinking_tokens": None,
        **{k: v for k, v in choice.params.items() if isinstance(v, int | float | str)},
    }
    tokens = table.tokens
    if tokens is not None and not np.isnan(tokens[w > 0]).any():
        out["tokens"] = float((w * np.nan_to_num(tokens)).sum(axis=1).mean())
        if out["tokens"] > 0:
            out["e3"] = metrics.e3(out["score"], out["tokens"])
    if table.thinking is not None and not np.isnan(table.thinking[w > 0]).any():
        out["thinking_tokens"] = float((w * np.nan_to_num(table.thinking)).sum(axis=1).mean())
    if "capacity" in choice.params and choice.params["capacity"] > 0:
        out["budget_utilisation"] = metrics.budget_utilisation(out["total_cost"], choice.params["capacity"])
    diffs = [m.get("difficulty") for m in table.meta] if table.meta else []
    if any(d is not None for d in diffs):
        groups: dict[str, list[int]] = {}
        for i, d in enumerate(diffs):
            groups.setdefault(str(d), []).append(i)
        out["by_difficulty"] = {d: float(per_score[ix].mean()) for d, ix in sorted(groups.items())}
    return out


def pair_curve(table: ReplayTable, strong: int, weak: int, router_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy vs strong-call share when the top-k queries by ``router_score`` go to ``strong``.

    Returns ``(share[k], accuracy[k])`` for k = 0..N (every threshold of the
    router; ties broken by query order, a deterministic choice).
    """
    n = len(table.prompts)
    order = np.argsort(-np.asarray(router_score, dtype=np.float64), kind="stable")
    gain = table.scores[order, strong] - table.scores[order, weak]
    acc = (table.scores[:, weak].sum() + np.concatenate([[0.0], np.cumsum(gain)])) / n
    return np.arange(n + 1) / n, acc


def _pair_metrics(table: ReplayTable, strong: int, weak: int, scorers: dict[str, np.ndarray | None]) -> dict[str, Any]:
    s_acc = float(table.scores[:, strong].mean())
    w_acc = float(table.scores[:, weak].mean())
    out: dict[str, Any] = {"strong": table.options[strong], "weak": table.options[weak],
                           "strong_score": s_acc, "weak_score": w_acc, "routers": {}}
    if math.isclose(s_acc, w_acc):
        out["note"] = "strong and weak score the same: APGR/CPT undefined"
        return out
    for name, score in scorers.items():
        if score is None:
            # The random router's expected curve is the straight line weak -> strong.
            share, acc = np.array([0.0, 1.0]), np.array([w_acc, s_acc])
        else:
            share, acc = pair_curve(table, strong, weak, score)
        out["routers"][name] = {
            "apgr": metrics.apgr(share, acc, w_acc, s_acc),
            "cpt50": _finite_or_none(metrics.cpt(0.5, share, acc, w_acc, s_acc)),
            "cpt80": _finite_or_none(metrics.cpt(0.8, share, acc, w_acc, s_acc)),
        }
    return out


def run_replay(
    table: ReplayTable,
    strategies: Sequence[str] = DEFAULT_STRATEGIES,
    ctx: ReplayContext | None = None,
    strong: str | None = None,
    weak: str | None = None,
) -> dict[str, Any]:
    """Run ``strategies`` on ``table`` and return the full report dict.

    Keys: ``n``, ``options``, ``cost_unit``, ``strategies`` (name -> metrics of
    :func:`evaluate_choice` plus ``regret`` for budgeted points), ``aiq``
    (family -> AIQ, normalised by the most expensive fixed option's mean cost),
    ``pair`` (APGR/CPT; strong defaults to the best single option, weak to the
    cheapest option, ties to the better one), ``tep`` (per strategy, against
    the cheapest option; only with token counts).
    """
    ctx = ctx or ReplayContext()
    predicted = None
    if ctx.predictor is not None:
        # Predict once; every predictor strategy and the calibration reuse it.
        predicted = ctx.predictor(table)
        ctx = dataclasses.replace(ctx, predictor=lambda _t: predicted)
    choices: list[Choice] = []
    for name in strategies:
        choices.extend(get_strategy(name)(table, ctx))
    results = {c.name: evaluate_choice(table, c) for c in choices}
    # Regret: offline MCKP optimum at the same capacity, mean per query (one exact DP per capacity).
    optimum: dict[float, float] = {}
    for c in choices:
        cap = c.params.get("capacity")
        if cap is not None:
            if cap not in optimum:
                opt = knapsack_choice(table.scores, table.costs, cap, exact=True)
                optimum[cap] = float(table.scores[np.arange(len(opt)), opt].mean())
            results[c.name]["regret"] = metrics.regret(results[c.name]["score"], optimum[cap])
    report: dict[str, Any] = {"n": len(table.prompts), "options": list(table.options), "cost_unit": table.cost_unit,
                              "strategies": results}
    max_cost = float(table.costs.mean(axis=0).max())
    families: dict[str, list[tuple[float, float]]] = {}
    for r in results.values():
        families.setdefault(r["family"], []).append((r["cost"], r["score"]))
    if max_cost > 0:
        # A family with one point has no curve; RouterBench's AIQ is about frontiers.
        report["aiq"] = {f: metrics.aiq([p[0] for p in pts], [p[1] for p in pts], max_cost)
                         for f, pts in families.items() if len(pts) >= 2}
    for flag, opt in (("--strong", strong), ("--weak", weak)):
        if opt is not None and opt not in table.options:
            raise ValueError(f"{flag}: {opt!r} is not an option of the table ({', '.join(table.options)})")
    j_strong = table.options.index(strong) if strong else best_single_index(table)
    mean_c, mean_s = table.costs.mean(axis=0), table.scores.mean(axis=0)
    j_weak = (table.options.index(weak) if weak else
              int(min(range(len(table.options)), key=lambda j: (mean_c[j], -mean_s[j], j))))
    scorers: dict[str, np.ndarray | None] = {
        "oracle": table.scores[:, j_strong] - table.scores[:, j_weak],
        "random": None,
    }
    if predicted is not None:
        values = np.asarray(predicted[0], dtype=np.float64)
        scorers[ctx.predictor_name] = values[:, j_strong] - values[:, j_weak]
        report["calibration"] = metrics.reliability_bins(values, table.scores)
    if j_strong != j_weak:
        report["pair"] = _pair_metrics(table, j_strong, j_weak, scorers)
    tokens = table.tokens
    if tokens is not None and not np.isnan(tokens[:, j_weak]).any():
        base_acc, base_tok = float(mean_s[j_weak]), float(tokens[:, j_weak].mean())
        report["tep"] = {n: _finite_or_none(metrics.tep(r["score"], r["tokens"], base_acc, base_tok))
                         for n, r in results.items() if r.get("tokens") is not None}
    return report

