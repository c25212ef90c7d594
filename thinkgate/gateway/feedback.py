"""Feedback: ``POST /v1/feedback {decision_id, score}`` updates the online router and logs an outcome.

The gateway records every served decision in a bounded, in-process TTL log
(:class:`DecisionLog`, TTL ``settings.gateway.decision_ttl_s``): model,
thinking budget, the context the policy decided with, usage and cost. A
feedback call for a logged decision (same tenant) is accepted once: the policy
learns from it when it has ``update`` (LinUCB; the statistics also go to the
ledger store so other replicas pick them up), and an outcome record
(``predictors.records`` format) is appended to ``settings.outcomes_path`` when
set. Repeats answer ``duplicate: true`` and change nothing; unknown, expired or
other tenants' ids get 404; malformed bodies get 400 naming the field.

The log is per process: with several replicas, feedback must reach the replica
that served the request (sticky routing on the decision id), or it gets 404.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from thinkgate.gateway import errors as E

if TYPE_CHECKING:
    from router.seam import Decision, RequestView, RoutingSnapshot
    from server import Gateway
    from thinkgate.gateway.pipeline import Outcome

__all__ = ["DecisionLog", "Feedback", "LoggedDecision", "install_feedback", "parse_feedback"]

log = logging.getLogger("thinkgate.feedback")

#: How often (seconds) a replica reloads the shared bandit statistics from the ledger store.
SYNC_INTERVAL_S = 30.0


@dataclass
class LoggedDecision:
    """What feedback needs of one served request.

    ``outcome`` is the request's live :class:`~thinkgate.gateway.pipeline.Outcome`:
    logged right after admission (so a fast client's feedback never races the
    log), its usage and cost are read when the feedback arrives.
    """

    decision_id: str
    tenant: str
    outcome: Outcome
    prompt: str
    context: list[float] | None
    created: float
    feedback: float | None = None

    @property
    def decision(self) -> Decision:
        """The decision as served (admission may have capped or degraded the policy's)."""
        return self.outcome.decision


class DecisionLog:
    """Bounded TTL map ``decision_id -> LoggedDecision`` (oldest evicted first; thread-safe)."""

    def __init__(self, ttl_s: float, max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        if not ttl_s > 0:
            raise ValueError(f"ttl_s: must be > 0, got {ttl_s}")
        if max_entries < 1:
            raise ValueError(f"max_entries: must be >= 1, got {max_entries}")
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        self._items: OrderedDict[str, LoggedDecision] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def _prune(self, now: float) -> None:
        # Insertion order is creation order, so expired entries sit at the front.
        while self._items:
            first = next(iter(self._items.values()))
            if now - first.created <= self.ttl_s and len(self._items) <= self.max_entries:
                break
            self._items.popitem(last=False)

    def put(self, entry: LoggedDecision) -> None:
        with self._lock:
            self._items[entry.decision_id] = entry
            self._prune(self.clock())

    def get(self, decision_id: str) -> LoggedDecision | None:
        """The live entry, or None when unknown or expired."""
        with self._lock:
            e = self._items.get(decision_id)
            if e is None or self.clock() - e.created > self.ttl_s:
                return None
            return e

    def claim(self, decision_id: str, score: float) -> tuple[LoggedDecision | None, bool]:
        """Attach ``score`` to a live entry once: ``(entry, duplicate)``; ``(None, False)`` if unknown/expired."""
        with self._lock:
            e = self._items.get(decision_id)
            if e is None or self.clock() - e.created > self.ttl_s:
                return None, False
            if e.feedback is not None:
                return e, True
            e.feedback = score
            return e, False


def parse_feedback(body: Any) -> tuple[str, float]:
    """Validate a feedback body; returns ``(decision_id, score)`` or raises InvalidRequest naming the field."""
    if not isinstance(body, dict):
        raise E.InvalidRequest("request body must be a JSON object {decision_id, score}")
    did = body.get("decision_id")
    if not isinstance(did, str) or not did.strip():
        raise E.InvalidRequest("decision_id: required, a non-empty string", param="decision_id")
    score = body.get("score")
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        raise E.InvalidRequest("score: required, a number in [0, 1]", param="score")
    if not 0.0 <= score <= 1.0:
        raise E.InvalidRequest(f"score: must be in [0, 1], got {score}", param="score")
    return did, float(score)


class Feedback:
    """The decision log, the feedback handler and the bandit-statistics sync of one gateway."""

    def __init__(self, gw: Gateway, sync_interval_s: float = SYNC_INTERVAL_S) -> None:
        self.gw = gw
        self.log = DecisionLog(gw.settings.gateway.decision_ttl_s)
        self.sync_interval_s = sync_interval_s
        self._last_sync = -math.inf
        self._sync_task: asyncio.Task[None] | None = None
        self._file_lock = threading.Lock()

    @property
    def store(self) -> Any:
        """The ledger store holding shared statistics (None with no ledger-backed admission)."""
        return getattr(self.gw.admission, "ledger", None)

    def record(self, out: Outcome, view: RequestView, snapshot: RoutingSnapshot | None = None) -> None:
        """Log a request for feedback and let the policy observe it (tiers calibration).

        Call once per request, after admission and before the response goes
        out (``out`` keeps filling in; usage is read when feedback arrives).
        Never raises: bookkeeping must not fail a request.
        """
        try:
            policy = self.gw.policy
            context: list[float] | None = None
            ctx_fn = getattr(policy, "context_vector", None)
            if ctx_fn is not None and view.estimates:
                context = [float(v) for v in ctx_fn(view)[0]]
            elif view.features is not None:
                context = [float(v) for v in view.features]
            self.log.put(LoggedDecision(
                decision_id=out.decision_id, tenant=view.tenant_id, outcome=out,
                prompt=view.prompt_text, context=context, created=self.log.clock(),
            ))
            observe = getattr(policy, "observe", None)
            if observe is not None:
                observe(view, snapshot if snapshot is not None else self.gw.pool.snapshot())
            self._maybe_sync()
        except Exception:  # noqa: BLE001 - logging only; see docstring
            log.exception("feedback: could not record decision %s", out.decision_id)

    def _maybe_sync(self) -> None:
        """Reload shared bandit statistics every ``sync_interval_s`` (in the background)."""
        pull = getattr(self.gw.policy, "pull", None)
        if pull is None or self.store is None or (self._sync_task and not self._sync_task.done()):
            return
        now = time.monotonic()
        if now - self._last_sync < self.sync_interval_s:
            return
        self._last_sync = now
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._sync_task = loop.create_task(self.sync())

    async def sync(self) -> int:
        """Pull every model's shared statistics into the policy now; returns the arms found."""
        pull = getattr(self.gw.policy, "pull", None)
        if pull is None or self.store is None:
            return 0
        try:
            return int(await pull(self.store, self.gw.pool.models()))
        except Exception:  # noqa: BLE001 - a store hiccup must not break routing
            log.exception("feedback: pulling bandit statistics failed")
            return 0

    async def submit(self, tenant: str, decision_id: str, score: float) -> dict[str, Any]:
        """Apply one feedback; returns the response body. Raises NotFound for unknown/expired/foreign ids."""
        entry = self.log.get(decision_id)
        if entry is None or entry.tenant != tenant:
            raise E.NotFound(f"decision_id: unknown or expired decision {decision_id!r}", param="decision_id")
        entry, duplicate = self.log.claim(decision_id, score)
        if entry is None:
            raise E.NotFound(f"decision_id: unknown or expired decision {decision_id!r}", param="decision_id")
        if not duplicate:
            await self._learn(entry, score)
            path = self.gw.settings.outcomes_path
            if path:
                await asyncio.to_thread(self._append, Path(path), entry, score)
        return {"decision_id": decision_id, "accepted": True, "duplicate": duplicate}

    async def _learn(self, entry: LoggedDecision, score: float) -> None:
        policy = self.gw.policy
        update = getattr(policy, "update", None)
        if update is None or entry.context is None:
            return
        update(entry.decision, entry.context, score)
        push = getattr(policy, "push", None)
        if push is not None and self.store is not None:
            try:
                await push(self.store, entry.decision.model, entry.context, score)
            except Exception:  # noqa: BLE001 - the local update stands; other replicas miss this one
                log.exception("feedback: pushing bandit statistics failed")

    def _append(self, path: Path, entry: LoggedDecision, score: float) -> None:
        from predictors.records import validate_outcome_record

        d = entry.decision
        u = entry.outcome.usage
        rec = validate_outcome_record({
            "prompt": entry.prompt, "model": d.model, "thinking_budget": d.thinking_budget, "score": score,
            "thinking_tokens": None if u is None else u.thinking_tokens,
            "answer_tokens": None if u is None else u.answer_tokens,
            "prompt_tokens": None if u is None else u.prompt_tokens, "cost_usd": entry.outcome.actual_usd,
            "meta": {"decision_id": entry.decision_id, "tenant": entry.tenant, "strategy": d.strategy},
        })
        line = json.dumps(rec.to_dict(), ensure_ascii=False) + "\n"
        with self._file_lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as f:
                f.write(line)


def install_feedback(app: FastAPI, gw: Gateway) -> Feedback:
    """Create the gateway's :class:`Feedback` (as ``gw.feedback``) and register ``POST /v1/feedback``."""
    import orjson

    fb = Feedback(gw)
    gw.feedback = fb  # the hot path finds it here to record decisions

    @app.post("/v1/feedback")
    async def feedback(request: Request) -> Response:
        tenant = await gw.admission.authenticate(request.headers.get("authorization"))
        raw = await request.body()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise E.InvalidRequest("request body is not valid JSON") from None
        decision_id, score = parse_feedback(body)
        result = await fb.submit(tenant, decision_id, score)
        return Response(orjson.dumps(result), media_type="application/json")

    return fb
