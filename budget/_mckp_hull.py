"""Concave-hull increments of every MCKP class at once (the LP-greedy's inner loop).

Gift wrapping, vectorised over classes: every class starts at its lightest
option (the most valuable among equally light ones, the first column among
exact ties) and repeatedly steps to the option of steepest positive slope
among heavier, more valuable ones (the first column among equal slopes). This
discards dominated options (heavier and not better) and LP-dominated ones
(below the hull). Collinear hull points can be skipped or kept as separate
steps of equal efficiency, depending on column order; neither changes the LP
value.

Why this layout: the data are transposed to ``(options, classes)`` so that each
option is one contiguous vector over classes, and the loops run over at most
``options`` columns per hull step instead of over classes. Masked numpy
operations (``np.where``, boolean assignment) cost about ten times an
arithmetic ufunc on random masks, so selections are expressed arithmetically:
``min(x, d * inf)`` is ``x`` where ``d > 0``, ``-inf`` where ``d < 0`` and NaN
where ``d == 0``, and ``fmax`` ignores NaN. Every float that reaches the result
is computed by the same operation on the same operands as the straightforward
per-class loop (``tests/unit/test_budget_mckp_hull.py`` checks equality).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Hulls", "hull_increments"]

# Below this many classes, compute all slopes of a step in a few whole-array
# calls instead of one call per option (the per-call overhead then dominates).
_COLUMNS_FROM = 4096

# Compact the working arrays to the classes still stepping once fewer than this
# fraction of them are left: a gather of all options costs about one pass.
_COMPACT_BELOW = 0.7


@dataclass(frozen=True)
class Hulls:
    """Concave-hull increments of all classes, in global greedy order.

    ``base[k]`` is class k's lightest undominated option. Increment i moves class
    ``inc_class[i]`` to option ``inc_to[i]`` for ``inc_dw[i] > 0`` more cost and
    ``inc_dp[i] > 0`` more value; ``inc_eff = inc_dp / inc_dw``. Increments are
    sorted by decreasing efficiency; ties keep (step number, class) order, so each
    class's steps appear in hull order.
    """

    base: np.ndarray
    inc_class: np.ndarray
    inc_to: np.ndarray
    inc_dw: np.ndarray
    inc_dp: np.ndarray
    inc_eff: np.ndarray


def _first_match(rows: np.ndarray, target: np.ndarray, hit: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Index of the first row of ``rows`` (m, a) equal to ``target`` (a,), per column.

    Columns without a match get ``m``. ``hit`` (bool, a) and ``score`` (unsigned,
    a, wide enough for m) are scratch buffers. Arithmetic instead of ``argmax`` because numpy's argmax
    along axis 0 copies the array into the other layout first.
    """
    m = rows.shape[0]
    score[:] = 0
    weight = score.dtype.type
    for j in range(m):
        np.equal(rows[j], target, out=hit)
        # The first match carries the largest weight m - j (fits score's dtype).
        np.maximum(score, hit.view(np.uint8) * weight(m - j), out=score)
    return m - score.astype(np.int64)


