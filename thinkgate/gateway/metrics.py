"""Prometheus metrics, one registry per app (so several apps can live in one process)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """The gateway's counters; names are prefixed ``thinkgate_``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("thinkgate_requests", "Requests by route, status code and backend",
                                ["route", "code", "backend"], registry=r)
        self.errors = Counter("thinkgate_errors", "Error responses by route, status code and error type",
                              ["route", "code", "type"], registry=r)
        self.latency = Histogram("thinkgate_request_duration_seconds", "Request latency (to last byte)",
                                 ["route"], buckets=_LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("thinkgate_time_to_first_token_seconds",
                              "Time from request arrival to the first streamed token forwarded",
                              ["route", "backend"], buckets=_LATENCY_BUCKETS, registry=r)
        self.tokens = Counter("thinkgate_tokens", "Tokens by kind (prompt, thinking, answer) and backend",
                              ["kind", "backend"], registry=r)
        self.inflight = Gauge("thinkgate_inflight_requests", "Requests in flight per backend",
                              ["backend"], registry=r)
        self.healthy = Gauge("thinkgate_backend_healthy", "1 when the backend passed its last health check",
                             ["backend"], registry=r)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.spend = Counter("thinkgate_spend_usd", "Settled spend in USD by tenant", ["tenant"], registry=r)

    # Label lookups cost ~8 us each in prometheus_client; the hot path uses
    # these cached children instead (label sets are few: routes x codes x backends).
    def child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), labels)
        c = self._children.get(key)
        if c is None:
            c = self._children[key] = metric.labels(*labels)
        return c

    def render(self) -> bytes:
        return generate_latest(self.registry)
