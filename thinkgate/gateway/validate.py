"""Validation of OpenAI request bodies and of the ``thinkgate`` extension.

The gateway forwards bodies almost untouched, so it validates only what it
reads or rewrites; vLLM validates the rest and its 400s pass through. Every
error names the offending field (``param``), as OpenAI does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from predictors.records import messages_to_prompt
from thinkgate.gateway.errors import InvalidRequest

Endpoint = Literal["chat", "completions"]

_EXT_FIELDS = ("max_thinking_tokens", "effort", "max_cost_usd", "min_quality", "allow_skip")


@dataclass(frozen=True, slots=True)
class ThinkgateOptions:
    """The validated ``thinkgate`` extension; ``None`` means "auto" (gateway decides)."""

    max_thinking_tokens: int | None = None
    effort: float | None = None
    max_cost_usd: float | None = None
    min_quality: float | None = None
    allow_skip: bool | None = None


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    """What the decision policies see of a request: a frozen view, no I/O objects."""

    endpoint: Endpoint
    model: str
    stream: bool
    include_usage: bool
    max_tokens: int | None
    options: ThinkgateOptions
    prompt_text: str
    body: dict[str, Any]


_AUTO = ThinkgateOptions()


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _number(ext: dict[str, Any], key: str, lo: float, hi: float, *, lo_open: bool = False) -> float | None:
    v = ext.get(key)
    if v is None or v == "auto":
        return None
    param = f"thinkgate.{key}"
    if not _is_num(v):
        raise InvalidRequest(f"{param} must be a number or \"auto\", got {type(v).__name__}", param=param)
    if v < lo or (lo_open and v == lo) or v > hi:
        bound = f"({lo}, {hi}]" if lo_open else f"[{lo}, {hi}]"
        raise InvalidRequest(f"{param} must be in {bound}, got {v}", param=param)
    return float(v)


def parse_options(ext: Any) -> ThinkgateOptions:
    """Validate the ``thinkgate`` object of a request body."""
    if ext is None:
        return _AUTO  # frozen: one shared instance for the common case
    if not isinstance(ext, dict):
        raise InvalidRequest("thinkgate must be an object", param="thinkgate")
    for key in ext:
        if key not in _EXT_FIELDS:
            raise InvalidRequest(
                f"thinkgate.{key} is not a known field; known: {', '.join(_EXT_FIELDS)}",
                param=f"thinkgate.{key}",
            )
    mtt = ext.get("max_thinking_tokens")
    if mtt == "auto":
        mtt = None
    if mtt is not None:
        if not _is_int(mtt):
            raise InvalidRequest(
                "thinkgate.max_thinking_tokens must be a non-negative integer or \"auto\"",
                param="thinkgate.max_thinking_tokens",
            )
        if mtt < 0:
            raise InvalidRequest(
                f"thinkgate.max_thinking_tokens must be >= 0, got {mtt}", param="thinkgate.max_thinking_tokens"
            )
    skip = ext.get("allow_skip")
    if skip == "auto":
        skip = None
    if skip is not None and not isinstance(skip, bool):
        raise InvalidRequest("thinkgate.allow_skip must be a boolean or \"auto\"", param="thinkgate.allow_skip")
    return ThinkgateOptions(
        max_thinking_tokens=mtt,
        effort=_number(ext, "effort", 0.0, 1.0),
        max_cost_usd=_number(ext, "max_cost_usd", 0.0, math.inf, lo_open=True),
        min_quality=_number(ext, "min_quality", 0.0, 1.0),
        allow_skip=skip,
    )


def _prompt_text(endpoint: Endpoint, body: dict[str, Any]) -> str:
    """The text the predictors featurize: user/system content, or the prompt."""
    if endpoint == "completions":
        prompt = body.get("prompt")
        if isinstance(prompt, str):
            return prompt
        if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
            return "\n".join(prompt)
        return ""
    # The same rendering the predictors were trained on (serving and training must agree).
    return messages_to_prompt(body["messages"])


def parse_body(raw: bytes, endpoint: Endpoint, default_model: str) -> ParsedRequest:
    """Parse and validate a request body. Raises :class:`InvalidRequest`."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object", code="invalid_json")
    model = body.get("model", default_model)
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model must be a non-empty string", param="model")
    if endpoint == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InvalidRequest("messages must be a non-empty array", param="messages")
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise InvalidRequest(f"messages[{i}] must be an object with a string role", param=f"messages[{i}]")
    else:
        prompt = body.get("prompt")
        if not isinstance(prompt, (str, list)) or (isinstance(prompt, list) and not prompt):
            raise InvalidRequest("prompt must be a string or a non-empty array", param="prompt")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise InvalidRequest("stream must be a boolean", param="stream")
    so = body.get("stream_options")
    if so is not None and not isinstance(so, dict):
        raise InvalidRequest("stream_options must be an object", param="stream_options")
    include_usage = bool(so and so.get("include_usage"))
    max_tokens = None
    for key in ("max_completion_tokens", "max_tokens"):
        v = body.get(key)
        if v is None:
            continue
        if not _is_int(v) or v < 1:
            raise InvalidRequest(f"{key} must be a positive integer", param=key)
        max_tokens = v if max_tokens is None else min(max_tokens, v)
    ttb = body.get("thinking_token_budget")
    if ttb is not None and (not _is_int(ttb) or ttb < -1):
        raise InvalidRequest("thinking_token_budget must be an integer >= -1", param="thinking_token_budget")
    options = parse_options(body.pop("thinkgate", None))
    if ttb is not None and ttb >= 0 and options.max_thinking_tokens is None:
        # vLLM's native field, sent straight to the gateway: honour it as the cap.
        options = ThinkgateOptions(ttb, options.effort, options.max_cost_usd, options.min_quality, options.allow_skip)
    return ParsedRequest(
        endpoint=endpoint,
        model=model,
        stream=stream,
        include_usage=include_usage,
        max_tokens=max_tokens,
        options=options,
        prompt_text=_prompt_text(endpoint, body),
        body=body,
    )
