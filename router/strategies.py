"""Routing strategies: ``tiers`` (EllieSQL + RouteLLM calibration), ``utility``, ``random`` (+ ``linucb``).

Each strategy is a small class with ``decide(req, snapshot) -> Decision``
(:class:`router.seam.DecisionPolicy`); importing this module registers them in
:data:`router.seam.POLICIES` under their short names, so
``make_policy("utility", default_model=..., ...)`` builds one. Factories accept
and ignore keyword arguments they do not use, so the gateway can pass its
usual defaults to every strategy.

Online state (the tiers' per-tenant calibration, the bandit's statistics) lives
in small objects with explicit update methods; ``decide`` only reads it.
"""

from __future__ import annotations

import math
import random
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from router.base import BasePolicy
from router.options import Candidate, apply_limits, build_candidates, choose_healthy, effort_bonus
from router.seam import Decision, NoModelAvailable, RequestView, RoutingSnapshot, register_policy

__all__ = ["RandomPolicy", "TierCalibrator", "TiersPolicy", "UtilityPolicy", "quantile", "register_all"]


# ------------------------------------------------------------------ utility


class UtilityPolicy(BasePolicy):
    """argmax over options of P(correct) - lambda * expected cost (+ an effort bonus).

    lambda is the tenant's dual price (``req.price_lambda``, P(correct) per
    dollar) when positive, else ``default_lambda``. Options over
    ``max_cost_usd`` or under ``min_quality`` are dropped (relaxed with a note
    when none is left); ``max_thinking_tokens`` caps budgets; ``effort``
    shifts preference toward larger (effort > 0.5) or smaller budgets.
    """

    name = "utility"

    def __init__(self, default_lambda: float = 0.0, **kw: Any) -> None:
        super().__init__(**kw)
        if not math.isfinite(default_lambda) or default_lambda < 0:
            raise ValueError(f"default_lambda: must be a finite number >= 0, got {default_lambda}")
        self.default_lambda = default_lambda

    def price(self, req: RequestView) -> float:
        """The price of a dollar used for this request."""
        return req.price_lambda if req.price_lambda > 0 else self.default_lambda

    def decide(self, req: RequestView, snapshot: RoutingSnapshot) -> Decision:
        if not req.estimates:
            return self._fallback(req, snapshot, "no predictor estimates")
        cands = build_candidates(req, snapshot, self.pricing)
        lam = self.price(req)
        bonus = effort_bonus(cands, req.effort, self.effort_weight)

        def score(c: Candidate) -> float:
            return (c.p_correct or 0.0) - lam * c.cost_usd + bonus[c.option]

        best, note = choose_healthy(req, cands, score)
        reason = (f"max p - lambda*cost: {best.option} p={best.p_correct:.3f} cost=${best.cost_usd:.3g} "
                  f"lambda={lam:.4g}{note}")
        return self._decision(req, snapshot, best, reason)


