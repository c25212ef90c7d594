"""Multiple-choice knapsack (MCKP): exact DP and the LP-greedy over convex hulls.

Problem: classes k = 1..K (one per request), each with options j carrying a value
p_kj and a cost w_kj >= 0; choose exactly one option per class so that the total
cost is <= capacity C and the total value is maximal. Solve-or-skip (ROI-Reasoning)
is expressed by giving a class a zero-cost "skip" option with its own value
(:func:`with_skip`).

Instances are dense 2-D arrays ``values[K, M]``, ``costs[K, M]``; classes with
fewer than M options pad with ``cost = inf`` (such an option is never chosen).

Two solvers:

* :func:`solve_exact` -- dynamic programme over integerised costs
  (O(C_units * n) time, O(K * C_units) bytes of choice table).
* :func:`solve_greedy` -- LP relaxation by dominance pruning, upper convex hull
  and greedy by incremental efficiency (Sinha & Zoltners 1979, Oper. Res. 27(3);
  Kellerer, Pferschy & Pisinger, *Knapsack Problems*, ch. 11). Returns the integer
  greedy solution, the LP upper bound and the dual price lambda.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from budget._mckp_hull import hull_increments

__all__ = [
    "MCKPInfeasible",
    "MCKPSolution",
    "as_instance",
    "with_skip",
    "solve_exact",
    "solve_greedy",
    "brute_force",
]


class MCKPInfeasible(ValueError):
    """Even the cheapest option of every class together exceeds the capacity."""


@dataclass(frozen=True)
class MCKPSolution:
    """Result of an MCKP solver.

    ``choice[k]`` is the chosen option index of class k; ``value`` and ``cost`` are
    the true (not integerised) totals of that choice. ``lp_bound`` is an upper
    bound on the optimum (the LP optimum for the greedy; the DP's own value for the
    exact solver, which is optimal on the integerised instance). ``lam`` is the
    dual price of the capacity: every class's choice maximises ``p - lam * w``
    (the greedy's break class ties between two hull vertices); 0 when the capacity
    does not bind; NaN from the exact solver, which has no dual price. ``gap_bound`` is the largest value the solver may have left on
    the table relative to ``lp_bound`` (the greedy's dropped fractional step).
    """

    choice: np.ndarray
    value: float
    cost: float
    lp_bound: float
    lam: float
    gap_bound: float = 0.0


def as_instance(
    values: Sequence[Sequence[float]] | np.ndarray, costs: Sequence[Sequence[float]] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert ragged or dense inputs to padded float64 arrays.

    Ragged rows are padded with value 0 and cost inf. Raises ``ValueError`` naming
    ``values`` or ``costs`` on shape mismatch, NaN, negative or all-infinite costs.
    """
    if isinstance(values, np.ndarray) and isinstance(costs, np.ndarray):
        v = np.asarray(values, dtype=np.float64)
        c = np.asarray(costs, dtype=np.float64)
    else:
        if len(values) != len(costs):
            raise ValueError(f"values: {len(values)} classes but costs has {len(costs)}")
        width = max((len(r) for r in values), default=0)
        v = np.zeros((len(values), width))
        c = np.full((len(values), width), np.inf)
        for k, (vr, cr) in enumerate(zip(values, costs, strict=True)):
            if len(vr) != len(cr):
                raise ValueError(f"costs: class {k} has {len(cr)} costs for {len(vr)} values")
            v[k, : len(vr)] = vr
            c[k, : len(cr)] = cr
    if v.ndim != 2 or v.shape != c.shape:
        raise ValueError(f"values: shape {v.shape} does not match costs shape {c.shape}")
    if not np.isfinite(v).all():
        raise ValueError("values: must be finite")
    if not (c >= 0).all():  # also False for NaN
        raise ValueError("costs: must be >= 0 (inf marks a missing option)")
    if v.shape[0] and (~np.isfinite(c)).all(axis=1).any():
        raise ValueError("costs: every class needs at least one finite-cost option")
    return v, c


def with_skip(
    values: np.ndarray, costs: np.ndarray, skip_values: Sequence[float] | np.ndarray | float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Append a zero-cost skip option (last column) with value ``skip_values[k]``.

    The skip option makes every instance feasible (ROI-Reasoning's solve-or-skip).
    """
    v, c = as_instance(values, costs)
    s = np.broadcast_to(np.asarray(skip_values, dtype=np.float64), (v.shape[0],))
    return np.column_stack([v, s]), np.column_stack([c, np.zeros(v.shape[0])])


def _totals(v: np.ndarray, c: np.ndarray, choice: np.ndarray) -> tuple[float, float]:
    rows = np.arange(v.shape[0])
    return float(v[rows, choice].sum()), float(c[rows, choice].sum())


def solve_exact(
    values: Sequence[Sequence[float]] | np.ndarray,
    costs: Sequence[Sequence[float]] | np.ndarray,
    capacity: float,
    *,
    resolution: int = 10_000,
    unit: float | None = None,
) -> MCKPSolution:
    """Exact DP over integerised costs: z_k(c) = max_j z_{k-1}(c - w_kj) + p_kj.

    Resolution: costs are measured in units of ``unit`` (default
    ``capacity / resolution``), each cost rounded **up** to a whole unit, and the
    capacity rounded down. Error bound: rounding up makes every returned choice
    truly feasible (sum of true costs <= capacity); each class's cost grows by
    less than one unit, so the returned value is >= the true optimum at the
    reduced capacity ``capacity - K * unit``. When all costs and the capacity are
    integer multiples of ``unit`` (e.g. token counts with ``unit=1``), the result
    is the exact optimum. Runs in O(C_units * n) time and K * (C_units + 1) bytes
    (an int8/int16 choice table).

    Raises :class:`MCKPInfeasible` when no choice fits.
    """
    v, c = as_instance(values, costs)
    if not math.isfinite(capacity) or capacity < 0:
        raise ValueError(f"capacity: must be finite and >= 0, got {capacity}")
    if unit is None:
        if resolution < 1:
            raise ValueError(f"resolution: must be >= 1, got {resolution}")
        unit = capacity / resolution if capacity > 0 else 1.0
    if unit <= 0:
        raise ValueError(f"unit: must be > 0, got {unit}")
    n_classes, width = v.shape
    if n_classes == 0:
        return MCKPSolution(np.zeros(0, dtype=np.int64), 0.0, 0.0, 0.0, 0.0)
    cap_units = int(math.floor(capacity / unit + 1e-9))
    # Round costs up (tolerate float noise so exact multiples stay exact).
    with np.errstate(invalid="ignore"):
        scaled = c / unit
    w = np.where(np.isfinite(scaled), np.ceil(scaled - 1e-9), np.inf)
    w_int = np.where(w <= cap_units, w, -1).astype(np.int64)  # -1: never fits
    neg = -np.inf
    z = np.zeros(cap_units + 1)
    idx_dtype = np.int8 if width < 127 else np.int32
    table = np.empty((n_classes, cap_units + 1), dtype=idx_dtype)
    for k in range(n_classes):
        new = np.full(cap_units + 1, neg)
        arg = np.full(cap_units + 1, -1, dtype=idx_dtype)
        for j in range(width):
            wj = int(w_int[k, j])
            if wj < 0:
                continue
            cand = z[: cap_units + 1 - wj] + v[k, j]
            better = cand > new[wj:]
            np.copyto(new[wj:], cand, where=better)
            arg[wj:][better] = j
        z = new
        table[k] = arg
    if not np.isfinite(z[cap_units]):
        raise MCKPInfeasible(
            f"capacity {capacity} below the cheapest choice (after rounding costs up to units of {unit})"
        )
    choice = np.empty(n_classes, dtype=np.int64)
    rem = cap_units
    for k in range(n_classes - 1, -1, -1):
        j = int(table[k, rem])
        choice[k] = j
        rem -= int(w_int[k, j])
    value, cost = _totals(v, c, choice)
    return MCKPSolution(choice, value, cost, lp_bound=float(z[cap_units]), lam=float("nan"))


def solve_greedy(
    values: Sequence[Sequence[float]] | np.ndarray,
    costs: Sequence[Sequence[float]] | np.ndarray,
    capacity: float,
) -> MCKPSolution:
    """LP relaxation + greedy integer solution (Sinha-Zoltners).

    Every class starts at its lightest hull vertex; hull increments are applied in
    decreasing efficiency while they fit. The first increment that does not fit is
    the break step: taking it fractionally gives the LP optimum ``lp_bound`` and its
    efficiency is the dual price ``lam``. The integer solution drops that fraction,
    so ``value >= lp_bound - gap_bound`` with ``gap_bound`` = the break step's value
    gain (<= the largest single step gain). O(n log n).

    Raises :class:`MCKPInfeasible` when the lightest options already exceed the
    capacity.
    """
    v, c = as_instance(values, costs)
    if not math.isfinite(capacity) or capacity < 0:
        raise ValueError(f"capacity: must be finite and >= 0, got {capacity}")
    n_classes = v.shape[0]
    if n_classes == 0:
        return MCKPSolution(np.zeros(0, dtype=np.int64), 0.0, 0.0, 0.0, 0.0)
    h = hull_increments(v, c)
    rows = np.arange(n_classes)
    base_cost = float(c[rows, h.base].sum())
    slack = capacity - base_cost
    if slack < -1e-9 * max(1.0, capacity):
        raise MCKPInfeasible(f"capacity {capacity} below the sum of cheapest options {base_cost}")
    cum = np.cumsum(h.inc_dw)
    n_fit = int(np.searchsorted(cum, slack * (1 + 1e-12) + 1e-300, side="right"))
    choice = h.base.astype(np.int64).copy()
    # Later steps of a class overwrite earlier ones because the order is preserved.
    choice[h.inc_class[:n_fit]] = h.inc_to[:n_fit]
    value, cost = _totals(v, c, choice)  # from the choice itself, not base + steps (no drift)
    if n_fit < len(cum):
        used = float(cum[n_fit - 1]) if n_fit else 0.0
        frac = (slack - used) / float(h.inc_dw[n_fit])
        gap = float(h.inc_dp[n_fit])
        lp = value + max(0.0, frac) * gap
        lam = float(h.inc_eff[n_fit])
    else:
        lp, lam, gap = value, 0.0, 0.0
    return MCKPSolution(choice, value, cost, lp_bound=lp, lam=lam, gap_bound=gap)


def brute_force(
    values: Sequence[Sequence[float]] | np.ndarray,
    costs: Sequence[Sequence[float]] | np.ndarray,
    capacity: float,
) -> MCKPSolution | None:
    """Enumerate every choice (test oracle; M**K combinations). None if infeasible."""
    import itertools

    v, c = as_instance(values, costs)
    n_classes, width = v.shape
    combos = np.array(list(itertools.product(range(width), repeat=n_classes)), dtype=np.int64).reshape(-1, n_classes)
    rows = np.arange(n_classes)
    tot_v = v[rows, combos].sum(axis=1)
    tot_c = c[rows, combos].sum(axis=1)
    ok = tot_c <= capacity
    if not ok.any():
        return None
    best = int(np.flatnonzero(ok)[np.argmax(tot_v[ok])])
    ch = combos[best]
    val, cost = _totals(v, c, ch)
    return MCKPSolution(ch, val, cost, lp_bound=val, lam=float("nan"))
