"""Parse a chat-completion response (as a JSON dict) into answer text and token/cost accounting.

Sources, most trusted first: the gateway's ``thinkgate`` object
(``usage.thinking_tokens``/``answer_tokens``, ``cost.actual_usd``), then the
OpenAI usage block (``completion_tokens_details.reasoning_tokens``), then
counting the reasoning text with a tokenizer when one is given. vLLM puts the
thinking in ``message.reasoning_content`` (older) or ``message.reasoning``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["ParsedResponse", "parse_response"]


@dataclass(frozen=True)
class ParsedResponse:
    """The parts of one response the runner records; unknown counts are ``None``."""

    content: str
    reasoning: str | None
    model: str | None
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    thinking_tokens: int | None
    answer_tokens: int | None
    cost_usd: float | None
    thinkgate: dict[str, Any] | None


def _int(x: Any) -> int | None:
    return int(x) if isinstance(x, int | float) and not isinstance(x, bool) and x >= 0 else None


def parse_response(raw: dict[str, Any], count_tokens: Callable[[str], int] | None = None) -> ParsedResponse:
    """Extract content, reasoning, usage and cost from a chat-completion dict (first choice)."""
    choices = raw.get("choices") or [{}]
    choice = choices[0] or {}
    msg = choice.get("message") or {}
    content = msg.get("content") or ""
    reasoning = msg.get("reasoning_content") or msg.get("reasoning")
    usage = raw.get("usage") or {}
    prompt_tokens = _int(usage.get("prompt_tokens"))
    completion = _int(usage.get("completion_tokens"))
    details = usage.get("completion_tokens_details") or {}
    thinking = _int(details.get("reasoning_tokens"))
    if thinking == 0 and reasoning:
        # vLLM 0.32 reports reasoning_tokens = 0 for non-streamed replies that did think:
        # a count contradicted by the text is no count.
        thinking = None
    answer = None
    tg = raw.get("thinkgate") if isinstance(raw.get("thinkgate"), dict) else None
    cost = None
    if tg is not None:
        tg_usage = tg.get("usage") or {}
        thinking = _int(tg_usage.get("thinking_tokens")) if tg_usage.get("thinking_tokens") is not None else thinking
        answer = _int(tg_usage.get("answer_tokens"))
        c = (tg.get("cost") or {}).get("actual_usd")
        cost = float(c) if isinstance(c, int | float) and not isinstance(c, bool) else None
    if thinking is None and reasoning and count_tokens is not None:
        thinking = int(count_tokens(reasoning))
    if thinking is None and not reasoning and completion is not None:
        thinking = 0  # no reasoning text at all: nothing was spent thinking
    if answer is None and completion is not None and thinking is not None:
        answer = max(0, completion - thinking)
    if answer is None and count_tokens is not None:
        answer = int(count_tokens(content))
    return ParsedResponse(
        content=content, reasoning=reasoning, model=raw.get("model"), finish_reason=choice.get("finish_reason"),
        prompt_tokens=prompt_tokens, completion_tokens=completion, thinking_tokens=thinking,
        answer_tokens=answer, cost_usd=cost, thinkgate=tg,
    )
