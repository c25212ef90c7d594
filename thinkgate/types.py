"""Typed response objects of the thinkgate gateway.

Every model subclasses ``openai.BaseModel`` so that openai's response parser
builds them (leniently, like every openai response object: unknown fields are
kept, new gateway fields never break an old client) and so that they offer the
same helpers (``to_dict()``, ``to_json()``, ``model_dump()``).

The completion types are the openai ones plus one typed field, ``thinkgate``,
which carries the gateway's :class:`Decision` exactly as it travels on the wire.
"""

from __future__ import annotations

from openai import BaseModel
from openai.types import Completion as _OpenAICompletion
from openai.types.chat import ChatCompletion as _OpenAIChatCompletion
from openai.types.chat import ChatCompletionChunk as _OpenAIChatCompletionChunk
from pydantic import Field

__all__ = [
    "BudgetStatus",
    "ChatCompletion",
    "ChatCompletionChunk",
    "Completion",
    "Decision",
    "DecisionCost",
    "DecisionUsage",
    "FeedbackResult",
    "Predicted",
]


class Predicted(BaseModel):
    """What the gateway's predictors expected for the chosen option."""

    p_correct: float | None = None
    """Predicted probability that the answer is correct, in [0, 1]."""

    thinking_tokens: float | None = None
    """Predicted number of thinking tokens the model will spend."""


class DecisionCost(BaseModel):
    """Money reserved in the tenant's ledger before the call and spent after it."""

    reserved_usd: float | None = None
    """Worst-case cost reserved before decoding started (USD)."""

    actual_usd: float | None = None
    """Settled cost of the tokens actually generated (USD); None until settled."""


class DecisionUsage(BaseModel):
    """Generated tokens split into thinking and answer parts."""

    thinking_tokens: int | None = None
    answer_tokens: int | None = None


class Decision(BaseModel):
    """The gateway's per-request decision: which model, how much thinking, why.

    ``decision_id`` is the handle for :meth:`thinkgate.Client.feedback`.
    Fields other than ``decision_id`` and ``model`` may be absent, e.g. when the
    decision was rebuilt from the ``X-Thinkgate-*`` response headers only.
    """

    decision_id: str
    """Opaque id of this decision; send it back with ``feedback()``."""

    model: str
    """The backend model that served the request."""

    backend: str | None = None
    """Name of the backend (vLLM server) that served the request."""

    thinking_budget: int | None = None
    """Thinking-token budget enforced for this request; None means unlimited."""

    mode: str | None = None
    """How the budget is enforced: e.g. ``"hard"``, ``"soft"``, ``"soft+hard"``, ``"extend"``, ``"none"``."""

    # default_factory: every decision gets its own (mutable) sub-objects.
    predicted: Predicted = Field(default_factory=Predicted)
    cost: DecisionCost = Field(default_factory=DecisionCost)
    usage: DecisionUsage = Field(default_factory=DecisionUsage)

    strategy: str | None = None
    """Routing/allocation strategy that made the decision (e.g. ``"knapsack"``)."""

    reason: str | None = None
    """Human-readable explanation of the decision."""


class FeedbackResult(BaseModel):
    """Answer of ``POST /v1/feedback``."""

    decision_id: str
    accepted: bool
    duplicate: bool = False
    """True when feedback for this decision had already been recorded."""


class BudgetStatus(BaseModel):
    """Answer of ``GET /v1/budget``: the calling tenant's spend in the current window.

    Limits that the tenant does not have are None (e.g. a dollar-only budget has
    ``limit_tokens=None`` and ``remaining_tokens=None``).
    """

    tenant: str
    window: str
    """Budget window, e.g. ``"day"``, ``"month"`` or ``"none"``."""

    window_reset_at: float | None = None
    """When the current window ends (epoch seconds), None for an unwindowed budget."""

    limit_usd: float | None = None
    limit_tokens: int | None = None
    spent_usd: float = 0.0
    spent_tokens: int = 0
    reserved_usd: float = 0.0
    reserved_tokens: int = 0
    remaining_usd: float | None = None
    remaining_tokens: int | None = None


class ChatCompletion(_OpenAIChatCompletion):
    """``openai.types.chat.ChatCompletion`` plus the gateway's decision."""

    thinkgate: Decision | None = None
    """The gateway's decision for this request (None if the server sent none)."""

    @property
    def decision(self) -> Decision | None:
        """Alias of ``thinkgate``, the same name the streaming wrappers use."""
        return self.thinkgate


class ChatCompletionChunk(_OpenAIChatCompletionChunk):
    """A streamed chunk; only the gateway's final chunk carries ``thinkgate``."""

    thinkgate: Decision | None = None


class Completion(_OpenAICompletion):
    """``openai.types.Completion`` plus the gateway's decision (also used for stream chunks)."""

    thinkgate: Decision | None = None

    @property
    def decision(self) -> Decision | None:
        """Alias of ``thinkgate``, the same name the streaming wrappers use."""
        return self.thinkgate
