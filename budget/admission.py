"""Admission: pick the option to run for one request given the tenant's remaining budget.

Pure: priced options, the remaining budget (from ``LedgerStore.status``), the
pacing price and the tenant's policy in; a frozen :class:`Admission` out. The
choice uses each option's *expected* cost (``value - lam * expected.usd``);
admission checks its *worst-case* cost, which is what the ledger will reserve.

* ``reject``: if the preferred option's worst case does not fit, refuse
  (the gateway answers 429 with Retry-After = the window reset).
* ``degrade``: fall back to the best priced option whose worst case fits;
  refuse only if none does.

The decision's ``reason`` says which happened and which budget blocked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from budget.ledger import Cost

__all__ = ["PricedOption", "Admission", "admit"]


@dataclass(frozen=True)
class PricedOption:
    """One candidate (model x thinking budget, or skip) with its predicted value and costs."""

    key: str
    value: float
    expected: Cost
    worst: Cost


@dataclass(frozen=True)
class Admission:
    """``option`` None means refuse; ``blocked_by`` is ``"usd"``/``"tokens"`` when a budget decided."""

    option: PricedOption | None
    reason: str
    degraded: bool = False
    blocked_by: str | None = None


def _blocking(worst: Cost, remaining_usd: float | None, remaining_tokens: int | None) -> str | None:
    """The first budget that ``worst`` does not fit, or None."""
    # A tiny tolerance so a reservation that exactly exhausts the budget is admitted.
    if remaining_usd is not None and worst.usd > remaining_usd * (1 + 1e-12) + 1e-15:
        return "usd"
    if remaining_tokens is not None and worst.tokens > remaining_tokens:
        return "tokens"
    return None


def admit(
    options: Sequence[PricedOption],
    *,
    remaining_usd: float | None,
    remaining_tokens: int | None,
    lam: float = 0.0,
    policy: str = "reject",
) -> Admission:
    """Choose argmax(value - lam * expected.usd) whose worst case fits, per ``policy``.

    ``remaining_*`` None means unlimited. Ties go to the cheaper expected cost.
    Raises ValueError on an empty option list, a negative or non-finite ``lam``,
    or an unknown ``policy``.
    """
    if not options:
        raise ValueError("options: need at least one option")
    if not (math.isfinite(lam) and lam >= 0):
        raise ValueError(f"lam: must be a finite number >= 0, got {lam!r}")
    if policy not in ("reject", "degrade"):
        raise ValueError(f"policy: must be 'reject' or 'degrade', got {policy!r}")
    ranked = sorted(options, key=lambda o: (-(o.value - lam * o.expected.usd), o.expected.usd, o.worst.usd))
    best = ranked[0]
    blocked = _blocking(best.worst, remaining_usd, remaining_tokens)
    if blocked is None:
        return Admission(best, f"chose {best.key}: best value at price {lam:.4g}/$ within budget")
    if policy == "degrade":
        for o in ranked[1:]:
            if _blocking(o.worst, remaining_usd, remaining_tokens) is None:
                return Admission(
                    o, f"degraded from {best.key} to {o.key}: remaining {blocked} budget cannot cover "
                    f"{best.key}'s worst case", degraded=True, blocked_by=blocked,
                )
    what = "any option" if policy == "degrade" else f"{best.key}'s worst case"
    return Admission(None, f"refused: remaining {blocked} budget cannot cover {what}", blocked_by=blocked)
