"""The decision seam: a parsed request and a frozen snapshot in, a frozen decision out.

Every strategy (fixed, tiers, utility, linucb, knapsack, ...) implements
:class:`DecisionPolicy`; the gateway calls ``decide`` once per request and
never lets a policy touch the network, the ledger or the request object.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

__all__ = [
    "Decision",
    "DecisionPolicy",
    "ModelInfo",
    "RequestView",
    "RoutingSnapshot",
    "UnknownModel",
    "NoModelAvailable",
    "FixedPolicy",
    "POLICIES",
    "register_policy",
    "make_policy",
]


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What a policy knows of one served model (all replicas together)."""

    name: str
    price_input_per_m: float
    price_output_per_m: float
    enforces_thinking_budget: bool
    guidance: bool
    healthy: bool
    #: This model's own guidance mode (BackendConfig.guidance_mode), overriding the policy's.
    guidance_mode: str | None = None


@dataclass(frozen=True, slots=True)
class RoutingSnapshot:
    models: tuple[ModelInfo, ...]
    aliases: frozenset[str]

    def get(self, name: str) -> ModelInfo | None:
        for m in self.models:
            if m.name == name:
                return m
        return None

    @property
    def healthy(self) -> tuple[ModelInfo, ...]:
        return tuple(m for m in self.models if m.healthy)


@dataclass(frozen=True, slots=True)
class RequestView:
    """The request as a policy sees it (no body, no I/O)."""

    model: str
    prompt_text: str
    max_tokens: int | None
    max_thinking_tokens: int | None
    effort: float | None
    max_cost_usd: float | None
    min_quality: float | None
    allow_skip: bool | None
    tenant_id: str
    # Filled by the gateway before decide() when a predictor is loaded: one
    # estimate per option ("model" or "model@budget"), duck-typed like
    # predictors.OptionEstimate (option, p_correct, thinking_tokens_mean,
    # thinking_tokens_p90, answer_tokens_mean, answer_tokens_p90).
    estimates: tuple[Any, ...] = ()
    # The query's feature vector (numpy array) when the policy asked for it
    # (``needs_features``), e.g. the LinUCB context.
    features: Any = None
    # The tenant's current price of a dollar (dual variable from budget
    # pacing): strategies trade value against cost as value - price * cost.
    price_lambda: float = 0.0


@dataclass(frozen=True, slots=True)
class Decision:
    """What serves a request and under which limits.

    ``thinking_budget`` None means unlimited; ``mode`` says how the budget is
    enforced: ``hard`` (vLLM's native ``thinking_token_budget``), ``soft``,
    ``soft+hard``, ``extend`` (guidance plugin) or ``none`` (not enforced).
    """

    model: str
    thinking_budget: int | None
    max_tokens: int | None
    mode: str
    strategy: str
    reason: str
    extra_vllm_args: Mapping[str, int | float | str] = field(default_factory=lambda: MappingProxyType({}))
    p_correct: float | None = None
    predicted_thinking_tokens: float | None = None
    predicted_answer_tokens: float | None = None
    #: The model's predicted thinking length with no budget (its unlimited option's estimate): the
    #: guidance plugin's prior on the total length. ``predicted_thinking_tokens`` is capped at the budget.
    unconstrained_thinking_tokens: float | None = None


class UnknownModel(LookupError):
    """The request names neither a backend model nor a routing alias."""


class NoModelAvailable(RuntimeError):
    """No healthy backend can serve the request."""


class DecisionPolicy(Protocol):
    """A routing/allocation strategy. Pure: no I/O, no mutation of its inputs.

    Optional class attributes the gateway reads: ``needs_estimates`` (run the
    predictor before ``decide``) and ``needs_features`` (also pass the feature
    vector); both default to False.
    """

    name: str

    def decide(self, req: RequestView, snapshot: RoutingSnapshot) -> Decision: ...


