"""Online allocation: one decision per arriving request, priced by a dual variable.

Every request offers options j with value p_j and cost w_j; the policy picks
``argmax_j (p_j - lam * w_j)`` among the options that still fit the remaining
budget. Policies differ only in where ``lam`` comes from:

* :class:`DualPacer` -- dual descent against a spend plan (Balseiro et al.,
  "Robust Budget Pacing with a Single Sample", ICML 2023):
  ``lam <- max(0, lam + eta * (spend_t - plan_t))``.
* :class:`ThresholdPolicy` -- the ZCL threshold of Zhou, Chakrabarty & Lukose
  (WINE 2008) or ECT[alpha] (Lechowicz et al., "Time Fairness in Online
  Knapsack", ICLR 2024): ``lam = Psi(z)`` with z the budget fraction spent; a
  worst-case guard that needs no forecast of the traffic.

Policies are pure: a frozen :class:`PacingState` in, a frozen
:class:`OnlineDecision` and a new state out. Nothing here touches a clock, a
store or a request object.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

__all__ = [
    "PacingState",
    "OnlineDecision",
    "choose_option",
    "zcl_threshold",
    "ect_threshold",
    "DualPacer",
    "ThresholdPolicy",
]


@dataclass(frozen=True)
class PacingState:
    """Snapshot of one budget's pacing: dual price, spend so far, step count."""

    lam: float = 0.0
    spent: float = 0.0
    step: int = 0


@dataclass(frozen=True)
class OnlineDecision:
    """The chosen option (index into the request's options) and why.

    ``index`` is None only when no option fits and the caller allowed refusing
    (``must_choose=False``). ``reason`` is one of ``"priced"`` (argmax of
    value - lam * cost), ``"cheapest"`` (nothing affordable had positive priced
    value or nothing fitted, so the cheapest option was forced), ``"refused"``.
    """

    index: int | None
    lam: float
    value: float
    cost: float
    reason: str


def choose_option(
    values: Sequence[float],
    costs: Sequence[float],
    lam: float,
    remaining: float = math.inf,
    *,
    must_choose: bool = True,
) -> OnlineDecision:
    """Pick ``argmax_j (values[j] - lam * costs[j])`` over options with cost <= remaining.

    Ties go to the cheaper option. When no option fits: the cheapest option if
    ``must_choose`` (the caller may overshoot by at most that cost), else a
    refusal. Pure Python: for the handful of options a request has, this is
    faster than numpy (no array construction).
    """
    n = len(values)
    if n == 0 or n != len(costs):
        raise ValueError(f"costs: need one cost per value and at least one option, got {n} and {len(costs)}")
    best = -1
    best_score = -math.inf
    best_cost = math.inf
    cheapest = 0
    for j in range(n):
        w = costs[j]
        if w < costs[cheapest]:
            cheapest = j
        if w > remaining:
            continue
        s = values[j] - lam * w
        if s > best_score or (s == best_score and w < best_cost):
            best, best_score, best_cost = j, s, w
    if best < 0:
        if not must_choose:
            return OnlineDecision(None, lam, 0.0, 0.0, "refused")
        return OnlineDecision(cheapest, lam, float(values[cheapest]), float(costs[cheapest]), "cheapest")
    return OnlineDecision(best, lam, float(values[best]), float(costs[best]), "priced")


def zcl_threshold(z: float, low: float, high: float) -> float:
    """ZCL threshold Psi(z) for value densities in [low, high] (0 < low <= high).

    Psi(z) = low for z <= beta = 1 / (1 + ln(high/low)), else
    (high * e / low) ** z * (low / e), so Psi(beta) = low and Psi(1) = high;
    1 / (1 + ln(high/low))-competitive for small items.
    """
    if not 0 < low <= high:
        raise ValueError(f"low/high: need 0 < low <= high, got {low}, {high}")
    z = min(max(z, 0.0), 1.0)
    beta = 1.0 / (1.0 + math.log(high / low))
    if z <= beta:
        return low
    return (high * math.e / low) ** z * (low / math.e)


def _lambert_w0(x: float) -> float:
    """Principal branch of Lambert W for x >= 0 (Halley iteration)."""
    if x < 0:
        raise ValueError(f"x: Lambert W0 here needs x >= 0, got {x}")
    w = math.log1p(x)
    for _ in range(50):
        ew = math.exp(w)
        f = w * ew - x
        step = f / (ew * (w + 1) - (w + 2) * f / (2 * w + 2))
        w -= step
        if abs(step) < 1e-14 * (1 + abs(w)):
            break
    return w


def ect_threshold(z: float, low: float, high: float, alpha: float) -> float:
    """ECT[alpha] threshold: Psi(z) = low for z < alpha, else high * e^(beta (z - 1)).

    beta = W0((high - high*alpha) / (low*alpha)) / (1 - alpha); a constant
    threshold over the first alpha of capacity (time fairness) and the ZCL-like
    exponential after it. Needs 0 < alpha < 1.
    """
    if not 0 < low <= high:
        raise ValueError(f"low/high: need 0 < low <= high, got {low}, {high}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: need 0 < alpha < 1, got {alpha}")
    z = min(max(z, 0.0), 1.0)
    if z < alpha:
        return low
    beta = _lambert_w0((high - high * alpha) / (low * alpha)) / (1 - alpha)
    return high * math.exp(beta * (z - 1))