def hull_increments(v: np.ndarray, c: np.ndarray) -> Hulls:
    """Hull increments of the validated instance ``v``, ``c`` (K, M).

    Requires finite ``v``, ``c >= 0`` (``inf`` marks a missing option) and at least
    one finite cost per class (``budget.mckp.as_instance`` checks this).
    """
    n_classes, m = v.shape
    cT = np.ascontiguousarray(c.T)
    vT = np.ascontiguousarray(v.T)
    buf = np.empty((m, n_classes))
    hit = np.empty(n_classes, dtype=bool)
    # Narrow scores are cheaper; 16 bits cover any realistic option count.
    score = np.empty(n_classes, dtype=np.uint8 if m < 256 else np.uint16 if m < 65536 else np.uint32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # Base: values of the lightest options, -inf elsewhere (NaN from 0 * inf is
        # dropped by fmin), then the first column holding the best of them.
        cmin = cT.min(axis=0)
        if n_classes >= _COLUMNS_FROM:
            for j in range(m):
                np.subtract(cmin, cT[j], out=buf[j])
                np.multiply(buf[j], np.inf, out=buf[j])
                np.fmin(vT[j], buf[j], out=buf[j])
            base = _first_match(buf, buf.max(axis=0), hit, score)
        else:
            np.subtract(cmin, cT, out=buf)
            np.multiply(buf, np.inf, out=buf)
            np.fmin(vT, buf, out=buf)
            base = (buf == buf.max(axis=0)).argmax(axis=0)
        parts = _wrap(cT, vT, base, buf, hit, score)
    if parts:
        inc_class = np.concatenate([p[0] for p in parts])
        inc_to = np.concatenate([p[1] for p in parts])
        inc_dw = np.concatenate([p[2] for p in parts])
        inc_dp = np.concatenate([p[3] for p in parts])
    else:
        inc_class = inc_to = np.zeros(0, dtype=np.int64)
        inc_dw = inc_dp = np.zeros(0)
    eff = inc_dp / inc_dw
    neg = -eff
    # Decreasing efficiency, ties in (step, class) order: the stable sort's order.
    # A plain sort is several times faster and gives the same order when no two
    # efficiencies are equal; fall back to the stable sort when some are.
    order = np.argsort(neg)
    s = neg[order]
    if s.size > 1 and (s[1:] == s[:-1]).any():
        order = np.argsort(neg, kind="stable")
    return Hulls(base, inc_class[order], inc_to[order], inc_dw[order], inc_dp[order], eff[order])


def _slopes_by_column(
    C: np.ndarray, V: np.ndarray, cc: np.ndarray, cv: np.ndarray, S: np.ndarray, *, kill_lighter: bool
) -> None:
    """``S[j]`` = slope from (cc, cv) to option j: one option at a time (cache-friendly for many classes)."""
    dw = np.empty(cc.size)
    for j in range(C.shape[0]):
        np.subtract(C[j], cc, out=dw)
        np.subtract(V[j], cv, out=S[j])
        np.divide(S[j], dw, out=S[j])
        if kill_lighter:
            np.multiply(dw, np.inf, out=dw)
            np.minimum(S[j], dw, out=S[j])


def _slopes_at_once(
    C: np.ndarray, V: np.ndarray, cc: np.ndarray, cv: np.ndarray, S: np.ndarray, *, kill_lighter: bool
) -> None:
    """Same values as :func:`_slopes_by_column` in five calls (cheaper when few classes are left)."""
    dw = C - cc
    np.subtract(V, cv, out=S)
    np.divide(S, dw, out=S)
    if kill_lighter:
        np.multiply(dw, np.inf, out=dw)
        np.minimum(S, dw, out=S)


def _wrap(
    cT: np.ndarray, vT: np.ndarray, base: np.ndarray, buf: np.ndarray, hit: np.ndarray, score: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Gift-wrap steps of every class; a list of (class, to, dw, dp) per step number.

    Classes whose hull is finished keep reporting "no step" from their last
    vertex, so the working arrays are only compacted when that saves work.
    Slopes: where the option is heavier than the current vertex, dp / dw; where
    lighter, -inf (``min(x, dw * inf)``); where equally heavy, NaN, ignored by
    ``fmax``. From the base no option is lighter and equally light ones are no
    more valuable (slope -inf or NaN already), so the first step skips that.
    """
    C, V = cT, vT  # options x working classes
    ids = np.arange(cT.shape[1])  # class id of each working column
    cur = base.copy()
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    first = True
    while ids.size:
        a = ids.size
        cols = np.arange(a)
        cc = C[cur, cols]
        cv = V[cur, cols]
        S = buf[:, :a]
        if a >= _COLUMNS_FROM:
            _slopes_by_column(C, V, cc, cv, S, kill_lighter=not first)
        else:
            _slopes_at_once(C, V, cc, cv, S, kill_lighter=not first)
        first = False
        best = np.fmax.reduce(S, axis=0)
        steps = np.flatnonzero(best > 0)
        if steps.size == 0:
            break
        if a >= _COLUMNS_FROM:
            nx = _first_match(S, best, hit[:a], score[:a])[steps]
        else:  # few classes: argmax's copy is cheap and saves m calls
            nx = (S[:, steps] == best[steps]).argmax(axis=0)
        parts.append((ids[steps], nx, C[nx, steps] - cc[steps], V[nx, steps] - cv[steps]))
        cur[steps] = nx
        if steps.size < _COMPACT_BELOW * a:
            # take() keeps the result C-contiguous (C[:, steps] would not be).
            C, V, ids, cur = C.take(steps, axis=1), V.take(steps, axis=1), ids[steps], cur[steps]
    return parts
