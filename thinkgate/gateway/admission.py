"""Admission against the per-tenant ledger (budget/): auth, reserve the worst case, settle actuals.

The reservation is the decision's worst case: prompt tokens bounded by the
prompt's UTF-8 bytes (every token covers at least one byte) plus a template
allowance, and the decision's ``max_tokens`` (set here when the request left it
open, so the worst case is really enforced by vLLM). Prices come from the
chosen backend. When the reservation does not fit, the tenant gets a 429 with
``Retry-After`` (its window reset), or, with the ``degrade`` policy, the
request is shrunk to what still fits on the cheapest healthy model.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import time
from typing import Any

from router.seam import Decision, RoutingSnapshot
from thinkgate.config import Settings
from thinkgate.gateway import errors as E
from thinkgate.gateway.pipeline import Outcome
from thinkgate.gateway.validate import ParsedRequest

ANONYMOUS = "anonymous"
# Chat templates add role names, special tokens and the generation prompt
# (e.g. "<|im_start|>assistant\n<think>\n"); byte-level tokenizers spend a
# token per byte on them. Generous on purpose: an under-estimate would let a
# request spend past its reservation.
_TEMPLATE_TOKENS_PER_MESSAGE = 64
_TEMPLATE_TOKENS_FIXED = 64
_MIN_DEGRADED_TOKENS = 16


def prompt_token_bound(req: ParsedRequest) -> int:
    """An upper bound on the prompt's tokens (bytes + chat-template allowance)."""
    n_msgs = len(req.body.get("messages") or ()) or 1
    return len(req.prompt_text.encode("utf-8", "replace")) + _TEMPLATE_TOKENS_PER_MESSAGE * n_msgs + \
        _TEMPLATE_TOKENS_FIXED


class WindowPacer:
    """Dual pacing of each tenant's dollar budget over its window (Balseiro et al. style).

    The plan is linear in time: by fraction f of the window, f of the budget.
    After each settled request the dimensionless price mu takes a step
    ``mu <- max(0, mu + eta * (spent - planned) / limit)``; the price of a
    dollar is ``mu / c_ref`` with ``c_ref`` an average request cost, so
    ``value - lambda * cost`` weighs a typical request's cost against mu units
    of P(correct). Windows of kind ``total`` have no time plan: they price by
    the share already spent past half the budget.
    """

    def __init__(self, eta: float = 2.0, ema: float = 0.05) -> None:
        self.eta = eta
        self.ema = ema
        self._state: dict[str, tuple[float, float]] = {}  # tenant -> (mu, c_ref)

    def price(self, tenant: str) -> float:
        mu, cref = self._state.get(tenant, (0.0, 0.0))
        return mu / cref if cref > 0 else 0.0

    async def observe(self, tenant: str, cost_usd: float, ledger: Any) -> None:
        mu, cref = self._state.get(tenant, (0.0, 0.0))
        cref = cost_usd if cref == 0 else (1 - self.ema) * cref + self.ema * cost_usd
        status = await ledger.status(tenant)
        limit = status.limit_usd
        if not limit:
            self._state[tenant] = (0.0, cref)
            return
        spent = status.spent_usd + status.reserved_usd
        if status.window_reset_at is None:
            mu = max(0.0, 4.0 * (spent / limit - 0.5))
        else:
            span = status.window_reset_at - status.window_start
            planned = limit * min(1.0, max(0.0, (time.time() - status.window_start) / span))
            mu = max(0.0, mu + self.eta * (spent - planned) / limit)
        self._state[tenant] = (mu, cref)


