"""Replay strategies: an outcome table in, a choice of option per query out (a small registry).

A strategy is a function ``(table, ctx) -> list[Choice]``; one strategy may
return several choices (a sweep: one per global budget or price). A choice is a
row-stochastic weight matrix ``[N, M]``: one-hot rows for deterministic
decisions, uniform rows for the random router (its exact expectation, so no
seed noise enters the comparison).

Register more with :func:`register_strategy` (router strategies, online
budget policies); unknown names fail with "unknown strategy 'x', available: ...".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evals.replay_table import ReplayTable

__all__ = [
    "STRATEGIES",
    "Choice",
    "PredictFn",
    "ReplayContext",
    "StrategyFn",
    "get_strategy",
    "knapsack_choice",
    "one_hot",
    "register_strategy",
]

#: ``predict(table) -> (values[N, M], predicted_costs[N, M] | None)``: per query and option, the
#: expected score (P(correct)) and cost; ``None`` costs mean "use the table's costs" (known prices).
PredictFn = Callable[[ReplayTable], tuple[np.ndarray, np.ndarray | None]]


@dataclass(frozen=True)
class Choice:
    """One evaluated operating point: ``weights[i, j]`` = probability of option j on query i."""

    name: str
    family: str
    weights: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReplayContext:
    """Knobs shared by strategies.

    ``budget_fractions`` scale the reference spend (the best single option's
    total cost) into global budgets; ``lambdas`` are the prices tried by the
    argmax(value - lambda * cost) router; ``predictor`` supplies predicted values
    (``None``: predictor strategies are skipped).
    """

    budget_fractions: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    lambdas: tuple[float, ...] = (0.0, 0.02, 0.05, 0.1, 0.2)
    predictor: PredictFn | None = None
    predictor_name: str = "predictor"


StrategyFn = Callable[[ReplayTable, ReplayContext], list[Choice]]


def one_hot(choice: Sequence[int] | np.ndarray, n_options: int) -> np.ndarray:
    """``[N, n_options]`` one-hot weights from a per-row option index."""
    idx = np.asarray(choice, dtype=np.int64)
    w = np.zeros((idx.size, n_options))
    w[np.arange(idx.size), idx] = 1.0
    return w


def best_single_index(table: ReplayTable) -> int:
    """The option with the highest mean score; ties go to the cheaper (mean cost) one."""
    mean_s = table.scores.mean(axis=0)
    mean_c = table.costs.mean(axis=0)
    return int(min(range(len(table.options)), key=lambda j: (-round(mean_s[j], 12), mean_c[j], j)))


def reference_spend(table: ReplayTable) -> float:
    """Total cost of the best single option: the scale of the global budgets."""
    return float(table.costs[:, best_single_index(table)].sum())


def _fixed(table: ReplayTable, ctx: ReplayContext) -> list[Choice]:
    m = len(table.options)
    return [Choice(f"fixed:{o}", "fixed", one_hot(np.full(len(table.prompts), j), m), {"option": o})
            for j, o in enumerate(table.options)]


def _best_single(table: ReplayTable, ctx: ReplayContext) -> list[Choice]:
    j = best_single_index(table)
    return [Choice("best_single", "best_single", one_hot(np.full(len(table.prompts), j), len(table.options)),
                   {"option": table.options[j]})]


def _oracle(table: ReplayTable, ctx: ReplayContext) -> list[Choice]:
    # Best score per query; among ties the cheapest option (lexsort: last key is primary).
    n = len(table.prompts)
    choice = np.empty(n, dtype=np.int64)
    for i in range(n):
        choice[i] = np.lexsort((table.costs[i], -table.scores[i]))[0]
    return [Choice("oracle", "oracle", one_hot(choice, len(table.options)))]


def _random(table: ReplayTable, ctx: ReplayContext) -> list[Choice]:
    m = len(table.options)
    return [Choice("random", "random", np.full((len(table.prompts), m), 1.0 / m))]


def knapsack_choice(values: np.ndarray, costs: np.ndarray, capacity: float, exact: bool = False) -> np.ndarray:
    """Per-query option index maximising total ``values`` with total ``costs`` <= ``capacity`` (MCKP).

    Uses ``budget.mckp``: the LP-greedy over convex hulls by default (what the
    gateway runs), the exact DP when ``exact``. When even the cheapest options
    exceed the capacity, every query gets its cheapest option.
    """
    from budget.mckp import MCKPInfeasible, solve_exact, solve_greedy

    try:
        if exact:
            return solve_exact(values, costs, capacity, unit=_dp_unit(costs, capacity)).choice
        return solve_greedy(values, costs, capacity).choice
    except MCKPInfeasible:
        return np.argmin(costs, axis=1)


def _dp_unit(costs: np.ndarray, capacity: float) -> float:
    """Largest decimal unit in which every cost is whole (exact DP); else capacity / 20000."""
    for d in range(7):
        unit = 10.0**-d
        if capacity / unit > 5e6:
            break
        if np.allclose(costs / unit, np.round(costs / unit), atol=1e-6):
            return unit
    return capacity / 20_000


def _budgets(table: ReplayTable, ctx: ReplayContext) -> list[tuple[float, float]]:
    ref = reference_spend(table)
    return [(f, f * ref) for f in ctx.budget_fractions]


def _oracle_knapsack(table: ReplayTable, ctx: ReplayContext) -> list[Choice]:
    """Offline optimum at each global budget: exact MCKP on the true scores (hindsight)."""
    out = []
    # A tiny cost penalty makes the optimum prefer the cheapest of equal-value choices.
    values = table.scores - 1e-7 * table.costs / max(float(table.costs.max()), 1e-12)
    for frac, cap in _budgets(table, ctx):
        choice = knapsack_choice(values, table.costs, cap, exact=True)
        out.append(Choice(f"oracle_knapsack@{frac:.0%}", "oracle_knapsack", one_hot(choice, len(table.options)),
                          {"budget_fraction": frac, "capacity": cap}))
    return out


def _predicted(table: ReplayTable, ctx: ReplayContext) -> tuple[np.ndarray, np.ndarray] | None:
    if ctx.predictor is None:
        return None
    values, pcosts = ctx.predictor(table)
    values = np.asarray(values, dtype=np.float64)
    if values.shape != table.scores.shape:
        raise ValueError(f"predictor: returned values of shape {values.shape}, expected {table.scores.shape}")
    costs = table.costs if pcosts is None else np.asarray(pcosts, dtype=np.float64)
    return values, costs


def _predictor_knapsack(table: ReplayTable, ctx: ReplayContext) -> list[Choice]:
    """Predicted P(correct) as MCKP values at each global budget (LP-greedy, as served)."""
    pred = _predicted(table, ctx)
    if pred is None:
        return []
    values, costs = pred
    out = []
    for frac, cap in _budgets(table, ctx):
        choice = knapsack_choice(values, costs, cap)
        out.append(Choice(f"{ctx.predictor_name}+knapsack@{frac:.0%}", "predictor_knapsack",
                          one_hot(choice, len(table.options)), {"budget_fraction": frac, "capacity": cap}))
    return out


def _predictor_argmax(table: ReplayTable, ctx: ReplayContext) -> list[Choice]:
    """Per-query argmax(p - lambda * cost) at fixed prices lambda (no global budget)."""
    pred = _predicted(table, ctx)
    if pred is None:
        return []
    values, costs = pred
    out = []
    for lam in ctx.lambdas:
        util = values - lam * costs
        choice = np.array([np.lexsort((costs[i], -util[i]))[0] for i in range(util.shape[0])])
        out.append(Choice(f"{ctx.predictor_name}+argmax@lambda={lam:g}", "predictor_argmax",
                          one_hot(choice, len(table.options)), {"lambda": lam}))
    return out


def _predictor_paced(table: ReplayTable, ctx: ReplayContext) -> list[Choice]:
    """Online: queries arrive in table order; dual pacing (``budget.online.DualPacer``) prices predicted values.

    No look-ahead: the price starts at 0 and follows the spend plan (adaptive:
    what is left spread over the steps left); the step size makes one planned
    step of overspend move the price by half the mean value-per-cost.
    """
    pred = _predicted(table, ctx)
    if pred is None:
        return []
    from budget.online import DualPacer

    values, costs = pred
    n = values.shape[0]
    out = []
    for frac, cap in _budgets(table, ctx):
        lam_scale = float(np.abs(values).mean() / max(float(costs.mean()), 1e-12))
        eta = 0.5 * lam_scale / max(cap / n, 1e-12)
        pacer = DualPacer(cap, n, eta, adaptive=True, floor_cost=float(costs.min(axis=1).mean()))
        state = pacer.initial()
        choice = np.empty(n, dtype=np.int64)
        for i in range(n):
            d = pacer.decide(state, values[i].tolist(), costs[i].tolist())
            choice[i] = d.index if d.index is not None else int(np.argmin(costs[i]))
            # The ledger settles the realised cost, not the predicted one.
            state = pacer.update(state, float(table.costs[i, choice[i]]))
        out.append(Choice(f"{ctx.predictor_name}+pacing@{frac:.0%}", "predictor_paced",
                          one_hot(choice, len(table.options)), {"budget_fraction": frac, "capacity": cap}))
    return out


STRATEGIES: dict[str, StrategyFn] = {
    "fixed": _fixed,
    "best_single": _best_single,
    "oracle": _oracle,
    "random": _random,
    "oracle_knapsack": _oracle_knapsack,
    "predictor_knapsack": _predictor_knapsack,
    "predictor_argmax": _predictor_argmax,
    "predictor_paced": _predictor_paced,
}


def register_strategy(name: str, fn: StrategyFn) -> None:
    """Add (or replace) a strategy under ``name``; it must return a list of :class:`Choice`."""
    if not name or not isinstance(name, str):
        raise ValueError("name: must be a non-empty string")
    STRATEGIES[name] = fn


def get_strategy(name: str) -> StrategyFn:
    """The strategy registered as ``name``; ``KeyError`` listing the available ones otherwise."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise KeyError(f"unknown strategy {name!r}, available: {', '.join(sorted(STRATEGIES))}") from None


def is_one_hot(weights: np.ndarray) -> bool:
    """Whether every row puts all its weight on one option."""
    return bool(np.all(np.isclose(weights.max(axis=1), 1.0)))

