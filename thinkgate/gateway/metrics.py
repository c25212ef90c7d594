"""Prometheus metrics, one registry per app (so several apps can live in one process).

The per-request metrics (requests, errors, latency, time to first token,
tokens, in-flight) are plain Python numbers behind a custom collector:
``prometheus_client``'s own children take a lock and re-check their state on
every ``inc``/``observe`` (about 1-3 us each, several per request), while the
gateway updates them from its one event-loop thread only. The exposition is
the same as ``prometheus_client``'s Counter/Gauge/Histogram (``_total`` and
``_bucket``/``_sum``/``_count`` samples), rendered by ``generate_latest``.
Not thread-safe: update them from the event loop.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Value:
    """One labelled counter or gauge value."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount


class HistogramValue:
    """One labelled histogram: per-bucket counts (not cumulative) and the sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        # bucket "le=b" holds amounts <= b: the first bound >= amount
        self.counts[bisect_left(self.bounds, amount)] += 1
        self.sum += amount


class Family:
    """A labelled metric whose children are cached by label values (``labels(*values)``)."""

    def __init__(self, name: str, doc: str, labelnames: tuple[str, ...], kind: str,
                 buckets: tuple[float, ...] = ()) -> None:
        if kind not in ("counter", "gauge", "histogram"):
            raise ValueError(f"kind: must be counter, gauge or histogram, got {kind!r}")
        self.name, self.doc, self.labelnames, self.kind = name, doc, labelnames, kind
        self.bounds = tuple(float(b) for b in buckets)
        self.children: dict[tuple[str, ...], Any] = {}

    def labels(self, *values: str) -> Any:
        child = self.children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {values}")
            child = HistogramValue(self.bounds) if self.kind == "histogram" else Value()
            self.children[values] = child
        return child

    def family(self) -> Metric:
        """The exposition form (what ``prometheus_client`` collectors return)."""
        names = list(self.labelnames)
        if self.kind == "counter":
            fam: Any = CounterMetricFamily(self.name, self.doc, labels=names)
            for values, c in self.children.items():
                fam.add_metric(list(values), c.value)
        elif self.kind == "gauge":
            fam = GaugeMetricFamily(self.name, self.doc, labels=names)
            for values, c in self.children.items():
                fam.add_metric(list(values), c.value)
        else:
            fam = HistogramMetricFamily(self.name, self.doc, labels=names)
            les = [floatToGoString(b) for b in self.bounds] + ["+Inf"]
            for values, h in self.children.items():
                total, cumulative = 0, []
                for le, n in zip(les, h.counts, strict=True):
                    total += n
                    cumulative.append((le, float(total)))
                fam.add_metric(list(values), cumulative, h.sum)
        return fam


class Served:
    """The children one successful request of a (route, backend) pair touches, looked up once."""

    __slots__ = ("ok", "latency", "ttft", "prompt", "thinking", "answer", "inflight")

    def __init__(self, m: Metrics, route: str, backend: str) -> None:
        self.ok: Value = m.requests.labels(route, "200", backend)
        self.latency: HistogramValue = m.latency.labels(route)
        self.ttft: HistogramValue = m.ttft.labels(route, backend)
        self.prompt: Value = m.tokens.labels("prompt", backend)
        self.thinking: Value = m.tokens.labels("thinking", backend)
        self.answer: Value = m.tokens.labels("answer", backend)
        self.inflight: Value = m.inflight.labels(backend)


class _Collector:
    def __init__(self, families: list[Family]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        for f in self.families:
            yield f.family()


class Metrics:
    """The gateway's counters; names are prefixed ``thinkgate_``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Family("thinkgate_requests", "Requests by route, status code and backend",
                               ("route", "code", "backend"), "counter")
        self.errors = Family("thinkgate_errors", "Error responses by route, status code and error type",
                             ("route", "code", "type"), "counter")
        self.latency = Family("thinkgate_request_duration_seconds", "Request latency (to last byte)",
                              ("route",), "histogram", _LATENCY_BUCKETS)
        self.ttft = Family("thinkgate_time_to_first_token_seconds",
                           "Time from request arrival to the first streamed token forwarded",
                           ("route", "backend"), "histogram", _LATENCY_BUCKETS)
        self.tokens = Family("thinkgate_tokens", "Tokens by kind (prompt, thinking, answer) and backend",
                             ("kind", "backend"), "counter")
        self.inflight = Family("thinkgate_inflight_requests", "Requests in flight per backend", ("backend",), "gauge")
        r.register(_Collector([self.requests, self.errors, self.latency, self.ttft, self.tokens, self.inflight]))
        # Off the hot path: plain prometheus_client metrics.
        self.healthy = Gauge("thinkgate_backend_healthy", "1 when the backend passed its last health check",
                             ["backend"], registry=r)
        self.spend = Counter("thinkgate_spend_usd", "Settled spend in USD by tenant", ["tenant"], registry=r)
        self._served: dict[tuple[str, str], Served] = {}

    def served(self, route: str, backend: str) -> Served:
        """The cached children of the success path for ``route`` on ``backend``."""
        s = self._served.get((route, backend))
        if s is None:
            s = self._served[(route, backend)] = Served(self, route, backend)
        return s

    def render(self) -> bytes:
        return generate_latest(self.registry)
