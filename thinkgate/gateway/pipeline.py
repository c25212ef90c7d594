"""Per-request pipeline pieces between validation and the upstream call.

Turns a parsed request and a decision into the upstream body, and the usage
that came back into the ``thinkgate`` response object. Pure functions; the
server wires them together.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from router.seam import Decision, RequestView
from thinkgate.gateway.proxy import Usage
from thinkgate.gateway.validate import ParsedRequest

HARD_MODES = frozenset({"hard", "soft+hard"})
GUIDED_MODES = frozenset({"soft", "soft+hard", "extend"})
PRIOR_LOG_SIGMA = 0.5  # spread of log1p(thinking length) around the predicted mean, when no better is known


def with_guidance(decision: Decision, strength: float, horizon: int = 0) -> Decision:
    """Add the guidance plugin's ``vllm_xargs`` to a decision in a guided mode.

    The prior on the total thinking length is the predictor's expected
    thinking tokens with no budget (the model's unlimited option; else the
    chosen option's, which the budget caps), a log-normal around it
    moment-matched to the Gamma the plugin takes; without a prediction the
    plugin uses its own default.
    """
    if decision.mode not in GUIDED_MODES or decision.thinking_budget is None:
        return decision
    from guidance.xargs import gamma_prior_from_lognormal, vllm_xargs_for

    prior = None
    length = decision.unconstrained_thinking_tokens or decision.predicted_thinking_tokens
    if length and length > 0:
        prior = gamma_prior_from_lognormal(math.log1p(length), PRIOR_LOG_SIGMA)
    xargs = vllm_xargs_for(decision.mode, decision.thinking_budget, prior, strength, horizon=horizon)
    return dataclasses.replace(decision, extra_vllm_args={**decision.extra_vllm_args, **xargs})


@dataclass(slots=True)
class Outcome:
    """Everything known about one served request once it finished."""

    decision_id: str
    decision: Decision
    backend: str = ""
    usage: Usage | None = None
    reserved_usd: float = 0.0
    actual_usd: float | None = None
    reservation_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def request_view(req: ParsedRequest, tenant_id: str) -> RequestView:
    o = req.options
    return RequestView(
        model=req.model,
        prompt_text=req.prompt_text,
        max_tokens=req.max_tokens,
        max_thinking_tokens=o.max_thinking_tokens,
        effort=o.effort,
        max_cost_usd=o.max_cost_usd,
        min_quality=o.min_quality,
        allow_skip=o.allow_skip,
        tenant_id=tenant_id,
    )


def upstream_body(req: ParsedRequest, decision: Decision, want_token_ids: bool = False) -> dict[str, Any]:
    """The body sent to vLLM: the client's body with the decision applied.

    The thinking budget travels as vLLM's native ``thinking_token_budget`` when
    the mode is hard (or soft+hard); guidance arguments travel in
    ``vllm_xargs``; usage is always requested on streams; token ids are
    requested when ``want_token_ids`` (to count thinking tokens exactly).
    """
    # A copy: a model-level fallback builds a second body from the same request, which must not
    # inherit the first decision's limits (nested dicts below are replaced, never edited).
    body = dict(req.body)
    body["model"] = decision.model
    if decision.max_tokens is not None:
        body.pop("max_completion_tokens", None)
        body["max_tokens"] = decision.max_tokens
    if decision.thinking_budget is not None and decision.mode in HARD_MODES:
        body["thinking_token_budget"] = decision.thinking_budget
    else:
        body.pop("thinking_token_budget", None)
    if decision.extra_vllm_args:
        xargs = dict(body.get("vllm_xargs") or {})
        xargs.update(decision.extra_vllm_args)
        body["vllm_xargs"] = xargs
    if want_token_ids:
        body["return_token_ids"] = True
    if req.stream:
        so = dict(body.get("stream_options") or {})
        so["include_usage"] = True
        body["stream_options"] = so
    return body


def cost_usd(usage: Usage, price_in_per_m: float, price_out_per_m: float) -> float:
    return (usage.prompt_tokens * price_in_per_m + usage.completion_tokens * price_out_per_m) / 1e6


def thinkgate_object(out: Outcome) -> dict[str, Any]:
    """The wire-format ``thinkgate`` object of a response (see DESIGN.md)."""
    d = out.decision
    u = out.usage
    return {
        "decision_id": out.decision_id,
        "model": d.model,
        "backend": out.backend,
        "thinking_budget": d.thinking_budget,
        "mode": d.mode,
        "predicted": {"p_correct": d.p_correct, "thinking_tokens": d.predicted_thinking_tokens},
        "cost": {"reserved_usd": out.reserved_usd, "actual_usd": out.actual_usd},
        "usage": {
            "thinking_tokens": None if u is None else u.thinking_tokens,
            "answer_tokens": None if u is None else u.answer_tokens,
        },
        "strategy": d.strategy,
        "reason": d.reason,
        **out.extra,
    }


def decision_headers(out: Outcome, request_id: str) -> list[tuple[bytes, bytes]]:
    """The ``x-request-id`` and ``X-Thinkgate-*`` response headers, as ASGI header pairs."""
    d = out.decision
    budget = d.thinking_budget
    return [
        (b"x-request-id", request_id.encode()),
        (b"x-thinkgate-decision-id", out.decision_id.encode()),
        (b"x-thinkgate-model", d.model.encode()),
        (b"x-thinkgate-backend", out.backend.encode()),
        (b"x-thinkgate-thinking-budget", b"unlimited" if budget is None else str(budget).encode()),
        (b"x-thinkgate-mode", d.mode.encode()),
    ]