class LedgerAdmission:
    """:class:`~thinkgate.gateway.hooks.Admission` backed by a ``budget`` ledger store."""

    def __init__(self, settings: Settings, ledger: Any = None) -> None:
        self.settings = settings
        self.ledger = ledger
        self._own_ledger = ledger is None
        self._keys: dict[str, tuple[float, Any]] = {}  # api key -> (expires, Tenant | None)
        self.pacer = WindowPacer()
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.ledger is None:
            from budget import open_ledger

            self.ledger = open_ledger(self.settings.ledger_url)
        self._sweeper = asyncio.create_task(self._sweep())

    async def stop(self) -> None:
        if self._sweeper:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._own_ledger and self.ledger is not None:
            await self.ledger.close()

    async def _sweep(self) -> None:
        """Crash safety: reservations of requests that never settled expire."""
        while True:
            await asyncio.sleep(30)
            with contextlib.suppress(Exception):
                await self.ledger.expire_stale()

    async def tenant(self, authorization: str | None) -> Any:
        """The Tenant for an ``Authorization: Bearer`` header, None for anonymous."""
        key = None
        if authorization and authorization[:7].lower() == "bearer ":
            key = authorization[7:].strip()
        if not key:
            if self.settings.gateway.require_api_key:
                raise E.AuthenticationFailed("missing API key (Authorization: Bearer <key>)")
            return None
        now = time.monotonic()
        hit = self._keys.get(key)
        if hit is not None and hit[0] > now:
            tenant = hit[1]
        else:
            tenant = await self.ledger.tenant_for_key(key)
            self._keys[key] = (now + 5.0, tenant)  # short cache: budget changes apply within seconds
        if tenant is None and self.settings.gateway.require_api_key:
            raise E.AuthenticationFailed("invalid API key")
        return tenant

    async def authenticate(self, authorization: str | None) -> str:
        tenant = await self.tenant(authorization)
        return ANONYMOUS if tenant is None else tenant.id

    def _worst_case(self, decision: Decision, prompt_tokens: int, snapshot: RoutingSnapshot) -> tuple[float, int]:
        info = snapshot.get(decision.model)
        pin = info.price_input_per_m if info else 0.0
        pout = info.price_output_per_m if info else 0.0
        out_tokens = decision.max_tokens or 0
        return (prompt_tokens * pin + out_tokens * pout) / 1e6, prompt_tokens + out_tokens

    async def admit(self, tenant: str, req: ParsedRequest, out: Outcome, snapshot: RoutingSnapshot) -> None:
        if tenant == ANONYMOUS:
            return
        from budget import BudgetExceeded, Cost

        decision = out.decision
        if decision.max_tokens is None:
            decision = dataclasses.replace(decision, max_tokens=self.settings.gateway.reserve_max_tokens)
        prompt = prompt_token_bound(req)
        usd, tokens = self._worst_case(decision, prompt, snapshot)
        ttl = self.settings.gateway.read_timeout_s + 60
        try:
            res = await self.ledger.reserve(tenant, Cost(usd=usd, tokens=tokens), ttl_s=ttl)
        except BudgetExceeded as exc:
            t = await self.ledger.get_tenant(tenant)
            degraded = None
            if t is not None and t.policy == "degrade":
                degraded = await self._degrade(tenant, decision, prompt, snapshot, ttl, exc)
            if degraded is None:
                headers = {}
                if exc.retry_after_s is not None:
                    headers["retry-after"] = str(max(1, math.ceil(exc.retry_after_s)))
                raise E.BudgetExhausted(str(exc), param=f"budget.{exc.budget}", headers=headers) from None
            decision, res = degraded
        out.decision = decision
        out.reservation_id = res.id
        out.reserved_usd = res.cost.usd

    async def _degrade(self, tenant: str, decision: Decision, prompt: int, snapshot: RoutingSnapshot, ttl: float,
                       exc: Exception) -> tuple[Decision, Any] | None:
        """Shrink the request to what the remaining budget still covers on the cheapest healthy model."""
        from budget import BudgetExceeded, Cost

        status = await self.ledger.status(tenant)
        healthy = snapshot.healthy
        if not healthy:
            return None
        m = min(healthy, key=lambda i: (i.price_input_per_m + i.price_output_per_m, i.name))
        caps = []
        if status.remaining_tokens is not None:
            caps.append(status.remaining_tokens - prompt)
        if status.remaining_usd is not None and m.price_output_per_m > 0:
            caps.append(int((status.remaining_usd * 1e6 - prompt * m.price_input_per_m) / m.price_output_per_m))
        max_out = min([decision.max_tokens or 0, *caps])
        if max_out < _MIN_DEGRADED_TOKENS:
            return None
        budget = decision.thinking_budget
        if budget is None or budget >= max_out:
            budget = max_out // 2
        new = dataclasses.replace(
            decision, model=m.name, max_tokens=max_out, thinking_budget=budget,
            mode=decision.mode if decision.mode != "none" else ("hard" if m.enforces_thinking_budget else "none"),
            reason=f"{decision.reason}; degraded to {m.name}, max_tokens {max_out}, thinking {budget} "
                   f"to fit the remaining budget ({exc})",
        )
        usd, tokens = self._worst_case(new, prompt, snapshot)
        try:
            res = await self.ledger.reserve(tenant, Cost(usd=usd, tokens=tokens), ttl_s=ttl)
        except BudgetExceeded:
            return None
        return new, res

    async def settle(self, tenant: str, out: Outcome) -> None:
        rid = out.reservation_id
        if rid is None:
            return
        out.reservation_id = None  # idempotent from the gateway's side too
        from budget import Cost

        u = out.usage
        if u is None:
            await self.ledger.release(rid)
            return
        await self.ledger.settle(rid, Cost(usd=out.actual_usd or 0.0, tokens=u.prompt_tokens + u.completion_tokens))
        if out.actual_usd:
            await self.pacer.observe(tenant, out.actual_usd, self.ledger)

    def price_lambda(self, tenant: str) -> float:
        """The tenant's current price of a dollar, in value units (0 for anonymous)."""
        return self.pacer.price(tenant)

    async def budget_status(self, authorization: str | None) -> dict[str, Any]:
        """The body of ``GET /v1/budget`` for the caller."""
        tenant = await self.tenant(authorization)
        if tenant is None:
            return {"tenant": ANONYMOUS, "window": "total", "window_reset_at": None, "limit_usd": None,
                    "limit_tokens": None, "spent_usd": 0.0, "spent_tokens": 0, "reserved_usd": 0.0,
                    "reserved_tokens": 0, "remaining_usd": None, "remaining_tokens": None}
        s = await self.ledger.status(tenant.id)
        return {"tenant": tenant.id, "name": tenant.name, "window": s.window, "window_reset_at": s.window_reset_at,
                "limit_usd": s.limit_usd, "limit_tokens": s.limit_tokens, "spent_usd": s.spent_usd,
                "spent_tokens": s.spent_tokens, "reserved_usd": s.reserved_usd, "reserved_tokens": s.reserved_tokens,
                "remaining_usd": s.remaining_usd, "remaining_tokens": s.remaining_tokens, "policy": tenant.policy}
