"""``linucb``: PILOT-style per-model LinUCB with the offline predictor as a preference prior.

Per model (arm) a, with context x and prior mean theta0_a (PILOT, arXiv
2508.21141; Li et al. 2010 for LinUCB):

    A_a = l * I + sum x x^T,   b_a = l * theta0_a + sum r x,   theta_a = A_a^-1 b_a
    UCB_a(x) = theta_a . x + alpha * sqrt(x^T A_a^-1 x)

and the request goes to argmax_a UCB_a(x) - lambda * cost_a (lambda: the
tenant's price of a dollar, else ``default_lambda``). With no feedback the
choice is the prior's; every feedback r in [0, 1] for the served arm adds
x x^T and r x.

Context. ``context="estimates"`` (default) uses the predictor's P(correct) of
every option, sorted by option name, plus a constant 1: then the prior is
exact and needs no training -- theta0_a is the unit vector of arm a's own
option, so theta0_a . x = the predictor's P(correct | a). ``"features"`` uses
the request's feature vector (``req.features``, e.g. a sentence embedding or
the predictor's standardised structural counts; clipped to
``[-feature_clip, feature_clip]`` and divided by it) with priors passed in
(``priors``, e.g. from :func:`fit_prior`); ``"both"`` concatenates the two
(prior on the estimate block, zero on the rest): the bandit can then learn
how the offline estimates go wrong on a kind of query the predictor never saw.

Statistics live in memory for ``decide`` and are shared through the ledger
store's atomic vector add (``stats_add``/``stats_get``; SQLite for one
replica, Redis for several): one key per (namespace, dimension, model) holding
``[vec(sum x x^T), sum r x, n]``. :meth:`LinUCBPolicy.push` adds one
observation there, :meth:`LinUCBPolicy.pull` replaces the local totals with
the store's (which include every replica's pushes).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from router.base import BasePolicy
from router.options import Candidate, build_candidates, choose_healthy, effort_bonus
from router.seam import Decision, RequestView, RoutingSnapshot

__all__ = ["LinUCBPolicy", "LinUCBState", "fit_prior"]

_CONTEXTS = ("estimates", "features", "both")


class LinUCBState:
    """Sufficient statistics of every arm on top of a fixed prior (not thread-safe; the policy locks)."""

    def __init__(self, dim: int, prior_weight: float, priors: Mapping[str, np.ndarray] | None = None) -> None:
        if dim < 1:
            raise ValueError(f"dim: must be >= 1, got {dim}")
        if not prior_weight > 0 or not math.isfinite(prior_weight):
            raise ValueError(f"prior_weight: must be a finite number > 0, got {prior_weight}")
        self.dim = dim
        self.l = float(prior_weight)
        self.priors: dict[str, np.ndarray] = {}
        for m, th in (priors or {}).items():
            th = np.asarray(th, dtype=np.float64).ravel()
            if th.shape != (dim,):
                raise ValueError(f"priors[{m!r}]: need {dim} values, got {th.shape[0]}")
            self.priors[m] = th
        self._S: dict[str, np.ndarray] = {}
        self._u: dict[str, np.ndarray] = {}
        self._n: dict[str, float] = {}
        self._Ainv: dict[str, np.ndarray] = {}
        self._theta: dict[str, np.ndarray] = {}

    def _ensure(self, arm: str) -> None:
        if arm not in self._S:
            self._S[arm] = np.zeros((self.dim, self.dim))
            self._u[arm] = np.zeros(self.dim)
            self._n[arm] = 0.0
            self._Ainv[arm] = np.eye(self.dim) / self.l
            self._theta[arm] = self.priors.get(arm, np.zeros(self.dim)).copy()

    def count(self, arm: str) -> float:
        """Feedback events seen for ``arm``."""
        return self._n.get(arm, 0.0)

    def add(self, arm: str, x: np.ndarray, reward: float) -> None:
        """One observation: A += x x^T (Sherman-Morrison on A^-1), b += r x."""
        self._ensure(arm)
        x = np.asarray(x, dtype=np.float64)
        self._S[arm] += np.outer(x, x)
        self._u[arm] += reward * x
        self._n[arm] += 1.0
        Ax = self._Ainv[arm] @ x
        self._Ainv[arm] -= np.outer(Ax, Ax) / (1.0 + float(x @ Ax))
        self._theta[arm] = self._Ainv[arm] @ self.b(arm)

    def b(self, arm: str) -> np.ndarray:
        """b = l * theta0 + sum r x."""
        self._ensure(arm)
        return self.l * self.priors.get(arm, np.zeros(self.dim)) + self._u[arm]

    def set_totals(self, arm: str, vec: Sequence[float]) -> None:
        """Replace ``arm``'s sums with a store vector ``[vec(S), u, n]`` (recomputes A^-1 exactly)."""
        d = self.dim
        v = np.asarray(vec, dtype=np.float64)
        if v.shape != (d * d + d + 1,):
            raise ValueError(f"stats vector for {arm!r}: need {d * d + d + 1} values, got {v.shape[0]}")
        self._ensure(arm)
        self._S[arm] = v[: d * d].reshape(d, d)
        self._u[arm] = v[d * d: d * d + d]
        self._n[arm] = float(v[-1])
        self._Ainv[arm] = np.linalg.inv(self.l * np.eye(d) + self._S[arm])
        self._theta[arm] = self._Ainv[arm] @ self.b(arm)

    def score(self, arm: str, x: np.ndarray) -> tuple[float, float]:
        """(theta . x, sqrt(x^T A^-1 x)) for ``arm`` at context ``x``."""
        self._ensure(arm)
        mean = float(self._theta[arm] @ x)
        width = math.sqrt(max(float(x @ self._Ainv[arm] @ x), 0.0))
        return mean, width

    @staticmethod
    def observation(x: np.ndarray, reward: float) -> list[float]:
        """The store increment of one observation: ``[vec(x x^T), r x, 1]``."""
        x = np.asarray(x, dtype=np.float64)
        return [*np.outer(x, x).ravel().tolist(), *(reward * x).tolist(), 1.0]


