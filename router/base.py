"""The shared base of the scoring strategies: gateway defaults, fallback, decision building."""

from __future__ import annotations

import dataclasses
import math

from router.options import Candidate, Pricing, make_decision
from router.seam import Decision, FixedPolicy, RequestView, RoutingSnapshot

__all__ = ["BasePolicy"]


class BasePolicy:
    """Defaults every strategy shares with :class:`router.seam.FixedPolicy`."""

    name = "base"
    needs_estimates = True
    needs_features = False

    def __init__(
        self,
        default_model: str | None = None,
        default_thinking_budget: int | None = None,
        default_max_tokens: int | None = None,
        guidance_mode: str = "hard",
        pricing: Pricing | None = None,
        effort_weight: float = 0.05,
    ) -> None:
        self.default_model = default_model
        self.default_thinking_budget = default_thinking_budget
        self.default_max_tokens = default_max_tokens
        self.guidance_mode = guidance_mode
        self.pricing = pricing or Pricing()
        if not math.isfinite(effort_weight) or effort_weight < 0:
            raise ValueError(f"effort_weight: must be a finite number >= 0, got {effort_weight}")
        self.effort_weight = effort_weight

    def _fallback(self, req: RequestView, snapshot: RoutingSnapshot, why: str) -> Decision:
        """The fixed policy's decision, labelled with this strategy and why it fell back."""
        d = FixedPolicy(self.default_model, self.default_thinking_budget, self.default_max_tokens,
                        self.guidance_mode).decide(req, snapshot)
        return dataclasses.replace(d, strategy=self.name, reason=f"{why}; {d.reason}")

    def _decision(self, req: RequestView, snapshot: RoutingSnapshot, cand: Candidate, reason: str) -> Decision:
        return make_decision(req, snapshot, cand, strategy=self.name, reason=reason,
                             guidance_mode=self.guidance_mode, default_thinking_budget=self.default_thinking_budget,
                             default_max_tokens=self.default_max_tokens)