def resolve_model(req: RequestView, snapshot: RoutingSnapshot, default_model: str | None) -> tuple[str, str]:
    """Pick the model for a request naming a model or an alias; returns (model, reason).

    A named model is served as is (still budgeted); an alias goes to
    ``default_model`` when healthy, else to the cheapest healthy model.
    """
    info = snapshot.get(req.model)
    if info is not None:
        if not info.healthy:
            raise NoModelAvailable(f"no healthy backend for model {req.model!r}")
        return info.name, f"model {info.name} requested"
    if req.model not in snapshot.aliases:
        available = sorted([m.name for m in snapshot.models] + list(snapshot.aliases))
        raise UnknownModel(f"unknown model {req.model!r}, available: {', '.join(available)}")
    healthy = snapshot.healthy
    if not healthy:
        raise NoModelAvailable("no healthy backend")
    if default_model:
        d = snapshot.get(default_model)
        if d is not None and d.healthy:
            return d.name, f"alias {req.model} -> default model {d.name}"
    cheapest = min(healthy, key=lambda m: (m.price_input_per_m + m.price_output_per_m, m.name))
    fallback = f" (default {default_model} is down)" if default_model else ""
    return cheapest.name, f"alias {req.model} -> cheapest healthy model {cheapest.name}{fallback}"


def enforcement_mode(info: ModelInfo, budget: int | None, wanted: str) -> tuple[str, str]:
    """The mode a backend can actually apply, with a note when it degrades.

    ``wanted`` is the policy's mode; a model's own ``guidance_mode`` replaces it.
    """
    if budget is None:
        return "none", ""
    if info.guidance_mode is not None:
        wanted = info.guidance_mode
    if wanted in ("soft", "soft+hard", "extend") and not info.guidance:
        wanted, note = "hard", "; guidance plugin absent on backend, degraded to hard"
    else:
        note = ""
    if wanted in ("hard", "soft+hard") and not info.enforces_thinking_budget:
        return "none", note + "; backend does not enforce thinking_token_budget"
    return wanted, note


@dataclass(frozen=True)
class FixedPolicy:
    """Baseline: the requested model (or the default for an alias) with a fixed thinking budget.

    The budget is the request's ``max_thinking_tokens`` when given, else the
    configured default (None: unlimited).
    """

    default_model: str | None = None
    default_thinking_budget: int | None = None
    default_max_tokens: int | None = None
    guidance_mode: str = "hard"
    name: str = "fixed"

    def decide(self, req: RequestView, snapshot: RoutingSnapshot) -> Decision:
        model, reason = resolve_model(req, snapshot, self.default_model)
        info = snapshot.get(model)
        assert info is not None
        if req.max_thinking_tokens is not None:
            budget, why = req.max_thinking_tokens, "requested thinking budget"
        else:
            budget, why = self.default_thinking_budget, "default thinking budget"
        mode, note = enforcement_mode(info, budget, self.guidance_mode)
        budget_txt = "unlimited" if budget is None else str(budget)
        return Decision(
            model=model,
            thinking_budget=budget,
            max_tokens=req.max_tokens or self.default_max_tokens,
            mode=mode,
            strategy=self.name,
            reason=f"{reason}; {why} {budget_txt}{note}",
        )


PolicyFactory = Callable[..., DecisionPolicy]
POLICIES: dict[str, PolicyFactory] = {"fixed": FixedPolicy}


def register_policy(name: str, factory: PolicyFactory) -> None:
    """Add a strategy under a short name (used by config, CLI and error messages)."""
    POLICIES[name] = factory


def make_policy(name: str, **kwargs: Any) -> DecisionPolicy:
    """Build the strategy ``name``; unknown names list the available ones."""
    import router.strategies  # noqa: F401  (registers the learned strategies)

    try:
        factory = POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown router strategy {name!r}, available: {', '.join(sorted(POLICIES))}") from None
    try:
        return factory(**kwargs)
    except TypeError as exc:
        raise ValueError(f"router.options: {exc}") from None
