"""Offline evaluation helpers for the routing strategies: replay a policy over an outcome table.

Pure numpy over the same ``decide`` code the gateway runs: every query of a
table becomes a :class:`~router.seam.RequestView` with the predictor's
estimates, the policy decides against a snapshot priced like the table's
models, and (when asked) learns online from the table's score of the option it
chose -- bandit feedback, never the other options' scores. Used by
``evals/router_eval.py``; kept here so the router's tests can run it on tiny
tables.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from router.options import build_candidates
from router.seam import ModelInfo, RequestView, RoutingSnapshot

__all__ = [
    "GROUP_HALVES",
    "PolicyRun",
    "decision_prices",
    "lam_unit",
    "run_policy",
    "snapshot_from_prices",
    "surface_group",
    "views_for",
]

#: Task groups of the LLMRouter table split into two halves for the shift experiment.
GROUP_HALVES: tuple[tuple[str, ...], tuple[str, ...]] = (
    ("math", "logic", "openqa"),
    ("code", "commonsense", "science", "reading"),
)


def surface_group(question: str) -> str:
    """A task group from surface patterns (the LLMRouter table has no task label).

    In order: ``logic`` (zebra puzzles: "houses" with "Clue"), ``code`` (a
    ``def`` stub, a docstring, or "Write a [python] function"), ``math``
    (``\\boxed`` or at least two numbers in a text under 700 characters),
    ``reading`` (600+ characters: passages with a question), ``science``
    (100+ characters), ``openqa`` (short, lower-case start: search-style
    questions), ``commonsense`` (the rest: short capitalised questions).
    """
    s = question.lstrip()
    if "houses" in question and "Clue" in question:
        return "logic"
    if s.startswith("def ") or '"""' in question or re.match(r"(Write|Create) a (python )?function", s):
        return "code"
    if "\\boxed" in question or (len(re.findall(r"\d+(?:\.\d+)?", question)) >= 2 and len(question) < 700):
        return "math"
    if len(question) >= 600:
        return "reading"
    if len(question) >= 100:
        return "science"
    if s[:1].islower():
        return "openqa"
    return "commonsense"


def snapshot_from_prices(prices: Mapping[str, tuple[float, float]], aliases: Sequence[str] = ("auto",)) -> RoutingSnapshot:
    """A healthy snapshot with ``model -> (input, output) $ per million tokens``."""
    models = tuple(ModelInfo(m, float(pi), float(po), True, False, True) for m, (pi, po) in prices.items())
    return RoutingSnapshot(models, frozenset(aliases))


def decision_prices(prices: Mapping[str, tuple[float, float]], cost_model: str) -> dict[str, tuple[float, float]]:
    """The ``(input, output)`` prices a policy decides with, for an outcome table priced ``input + output`` per query.

    ``"tokens"``: the prices as they are, so an option's expected cost grows
    with the prompt's length (what the gateway does with real dollars).
    ``"table"``: input price 0 and output price = input + output, so every
    query's expected cost of a model is proportional to the table's own cost
    of that model (LLMRouter: ``input_price + output_price``, whatever the
    length): the policy then trades score against the cost it is scored on.
    Raises ``ValueError`` for another ``cost_model``.
    """
    if cost_model == "tokens":
        return {m: (float(pi), float(po)) for m, (pi, po) in prices.items()}
    if cost_model == "table":
        return {m: (0.0, float(pi) + float(po)) for m, (pi, po) in prices.items()}
    raise ValueError(f"cost_model: unknown {cost_model!r}, available: table, tokens")


def views_for(
    prompts: Sequence[str], estimates: Sequence[Sequence[Any]], tenant: str = "eval", price_lambda: float = 0.0,
    **fields: Any,
) -> list[RequestView]:
    """One alias request per prompt carrying its estimates (extra ``fields`` go into every view)."""
    base = dict(model="auto", max_tokens=None, max_thinking_tokens=None, effort=None, max_cost_usd=None,
                min_quality=None, allow_skip=None)
    base.update(fields)
    return [RequestView(prompt_text=p, tenant_id=tenant, estimates=tuple(e), price_lambda=price_lambda, **base)
            for p, e in zip(prompts, estimates, strict=True)]


def lam_unit(views: Sequence[RequestView], snap: RoutingSnapshot, strong: str) -> float:
    """1 / the ``strong`` model's mean expected $ cost over ``views``: lambda = kappa * unit prices one strong call at kappa."""
    costs = [c.cost_usd for v in views for c in build_candidates(v, snap) if c.model == strong]
    return 1.0 / float(np.mean(costs))


@dataclass(frozen=True)
class PolicyRun:
    """Per query: chosen option index, realised score and the table cost of the choice."""

    choice: np.ndarray
    score: np.ndarray
    cost: np.ndarray

    @property
    def mean_score(self) -> float:
        return float(self.score.mean())

    @property
    def mean_cost(self) -> float:
        return float(self.cost.mean())


def run_policy(
    policy: Any,
    views: Sequence[RequestView],
    snapshot: RoutingSnapshot,
    options: Sequence[str],
    scores: np.ndarray,
    costs: np.ndarray,
    learn: bool = False,
) -> PolicyRun:
    """Replay ``policy`` over ``views`` in order; ``scores``/``costs`` are ``[N, M]`` in ``options`` order.

    With ``learn``, after each decision a policy with ``update`` (LinUCB)
    receives the chosen option's score as reward, and a policy with
    ``observe`` (tiers) records the request for its online calibration.
    """
    index = {o: j for j, o in enumerate(options)}
    n = len(views)
    choice = np.empty(n, dtype=np.int64)
    for i, view in enumerate(views):
        d = policy.decide(view, snapshot)
        option = d.model if d.thinking_budget is None else f"{d.model}@{d.thinking_budget}"
        j = index.get(option, index.get(d.model))
        if j is None:
            raise ValueError(f"options: policy chose {option!r}, which the table does not have")
        choice[i] = j
        if learn:
            if hasattr(policy, "update"):
                x, _ = policy.context_vector(view)
                policy.update(d, x, float(scores[i, j]))
            if hasattr(policy, "observe"):
                policy.observe(view, snapshot)
    rows = np.arange(n)
    return PolicyRun(choice, scores[rows, choice], costs[rows, choice])