# ------------------------------------------------------------------ tiers


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default method), standard library only."""
    if not values:
        raise ValueError("values: need at least one value")
    if not 0 <= q <= 1:
        raise ValueError(f"q: must be in [0, 1], got {q}")
    xs = sorted(values)
    pos = q * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


class TierCalibrator:
    """Escalation thresholds that hit a target share of escalated calls, per tenant, from live traffic.

    RouteLLM calibrates a threshold as the (1 - p) quantile of the router's
    strong-win score on a reference set so that a share p of calls goes to the
    strong model. Here the score is the cheapest tier's confidence s (its best
    P(correct)) and a call escalates iff s < threshold, so the threshold is the
    ``target_share`` quantile of s. Each tenant keeps its last ``window``
    scores; its threshold is their quantile once it has ``min_samples``, else
    the pooled window of all tenants, else the reference threshold (quantile of
    ``reference_scores``), else ``default_threshold``. Thread-safe; bounded to
    ``max_tenants`` (least recently updated dropped).
    """

    def __init__(
        self,
        target_share: float = 0.5,
        reference_scores: Iterable[float] = (),
        window: int = 1000,
        min_samples: int = 50,
        default_threshold: float = 0.5,
        max_tenants: int = 10_000,
    ) -> None:
        if not 0 <= target_share <= 1:
            raise ValueError(f"target_share: must be in [0, 1], got {target_share}")
        if window < 1 or min_samples < 1 or max_tenants < 1:
            raise ValueError("window, min_samples, max_tenants: must be >= 1")
        self.target_share = target_share
        self.window = window
        self.min_samples = min_samples
        ref = [float(s) for s in reference_scores]
        self.reference_threshold = quantile(ref, target_share) if ref else default_threshold
        self.max_tenants = max_tenants
        self._tenants: OrderedDict[str, deque[float]] = OrderedDict()
        self._pooled: deque[float] = deque(maxlen=window)
        self._lock = threading.Lock()

    def update(self, tenant: str, score: float) -> None:
        """Record one live request's cheapest-tier confidence for ``tenant``."""
        if not math.isfinite(score):
            raise ValueError(f"score: must be finite, got {score}")
        with self._lock:
            q = self._tenants.pop(tenant, None)
            if q is None:
                q = deque(maxlen=self.window)
                if len(self._tenants) >= self.max_tenants:
                    self._tenants.popitem(last=False)
            q.append(score)
            self._tenants[tenant] = q
            self._pooled.append(score)

    def threshold(self, tenant: str) -> tuple[float, str]:
        """The tenant's current threshold and where it comes from (``tenant``, ``pooled``, ``reference``)."""
        with self._lock:
            q = self._tenants.get(tenant)
            if q is not None and len(q) >= self.min_samples:
                return quantile(list(q), self.target_share), "tenant"
            if len(self._pooled) >= self.min_samples:
                return quantile(list(self._pooled), self.target_share), "pooled"
        return self.reference_threshold, "reference"

    def samples(self, tenant: str) -> int:
        with self._lock:
            q = self._tenants.get(tenant)
            return 0 if q is None else len(q)


class TiersPolicy(BasePolicy):
    """EllieSQL-style: the cheapest tier predicted sufficient, with a calibrated sufficiency threshold.

    Tiers group options by the model's price per token (input + output), then
    by thinking budget (unlimited last), cheapest first. A tier is sufficient
    when its best P(correct) reaches the tenant's threshold
    (:class:`TierCalibrator`); the request goes to the best option of the first
    sufficient tier. When no tier is, ``escalate`` decides: ``"likeliest"``
    (default) takes the likeliest option overall; ``"top"`` takes the best
    option of the most expensive tier, as EllieSQL hands a query no cheaper
    pipeline can handle to its most capable one and RouteLLM sends every call
    under the threshold to the strong model (price stands for capability: use
    it where the predictor cannot tell the expensive model's strength, e.g. on
    kinds of queries it has few outcomes for). Call :meth:`observe` once per
    request (after ``decide``) to feed the online calibration; ``decide``
    itself never changes state.
    """

    name = "tiers"

    def __init__(self, target_share: float = 0.5, calibrator: TierCalibrator | None = None,
                 escalate: str = "likeliest", **kw: Any) -> None:
        super().__init__(**kw)
        if escalate not in ("likeliest", "top"):
            raise ValueError(f"escalate: unknown {escalate!r}, available: likeliest, top")
        self.calibrator = calibrator or TierCalibrator(target_share)
        self.escalate = escalate

    @staticmethod
    def tiers(cands: Sequence[Candidate], snapshot: RoutingSnapshot) -> list[list[Candidate]]:
        """Candidates grouped into tiers, cheapest first."""
        groups: dict[tuple[float, float], list[Candidate]] = {}
        for c in cands:
            info = snapshot.get(c.model)
            price = 0.0 if info is None else info.price_input_per_m + info.price_output_per_m
            key = (round(price, 9), math.inf if c.budget is None else float(c.budget))
            groups.setdefault(key, []).append(c)
        return [groups[k] for k in sorted(groups)]

    def _healthy_tiers(self, req: RequestView, snapshot: RoutingSnapshot) -> list[list[Candidate]]:
        cands = [c for c in build_candidates(req, snapshot, self.pricing) if c.healthy]
        return self.tiers(cands, snapshot)

    def confidence(self, req: RequestView, snapshot: RoutingSnapshot) -> float | None:
        """The calibration score s of a request: the cheapest healthy tier's best P(correct)."""
        if not req.estimates:
            return None
        tiers = self._healthy_tiers(req, snapshot)
        if not tiers:
            return None
        return max(c.p_correct or 0.0 for c in tiers[0])

    def observe(self, req: RequestView, snapshot: RoutingSnapshot) -> None:
        """Feed one served request into the tenant's calibration window (no-op without estimates)."""
        s = self.confidence(req, snapshot)
        if s is not None:
            self.calibrator.update(req.tenant_id, s)

    def decide(self, req: RequestView, snapshot: RoutingSnapshot) -> Decision:
        if not req.estimates:
            return self._fallback(req, snapshot, "no predictor estimates")
        threshold, source = self.calibrator.threshold(req.tenant_id)
        cands = build_candidates(req, snapshot, self.pricing)
        # An option at or over the threshold scores (2n - its tier's index) + p >= n + 1; one under it
        # p, or (its tier's index) + p <= n when escalating to the top: the best is the likeliest option
        # of the cheapest tier that holds a sufficient one, else the likeliest overall (or of the most
        # expensive tier). Tier indices come from all candidates, so the healthy choice and the
        # "preferred" one (down models included) are ranked alike.
        tiers = self.tiers(cands, snapshot)
        n = len(tiers)
        top = self.escalate == "top"
        rank: dict[str, float] = {}
        for i, tier in enumerate(tiers):
            for c in tier:
                p = c.p_correct or 0.0
                rank[c.option] = (2 * n - i if p >= threshold else (i if top else 0)) + p
        best, note = choose_healthy(req, cands, lambda c: rank[c.option])
        sufficient = (best.p_correct or 0.0) >= threshold
        why = ("cheapest sufficient tier" if sufficient else
               "no tier sufficient, escalated to the most expensive tier" if top else
               "no tier sufficient, likeliest option")
        reason = (f"{why}: {best.option} p={best.p_correct:.3f} threshold={threshold:.3f} ({source}, "
                  f"target escalation share {self.calibrator.target_share:g}){note}")
        return self._decision(req, snapshot, best, reason)