@dataclass(frozen=True)
class DualPacer:
    """Dual-descent pacing of one budget over ``horizon`` steps.

    ``plan`` is the planned spend per step (uniform ``budget / horizon`` when
    None; learn it from yesterday's trace for diurnal traffic). With
    ``adaptive=True`` the plan of step t is instead ``remaining / steps_left``,
    which re-spreads any under- or over-spend over what is left. ``eta`` is in
    value per cost squared: a spend error of one plan unit moves lam by
    ``eta * plan``. ``lam0`` seeds the price (e.g. the dual price of the offline
    LP on a past sample).
    """

    budget: float
    horizon: int
    eta: float
    lam0: float = 0.0
    plan: tuple[float, ...] | None = None
    adaptive: bool = False
    floor_cost: float = 0.0

    def __post_init__(self) -> None:
        if not self.floor_cost >= 0:
            raise ValueError(f"floor_cost: must be >= 0, got {self.floor_cost}")
        if not self.budget >= 0:
            raise ValueError(f"budget: must be >= 0, got {self.budget}")
        if self.horizon < 1:
            raise ValueError(f"horizon: must be >= 1, got {self.horizon}")
        if not self.eta >= 0:
            raise ValueError(f"eta: must be >= 0, got {self.eta}")
        if self.plan is not None and len(self.plan) != self.horizon:
            raise ValueError(f"plan: needs {self.horizon} entries, got {len(self.plan)}")

    def initial(self) -> PacingState:
        """State before the first request."""
        return PacingState(lam=self.lam0)

    def planned(self, state: PacingState) -> float:
        """Planned spend for the step ``state.step``."""
        if self.adaptive:
            left = max(1, self.horizon - state.step)
            return max(0.0, self.budget - state.spent) / left
        if self.plan is not None:
            return self.plan[min(state.step, self.horizon - 1)]
        return self.budget / self.horizon

    def decide(
        self, state: PacingState, values: Sequence[float], costs: Sequence[float], *, must_choose: bool = True
    ) -> OnlineDecision:
        """Choose at the current price among options that fit the remaining budget.

        The remaining budget excludes ``floor_cost`` for every later step.
        """
        held = self.floor_cost * max(0, self.horizon - state.step - 1)
        return choose_option(values, costs, state.lam, self.budget - state.spent - held, must_choose=must_choose)

    def update(self, state: PacingState, spend: float) -> PacingState:
        """Record this step's spend and take one dual step toward the plan."""
        lam = max(0.0, state.lam + self.eta * (spend - self.planned(state)))
        return replace(state, lam=lam, spent=state.spent + spend, step=state.step + 1)


@dataclass(frozen=True)
class ThresholdPolicy:
    """ZCL (``alpha=None``) or ECT[alpha] threshold pricing of one budget.

    ``low``/``high`` bound the value-per-cost densities worth buying. The price
    is ``Psi(spent / budget)``; an option is bought only if its priced value is
    positive, otherwise the cheapest option is forced (``must_choose``) or the
    request is refused. ``baseline`` (per-request cost of the forced cheapest
    option) can be reserved up front by passing ``budget`` net of it.
    """

    budget: float
    low: float
    high: float
    alpha: float | None = None

    def __post_init__(self) -> None:
        if not self.budget > 0:
            raise ValueError(f"budget: must be > 0, got {self.budget}")
        if not 0 < self.low <= self.high:
            raise ValueError(f"low/high: need 0 < low <= high, got {self.low}, {self.high}")

    def initial(self) -> PacingState:
        """State before the first request."""
        return PacingState(lam=self.price(0.0))

    def price(self, spent: float) -> float:
        """Psi at the fraction of budget spent."""
        z = spent / self.budget
        if self.alpha is None:
            return zcl_threshold(z, self.low, self.high)
        return ect_threshold(z, self.low, self.high, self.alpha)

    def decide(
        self, state: PacingState, values: Sequence[float], costs: Sequence[float], *, must_choose: bool = True
    ) -> OnlineDecision:
        """Choose the best priced option if its priced value is positive, else the fallback."""
        d = choose_option(values, costs, state.lam, self.budget - state.spent, must_choose=must_choose)
        if d.index is not None and d.reason == "priced" and d.value - state.lam * d.cost <= 0:
            # Nothing clears the threshold: buy nothing beyond the cheapest option.
            cheapest = min(range(len(costs)), key=lambda j: (costs[j], -values[j]))
            return OnlineDecision(cheapest, state.lam, float(values[cheapest]), float(costs[cheapest]), "cheapest")
        return d

    def update(self, state: PacingState, spend: float) -> PacingState:
        """Record spend; the price follows the new spent fraction."""
        spent = state.spent + spend
        return PacingState(lam=self.price(spent), spent=spent, step=state.step + 1)