def fit_prior(features: np.ndarray, targets: np.ndarray, ridge: float = 1.0) -> np.ndarray:
    """theta0 by ridge regression of an offline predictor's P(correct) on contexts: ``(X^T X + r I)^-1 X^T y``.

    ``features`` is ``[n, d]`` (the contexts the policy will see), ``targets``
    ``[n]`` or ``[n, k]`` (one column per arm); returns ``[d]`` or ``[d, k]``.
    """
    X = np.asarray(features, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] != y.shape[0]:
        raise ValueError("features: need an [n, d] matrix with one row per target")
    return np.linalg.solve(X.T @ X + ridge * np.eye(X.shape[1]), X.T @ y)


class LinUCBPolicy(BasePolicy):
    """Per-model LinUCB over the query context with a preference prior (see the module docstring).

    ``alpha`` scales exploration, ``prior_weight`` (l) is the prior's strength in
    pseudo-observations, ``use_prior=False`` gives plain LinUCB (theta0 = 0).
    ``namespace`` separates statistics of different deployments in one store.
    """

    name = "linucb"
    needs_estimates = True

    def __init__(
        self,
        alpha: float = 0.5,
        prior_weight: float = 1.0,
        default_lambda: float = 0.0,
        context: str = "estimates",
        priors: Mapping[str, Sequence[float]] | None = None,
        use_prior: bool = True,
        namespace: str = "default",
        feature_clip: float = 3.0,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        if not math.isfinite(alpha) or alpha < 0:
            raise ValueError(f"alpha: must be a finite number >= 0, got {alpha}")
        if context not in _CONTEXTS:
            raise ValueError(f"context: unknown {context!r}, available: {', '.join(_CONTEXTS)}")
        if not math.isfinite(default_lambda) or default_lambda < 0:
            raise ValueError(f"default_lambda: must be a finite number >= 0, got {default_lambda}")
        if not prior_weight > 0:
            raise ValueError(f"prior_weight: must be > 0, got {prior_weight}")
        if not feature_clip > 0:
            raise ValueError(f"feature_clip: must be > 0, got {feature_clip}")
        self.feature_clip = feature_clip
        self.alpha = alpha
        self.prior_weight = prior_weight
        self.default_lambda = default_lambda
        self.context = context
        self.needs_features = context != "estimates"
        self.use_prior = use_prior
        self.namespace = namespace
        self._given_priors = {m: np.asarray(v, dtype=np.float64) for m, v in (priors or {}).items()}
        self.state: LinUCBState | None = None
        self._options: tuple[str, ...] | None = None  # estimate order the context was built with
        self._lock = threading.RLock()

    # ------------------------------------------------------------ context

    def context_vector(self, req: RequestView) -> tuple[np.ndarray, tuple[str, ...]]:
        """The context x of a request and the option order of its estimate block."""
        ests = sorted(req.estimates, key=lambda e: e.option)
        names = tuple(e.option for e in ests)
        parts: list[np.ndarray] = []
        if self.context in ("estimates", "both"):
            parts.append(np.array([*(float(e.p_correct) for e in ests), 1.0]))
        if self.context in ("features", "both"):
            if req.features is None:
                raise ValueError("features: strategy linucb with context "
                                 f"{self.context!r} needs the request's feature vector")
            # Standardised features can have far outliers (a 350-sigma length); clipping to
            # [-c, c] and scaling by 1/c keeps them on the scale of the probabilities.
            f = np.asarray(req.features, dtype=np.float64).ravel()
            parts.append(np.clip(f, -self.feature_clip, self.feature_clip) / self.feature_clip)
        return np.concatenate(parts), names

    def _priors(self, names: tuple[str, ...], dim: int) -> dict[str, np.ndarray]:
        if not self.use_prior:
            return {}
        priors = dict(self._given_priors)
        if self.context in ("estimates", "both"):
            from router.options import parse_option

            # Arm a's prior reads its own P(correct): the unit vector of its option (the unlimited one,
            # else the largest budget), so theta0 . x equals the offline predictor's estimate.
            best: dict[str, tuple[float, int]] = {}
            for j, o in enumerate(names):
                model, budget = parse_option(o)
                key = math.inf if budget is None else float(budget)
                if model not in best or key > best[model][0]:
                    best[model] = (key, j)
            for model, (_, j) in best.items():
                th = np.zeros(dim)
                th[j] = 1.0
                given = priors.get(model)
                if self.context == "both" and given is not None and given.shape == (dim - len(names) - 1,):
                    th[len(names) + 1:] = given  # a prior for the feature block, e.g. from fit_prior
                priors[model] = th
        return {m: th for m, th in priors.items() if th.shape == (dim,)}

    def _state(self, names: tuple[str, ...], dim: int) -> LinUCBState:
        with self._lock:
            if self.state is None:
                self.state = LinUCBState(dim, self.prior_weight, self._priors(names, dim))
                self._options = names
            elif self.state.dim != dim or (self.context != "features" and names != self._options):
                raise ValueError(f"features: context dimension {dim} (options {len(names)}) differs from the "
                                 f"bandit's {self.state.dim}; a new predictor needs a new namespace")
            return self.state

    def store_key(self, model: str) -> str:
        """The stats-store key of ``model``'s sums."""
        dim = "?" if self.state is None else str(self.state.dim)
        return f"linucb:{self.namespace}:{self.context}:d{dim}:{model}"

    # ------------------------------------------------------------ decide / learn

    def decide(self, req: RequestView, snapshot: RoutingSnapshot) -> Decision:
        if not req.estimates:
            return self._fallback(req, snapshot, "no predictor estimates")
        x, names = self.context_vector(req)
        cands = build_candidates(req, snapshot, self.pricing)
        lam = req.price_lambda if req.price_lambda > 0 else self.default_lambda
        bonus = effort_bonus(cands, req.effort, self.effort_weight)
        with self._lock:
            state = self._state(names, x.shape[0])
            arm = {m: state.score(m, x) for m in {c.model for c in cands}}
            counts = {m: state.count(m) for m in arm}
        # Within one model the bandit has one estimate; budgets differ by their predicted P(correct).
        top_p: dict[str, float] = {}
        for c in cands:
            top_p[c.model] = max(top_p.get(c.model, 0.0), c.p_correct or 0.0)

        def score(c: Candidate) -> float:
            mean, width = arm[c.model]
            return (mean + self.alpha * width + ((c.p_correct or 0.0) - top_p[c.model])
                    - lam * c.cost_usd + bonus[c.option])

        best, note = choose_healthy(req, cands, score)
        mean, width = arm[best.model]
        reason = (f"linucb: {best.option} ucb={mean + self.alpha * width:.3f} (mean {mean:.3f} + "
                  f"{self.alpha:g}*{width:.3f}) n={counts[best.model]:.0f} lambda={lam:.4g}"
                  f"{'' if self.use_prior else ' no prior'}{note}")
        return self._decision(req, snapshot, best, reason)

    def update(self, decision: Decision | str, features: np.ndarray, reward: float) -> None:
        """Learn from feedback: ``reward`` in [0, 1] for the model that served (``decision`` or its name).

        ``features`` is the context vector the decision was made with
        (:meth:`context_vector`, as logged by the gateway).
        """
        if not (0.0 <= reward <= 1.0):
            raise ValueError(f"reward: must be in [0, 1], got {reward}")
        model = decision if isinstance(decision, str) else decision.model
        x = np.asarray(features, dtype=np.float64).ravel()
        with self._lock:
            if self.state is None:
                raise ValueError("features: the bandit has not decided yet, so its context is unknown")
            if x.shape != (self.state.dim,):
                raise ValueError(f"features: need {self.state.dim} values, got {x.shape[0]}")
            self.state.add(model, x, reward)

    async def push(self, store: Any, model: str, features: np.ndarray, reward: float) -> None:
        """Add one observation to the shared statistics (``store.stats_add``; atomic in every store)."""
        await store.stats_add(self.store_key(model), LinUCBState.observation(features, reward))

    async def pull(self, store: Any, models: Sequence[str]) -> int:
        """Load every replica's totals for ``models`` from ``store``; returns how many arms had any."""
        if self.state is None:
            return 0  # the context dimension is known after the first decision
        found = 0
        for m in models:
            vec = await store.stats_get(self.store_key(m))
            if vec is not None:
                with self._lock:
                    self.state.set_totals(m, vec)
                found += 1
        return found
