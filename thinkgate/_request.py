"""Client-side checks and request construction shared by the sync and async clients.

The checks mirror the gateway's own (which answers 400 naming the field), so a
mistake fails before a network round trip with a ``ValueError`` that names the
same field, e.g. ``thinkgate.effort: ...``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "DEFAULT_BASE_URL",
    "build_call_kwargs",
    "resolve_api_key",
    "resolve_base_url",
    "thinkgate_extension",
    "validate_feedback",
]

DEFAULT_BASE_URL = "http://127.0.0.1:8080/v1"
"""Where ``thinkgate serve`` listens by default (gateway.host/port in thinkgate.toml)."""


def _is_number(value: object) -> bool:
    # bool is an int subclass; True as a cost or effort is a mistake, not 1.
    return isinstance(value, int | float) and not isinstance(value, bool)


def thinkgate_extension(
    *,
    max_thinking_tokens: int | None = None,
    effort: float | str | None = None,
    max_cost_usd: float | None = None,
    min_quality: float | None = None,
    allow_skip: bool | None = None,
) -> dict[str, Any]:
    """Validate the budget controls and return the ``thinkgate`` request object.

    Arguments left as None are omitted (the gateway decides them), so an empty
    dict means "no extension". Raises ``ValueError`` naming ``thinkgate.<field>``.
    """
    ext: dict[str, Any] = {}
    if max_thinking_tokens is not None:
        if isinstance(max_thinking_tokens, bool) or not isinstance(max_thinking_tokens, int):
            raise ValueError(
                f"thinkgate.max_thinking_tokens: must be an integer, got {max_thinking_tokens!r}"
            )
        if max_thinking_tokens < 0:
            raise ValueError(f"thinkgate.max_thinking_tokens: must be >= 0, got {max_thinking_tokens}")
        ext["max_thinking_tokens"] = max_thinking_tokens
    if effort is not None:
        if isinstance(effort, str):
            if effort != "auto":
                raise ValueError(f'thinkgate.effort: must be a number in [0, 1] or "auto", got {effort!r}')
        elif not _is_number(effort) or not 0.0 <= effort <= 1.0:
            raise ValueError(f'thinkgate.effort: must be a number in [0, 1] or "auto", got {effort!r}')
        ext["effort"] = effort
    if max_cost_usd is not None:
        if not _is_number(max_cost_usd) or not math.isfinite(max_cost_usd) or max_cost_usd <= 0:
            raise ValueError(f"thinkgate.max_cost_usd: must be a finite number > 0, got {max_cost_usd!r}")
        ext["max_cost_usd"] = float(max_cost_usd)
    if min_quality is not None:
        if not _is_number(min_quality) or not 0.0 <= min_quality <= 1.0:
            raise ValueError(f"thinkgate.min_quality: must be a number in [0, 1], got {min_quality!r}")
        ext["min_quality"] = float(min_quality)
    if allow_skip is not None:
        if not isinstance(allow_skip, bool):
            raise ValueError(f"thinkgate.allow_skip: must be true or false, got {allow_skip!r}")
        ext["allow_skip"] = allow_skip
    return ext


def build_call_kwargs(
    *,
    model: str,
    extension: Mapping[str, Any],
    stream: bool,
    openai_kwargs: dict[str, Any],
) -> dict[str, Any]:
    """Keyword arguments for openai's ``create()``: the extension rides in ``extra_body``.

    A ``thinkgate`` object the caller already put in ``extra_body`` is kept and
    the explicit arguments override its keys, so both styles can be mixed.
    ``openai_kwargs`` is not modified.
    """
    if not isinstance(model, str) or not model:
        raise ValueError(
            f"model: must be a non-empty string (a backend model or a routing alias such as 'auto'), got {model!r}"
        )
    for reserved in ("model", "stream", "messages", "prompt"):
        if reserved in openai_kwargs:
            raise TypeError(f"{reserved}: pass it as the named argument, not in **openai_kwargs")
    kwargs = dict(openai_kwargs)
    extra_body = kwargs.pop("extra_body", None)
    if extra_body is not None and not isinstance(extra_body, Mapping):
        raise ValueError(f"extra_body: must be a mapping, got {type(extra_body).__name__}")
    body: dict[str, Any] = dict(extra_body or {})
    if extension:
        existing = body.get("thinkgate")
        if existing is not None and not isinstance(existing, Mapping):
            raise ValueError(f"extra_body.thinkgate: must be a mapping, got {type(existing).__name__}")
        body["thinkgate"] = {**(existing or {}), **extension}
    if body:
        kwargs["extra_body"] = body
    kwargs["model"] = model
    if stream:
        kwargs["stream"] = True
    return kwargs


def resolve_base_url(base_url: str | None) -> str:
    """The gateway's API root from the argument, else ``THINKGATE_BASE_URL``, else localhost:8080.

    A URL without a ``/v1`` path gets one appended, so ``http://host:8080``
    and ``http://host:8080/v1`` both work. Raises ``ValueError`` for a URL
    that is not http(s).
    """
    source = "base_url"
    if base_url is None:
        base_url = os.environ.get("THINKGATE_BASE_URL") or None
        source = "THINKGATE_BASE_URL"
    if base_url is None:
        return DEFAULT_BASE_URL
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{source}: must be an http(s) URL such as {DEFAULT_BASE_URL}, got {base_url!r}")
    path = parts.path.rstrip("/")
    if not path.endswith("/v1"):
        path += "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def resolve_api_key(api_key: str | None) -> str:
    """The tenant API key from the argument, else ``THINKGATE_API_KEY``; ``ValueError`` if neither."""
    if api_key is None:
        api_key = os.environ.get("THINKGATE_API_KEY") or None
    if api_key is None:
        raise ValueError(
            "api_key: not given and THINKGATE_API_KEY is not set "
            "(pass the tenant key; any non-empty string if the gateway runs without auth)"
        )
    if not isinstance(api_key, str) or not api_key.strip():
        raise ValueError("api_key: must be a non-empty string")
    return api_key


def validate_feedback(decision_id: object, score: object) -> dict[str, Any]:
    """The ``/v1/feedback`` body; ``decision_id`` may be a string or anything with ``.decision_id``."""
    if not isinstance(decision_id, str):
        decision_id = getattr(decision_id, "decision_id", decision_id)
    if not isinstance(decision_id, str) or not decision_id:
        raise ValueError(f"decision_id: must be a non-empty string or a Decision, got {decision_id!r}")
    if not _is_number(score) or not 0.0 <= score <= 1.0:  # type: ignore[operator]
        raise ValueError(f"score: must be a number in [0, 1], got {score!r}")
    return {"decision_id": decision_id, "score": float(score)}  # type: ignore[arg-type]
