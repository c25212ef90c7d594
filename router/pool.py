"""Backend pool: replicas per model, health, outstanding requests, failover order.

Pure state, no I/O: the gateway's lifespan runs the health loop and reports
results here. Every method is synchronous and O(replicas), so it is safe to
call on the request hot path from the event loop.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from router.seam import ModelInfo, RoutingSnapshot

__all__ = ["Replica", "BackendPool"]


@dataclass(eq=False)
class Replica:
    """One vLLM server. ``outstanding`` counts requests in flight through this gateway."""

    name: str
    url: str
    model: str
    price_input_per_m: float = 0.0
    price_output_per_m: float = 0.0
    enforces_thinking_budget: bool = True
    guidance: bool = False
    guidance_mode: str | None = None
    reasoning_parser: str | None = None
    api_key: str | None = None
    healthy: bool = True
    outstanding: int = 0
    last_error: str | None = None
    last_change: float = field(default_factory=time.monotonic)


class BackendPool:
    """Replicas grouped by served model name."""

    def __init__(self, replicas: Iterable[Replica], aliases: Iterable[str] = ("auto",)) -> None:
        self.replicas: dict[str, Replica] = {}
        self.by_model: dict[str, list[Replica]] = {}
        for r in replicas:
            self.replicas[r.name] = r
            self.by_model.setdefault(r.model, []).append(r)
        self.aliases = frozenset(aliases)
        # Token id of the end-of-thinking marker per model, learned from the
        # backend's tokenizer (/tokenize) once a replica is up.
        self.think_end_ids: dict[str, int] = {}
        # Round-robin tie-breaker among replicas with equal load.
        self._rr = itertools.count()
        self._snapshot: RoutingSnapshot | None = None

    def models(self) -> list[str]:
        return list(self.by_model)

    def order(self, model: str) -> list[Replica]:
        """Healthy replicas of ``model``, least outstanding first (ties rotate)."""
        reps = [r for r in self.by_model.get(model, ()) if r.healthy]
        if len(reps) > 1:
            n = len(reps)
            start = next(self._rr) % n
            rotated = reps[start:] + reps[:start]
            rotated.sort(key=lambda r: r.outstanding)  # stable: rotation breaks ties
            return rotated
        return reps

    def acquire(self, replica: Replica) -> None:
        replica.outstanding += 1

    def release(self, replica: Replica) -> None:
        replica.outstanding -= 1

    def mark(self, replica: Replica, healthy: bool, error: str | None = None) -> bool:
        """Record a health observation; returns True when the state changed."""
        replica.last_error = error
        if replica.healthy == healthy:
            return False
        replica.healthy = healthy
        replica.last_change = time.monotonic()
        self._snapshot = None
        return True

    def snapshot(self) -> RoutingSnapshot:
        """A frozen view for decision policies (cached until health changes)."""
        snap = self._snapshot
        if snap is None:
            infos = []
            for model, reps in self.by_model.items():
                first = reps[0]
                infos.append(ModelInfo(
                    name=model,
                    price_input_per_m=first.price_input_per_m,
                    price_output_per_m=first.price_output_per_m,
                    enforces_thinking_budget=all(r.enforces_thinking_budget for r in reps),
                    guidance=all(r.guidance for r in reps),
                    healthy=any(r.healthy for r in reps),
                    guidance_mode=first.guidance_mode,
                ))
            snap = self._snapshot = RoutingSnapshot(models=tuple(infos), aliases=self.aliases)
        return snap