# ------------------------------------------------------------------ random


class RandomPolicy(BasePolicy):
    """Baseline: a uniformly random healthy option (seeded; the RNG is its only state)."""

    name = "random"
    needs_estimates = False

    def __init__(self, seed: int | None = 0, **kw: Any) -> None:
        super().__init__(**kw)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def decide(self, req: RequestView, snapshot: RoutingSnapshot) -> Decision:
        cands = build_candidates(req, snapshot, self.pricing)
        healthy = [c for c in cands if c.healthy]
        if not healthy:
            raise NoModelAvailable("no healthy backend for any candidate option")
        pool, notes = apply_limits(req, healthy)
        pool.sort(key=lambda c: c.option)
        with self._lock:
            draw = self._rng.random()
        best = pool[min(int(draw * len(pool)), len(pool) - 1)]
        note = "".join(f"; {n}" for n in notes)
        return self._decision(req, snapshot, best, f"uniform random option {best.option} of {len(pool)}{note}")


# ------------------------------------------------------------------ registry


def _factory(cls: Callable[..., Any]) -> Callable[..., Any]:
    """A registry factory that passes only the keyword arguments ``cls`` accepts."""
    import inspect

    accepted: set[str] = set()
    for klass in getattr(cls, "__mro__", (cls,)):
        init = klass.__dict__.get("__init__")
        if init is not None:
            accepted |= {p for p in inspect.signature(init).parameters if p not in ("self", "kw")}

    def build(**kwargs: Any) -> Any:
        return cls(**{k: v for k, v in kwargs.items() if k in accepted})

    build.__doc__ = cls.__doc__
    return build


def register_all() -> None:
    """Register every strategy of this package (idempotent)."""
    from router.linucb import LinUCBPolicy

    for name, cls in (("utility", UtilityPolicy), ("tiers", TiersPolicy), ("random", RandomPolicy),
                      ("linucb", LinUCBPolicy)):
        register_policy(name, _factory(cls))


register_all()
