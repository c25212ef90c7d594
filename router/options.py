"""Candidate options of one request, priced and filtered, shared by every scoring strategy.

An option is a (model, thinking budget) pair named ``"model"`` (unlimited
thinking) or ``"model@budget"``, as the predictor names them. This module turns
the predictor's estimates in a :class:`~router.seam.RequestView` into
:class:`Candidate` objects with an expected dollar cost, applies the request's
limits (``max_thinking_tokens``, ``max_cost_usd``, ``min_quality``) and builds
the final :class:`~router.seam.Decision`. Pure functions, standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from router.seam import (
    Decision,
    ModelInfo,
    NoModelAvailable,
    RequestView,
    RoutingSnapshot,
    UnknownModel,
    enforcement_mode,
)

__all__ = [
    "Candidate",
    "Pricing",
    "apply_limits",
    "build_candidates",
    "choose_healthy",
    "effort_bonus",
    "make_decision",
    "parse_option",
    "pick_best",
    "with_healthy",
]

#: Characters per prompt token used for the expected (not worst-case) input cost.
CHARS_PER_TOKEN = 4.0


def parse_option(name: str) -> tuple[str, int | None]:
    """``"m@512" -> ("m", 512)``, ``"m" -> ("m", None)`` (same rule as ``predictors.records``)."""
    model, sep, tail = name.rpartition("@")
    if sep and model and tail.isdigit():
        return model, int(tail)
    return name, None


@dataclass(frozen=True, slots=True)
class Pricing:
    """How option costs are estimated when the predictor gives no token lengths.

    ``default_thinking_tokens``/``default_answer_tokens`` stand in for missing
    predicted means; a thinking budget caps the thinking part.
    """

    default_thinking_tokens: float = 512.0
    default_answer_tokens: float = 256.0


@dataclass(frozen=True, slots=True)
class Candidate:
    """One servable option with its estimates.

    ``p_correct`` is None when the request carried no predictor estimates;
    ``cost_usd`` is the expected cost (prompt + predicted thinking + answer
    tokens at the model's prices); ``healthy`` mirrors the model's health.
    """

    option: str
    model: str
    budget: int | None
    p_correct: float | None
    thinking_tokens: float
    answer_tokens: float
    cost_usd: float
    healthy: bool


def _cost(info: ModelInfo, prompt_tokens: float, thinking: float, answer: float) -> float:
    return (prompt_tokens * info.price_input_per_m + (thinking + answer) * info.price_output_per_m) / 1e6


def build_candidates(req: RequestView, snapshot: RoutingSnapshot, pricing: Pricing = Pricing()) -> list[Candidate]:
    """Every option the request may be served by, healthy or not, priced.

    With estimates: one candidate per estimate whose model the snapshot knows.
    Without: one candidate per model (unlimited thinking, ``p_correct`` None).
    A request naming a backend model keeps only that model's options; a name
    that is neither a model nor an alias raises :class:`UnknownModel`.
    ``max_thinking_tokens`` caps every option's budget (so an unlimited option
    becomes a budgeted one) and its predicted thinking length. Where the cap
    binds (the option's predicted thinking exceeds it), the capped option's
    P(correct) is that of the same model's largest budget at or below the cap,
    when the predictor has one: the capped run can do no better than its
    thinking allows, so the uncapped option's estimate would overstate it.
    """
    named = snapshot.get(req.model)
    if named is None and req.model not in snapshot.aliases:
        available = sorted([m.name for m in snapshot.models] + list(snapshot.aliases))
        raise UnknownModel(f"unknown model {req.model!r}, available: {', '.join(available)}")
    prompt_tokens = len(req.prompt_text) / CHARS_PER_TOKEN
    cap = req.max_thinking_tokens
    out: dict[str, Candidate] = {}
    rows: list[tuple[str, float | None, float | None, float | None]] = []
    if req.estimates:
        for e in req.estimates:
            rows.append((e.option, e.p_correct, e.thinking_tokens_mean, e.answer_tokens_mean))
    else:
        rows = [(m.name, None, None, None) for m in snapshot.models]
    # Per model: (budget, p) of the options that fit under the cap, for estimates of capped options.
    under_cap: dict[str, tuple[int, float]] = {}
    if cap is not None:
        for option, p, _, _ in rows:
            m, b = parse_option(option)
            if p is not None and b is not None and b <= cap and (m not in under_cap or b > under_cap[m][0]):
                under_cap[m] = (b, float(p))
    for option, p, think, answer in rows:
        model, budget = parse_option(option)
        info = snapshot.get(model)
        if info is None or (named is not None and model != named.name):
            continue
        t = pricing.default_thinking_tokens if think is None else float(think)
        a = pricing.default_answer_tokens if answer is None else float(answer)
        if budget is not None:
            t = min(t, float(budget))
        if cap is not None and (budget is None or budget > cap):
            if p is not None and t > cap and model in under_cap:
                p = min(float(p), under_cap[model][1])
            budget, t = cap, min(t, float(cap))
        name = option if budget == parse_option(option)[1] else f"{model}@{budget}"
        cand = Candidate(name, model, budget, None if p is None else float(p), t, a,
                         _cost(info, prompt_tokens, t, a), info.healthy)
        prev = out.get(name)
        # Capping can merge options (m and m@4096 under a cap of 1024): keep the likelier one.
        if prev is None or (cand.p_correct or 0.0) > (prev.p_correct or 0.0):
            out[name] = cand
    return list(out.values())


def apply_limits(req: RequestView, cands: Sequence[Candidate]) -> tuple[list[Candidate], list[str]]:
    """Drop candidates over ``max_cost_usd`` or under ``min_quality``; returns (kept, notes).

    A limit that no candidate meets is relaxed rather than failing the request:
    the cheapest candidate is kept for an unmeetable cost cap, the likeliest for
    an unmeetable quality floor, and a note says so.
    """
    kept = list(cands)
    notes: list[str] = []
    if req.max_cost_usd is not None and kept:
        fit = [c for c in kept if c.cost_usd <= req.max_cost_usd]
        if not fit:
            cheapest = min(kept, key=lambda c: c.cost_usd)
            notes.append(f"no option fits max_cost_usd {req.max_cost_usd:g}; cheapest {cheapest.option} taken")
            fit = [cheapest]
        kept = fit
    if req.min_quality is not None and kept and all(c.p_correct is not None for c in kept):
        good = [c for c in kept if (c.p_correct or 0.0) >= req.min_quality]
        if not good:
            best = max(kept, key=lambda c: (c.p_correct or 0.0, -c.cost_usd))
            notes.append(f"no option reaches min_quality {req.min_quality:g}; likeliest {best.option} taken")
            good = [best]
        kept = good
    return kept, notes


def effort_bonus(cands: Sequence[Candidate], effort: float | None, weight: float) -> dict[str, float]:
    """Per option, a utility bonus in [-weight, +weight] that prefers larger thinking budgets as effort grows.

    The budget's rank among the candidates' distinct budgets (unlimited ranks
    highest) is scaled to [0, 1] and multiplied by ``(2 * effort - 1) * weight``:
    effort 1 favours the largest budget, 0 the smallest, 0.5 (or None) neither.
    """
    if effort is None or weight == 0:
        return {c.option: 0.0 for c in cands}
    levels = sorted({math.inf if c.budget is None else float(c.budget) for c in cands})
    if len(levels) < 2:
        return {c.option: 0.0 for c in cands}
    rank = {v: i / (len(levels) - 1) for i, v in enumerate(levels)}
    scale = (2.0 * effort - 1.0) * weight
    return {c.option: scale * rank[math.inf if c.budget is None else float(c.budget)] for c in cands}


def pick_best(cands: Sequence[Candidate], score: Callable[[Candidate], float]) -> Candidate:
    """The highest-scoring candidate; ties go to the cheaper, then to the name (deterministic)."""
    if not cands:
        raise NoModelAvailable("no candidate option")
    return max(cands, key=lambda c: (score(c), -c.cost_usd, c.option))


def choose_healthy(
    req: RequestView, cands: Sequence[Candidate], score: Callable[[Candidate], float]
) -> tuple[Candidate, str]:
    """Best healthy candidate within the request's limits; the note tells what was relaxed or skipped.

    Unhealthy options are removed before the limits and the scoring. The same
    scoring over every candidate (down ones included) names the preferred
    option, so the reason can say which fallback was taken ("preferred X is
    down, fell back to next best Y"). Raises :class:`NoModelAvailable` when no
    candidate is healthy.
    """
    healthy = [c for c in cands if c.healthy]
    if not healthy:
        raise NoModelAvailable("no healthy backend for any candidate option")
    kept, notes = apply_limits(req, healthy)
    best = pick_best(kept, score)
    note = "".join(f"; {n}" for n in notes)
    if len(healthy) < len(cands):
        pool, _ = apply_limits(req, cands)
        preferred = pick_best(pool, score)
        if not preferred.healthy:
            return best, note + (f"; preferred {preferred.option} is down (model {preferred.model}), "
                                 f"fell back to next best {best.option}")
        down = sorted({c.model for c in cands if not c.healthy})
        note += f"; skipped down model(s) {', '.join(down)}"
    return best, note


def make_decision(
    req: RequestView,
    snapshot: RoutingSnapshot,
    cand: Candidate,
    *,
    strategy: str,
    reason: str,
    guidance_mode: str = "hard",
    default_thinking_budget: int | None = None,
    default_max_tokens: int | None = None,
) -> Decision:
    """The :class:`Decision` serving ``cand``: budget (the option's, else the default), mode and predictions."""
    info = snapshot.get(cand.model)
    if info is None:  # candidates come from the snapshot; this guards programming errors
        raise UnknownModel(f"unknown model {cand.model!r}")
    budget = cand.budget if cand.budget is not None else default_thinking_budget
    mode, note = enforcement_mode(info, budget, guidance_mode)
    free = next((e.thinking_tokens_mean for e in (req.estimates or ()) if e.option == cand.model), None)
    return Decision(
        model=cand.model,
        thinking_budget=budget,
        max_tokens=req.max_tokens or default_max_tokens,
        mode=mode,
        strategy=strategy,
        reason=reason + note,
        p_correct=cand.p_correct,
        predicted_thinking_tokens=cand.thinking_tokens if cand.p_correct is not None else None,
        predicted_answer_tokens=cand.answer_tokens if cand.p_correct is not None else None,
        unconstrained_thinking_tokens=None if free is None else float(free),
    )


def with_healthy(snapshot: RoutingSnapshot, model: str, healthy: bool) -> RoutingSnapshot:
    """A copy of ``snapshot`` with ``model``'s health set (tests and simulations)."""
    return RoutingSnapshot(tuple(replace(m, healthy=healthy) if m.name == model else m for m in snapshot.models),
                           snapshot.aliases)
