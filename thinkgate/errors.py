"""Typed errors of the thinkgate SDK.

Every class subclasses both :class:`ThinkgateError` and the matching openai
exception, so existing ``except openai.RateLimitError:`` code keeps working and
new code can catch ``thinkgate.BudgetExceeded``::

    ThinkgateError (openai.OpenAIError)
    └── APIError (openai.APIError)                      error event inside a stream
        ├── APIConnectionError (openai.APIConnectionError)
        │   └── APITimeoutError (openai.APITimeoutError)
        └── APIStatusError (openai.APIStatusError)      any other 4xx/5xx, e.g. 413
            ├── InvalidRequest (openai.BadRequestError)         400, ``param`` names the field
            ├── AuthenticationError (openai.AuthenticationError) 401
            ├── PermissionDenied (openai.PermissionDeniedError)  403
            ├── NotFound (openai.NotFoundError)                  404, unknown model/decision
            ├── RateLimited (openai.RateLimitError)              429
            │   └── BudgetExceeded                               429 ``budget_exceeded``, ``retry_after``
            ├── BackendUnavailable (openai.InternalServerError)  502/503/504
            └── ServerError (openai.InternalServerError)         other 5xx

Arguments that are wrong before anything is sent raise ``ValueError``/``TypeError``.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping

import openai

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BackendUnavailable",
    "BudgetExceeded",
    "InvalidRequest",
    "NotFound",
    "PermissionDenied",
    "RateLimited",
    "ServerError",
    "ThinkgateError",
    "map_error",
    "parse_retry_after",
]


class ThinkgateError(openai.OpenAIError):
    """Base class of every error the SDK raises after a request was attempted."""

    retries_taken: int = 0
    """How many retries the SDK made before giving up with this error."""


class APIError(ThinkgateError, openai.APIError):
    """The gateway reported an error that is not an HTTP status (e.g. inside a stream)."""


class APIConnectionError(APIError, openai.APIConnectionError):
    """The gateway could not be reached (DNS, refused connection, reset)."""


class APITimeoutError(APIConnectionError, openai.APITimeoutError):
    """The request timed out."""


class APIStatusError(APIError, openai.APIStatusError):
    """The gateway answered with a 4xx/5xx status; ``status_code``, ``code``, ``param``, ``request_id`` are set."""


class InvalidRequest(APIStatusError, openai.BadRequestError):
    """400: the request was rejected; ``param`` names the offending field (e.g. ``thinkgate.effort``)."""


class AuthenticationError(APIStatusError, openai.AuthenticationError):
    """401: the API key is missing or unknown to the gateway."""


class PermissionDenied(APIStatusError, openai.PermissionDeniedError):
    """403: the key is valid but not allowed to do this (e.g. use that model)."""


class NotFound(APIStatusError, openai.NotFoundError):
    """404: unknown model, or a feedback decision id that is unknown or expired."""


class RateLimited(APIStatusError, openai.RateLimitError):
    """429 for a reason other than the tenant's budget."""

    retry_after: float | None = None
    """Seconds the server asked to wait (``Retry-After``), None if it did not say."""


class BudgetExceeded(RateLimited):
    """429 ``budget_exceeded``: the tenant's budget cannot cover this request now.

    ``retry_after`` is the number of seconds until the budget window resets (from
    the ``Retry-After`` header), or None when the gateway gave no reset time.
    """


class BackendUnavailable(APIStatusError, openai.InternalServerError):
    """502/503/504: no healthy backend could serve the request."""


class ServerError(APIStatusError, openai.InternalServerError):
    """Any other 5xx from the gateway."""


def parse_retry_after(headers: Mapping[str, str] | None, *, now: float | None = None) -> float | None:
    """Seconds to wait according to ``retry-after-ms`` / ``Retry-After`` headers, or None.

    ``Retry-After`` may be delta-seconds (fractions accepted) or an HTTP date
    (RFC 9110 §10.2.3); ``retry-after-ms`` (an OpenAI extension) wins when both
    are present. Malformed or negative values give None. Header lookup is
    case-insensitive for httpx headers; plain dicts should use lower-case keys.
    """
    if headers is None:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            value = float(raw)
        except ValueError:
            continue
        if math.isnan(value) or value < 0:
            return None
        return value / divisor
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        parsed = email.utils.parsedate_tz(raw)
        if parsed is None:
            return None
        when = email.utils.mktime_tz(parsed)
    except (TypeError, ValueError, OverflowError):
        return None
    return max(0.0, float(when) - (time.time() if now is None else now))


# 502/503/504 are the gateway's "no backend could serve it" statuses.
_BACKEND_STATUSES = frozenset({502, 503, 504})


def _status_class(status: int, code: str | None, err_type: str | None) -> type[APIStatusError]:
    if status == 400:
        return InvalidRequest
    if status == 401:
        return AuthenticationError
    if status == 403:
        return PermissionDenied
    if status == 404:
        return NotFound
    if status == 429:
        return BudgetExceeded if "budget_exceeded" in (code, err_type) else RateLimited
    if status in _BACKEND_STATUSES or "backend_unavailable" in (code, err_type):
        return BackendUnavailable
    if status >= 500:
        return ServerError
    return APIStatusError


def _describe(status: int | None, body: object, fallback: str) -> str:
    """A one-line message from the gateway's OpenAI-shaped error body."""
    if not isinstance(body, Mapping) or not isinstance(body.get("message"), str):
        return fallback
    label = body.get("code") or body.get("type")
    text = f"{body['message']}"
    if label:
        text = f"{label}: {text}"
    if body.get("param"):
        text += f" (param: {body['param']})"
    return f"HTTP {status}: {text}" if status is not None else text


def map_error(exc: openai.OpenAIError, *, retries_taken: int = 0) -> openai.OpenAIError:
    """Translate an openai exception into the matching thinkgate error.

    Errors that are already thinkgate errors, and openai errors that carry no
    request (e.g. a missing API key), are returned unchanged. The returned error
    keeps the response, body, ``code``, ``param`` and ``request_id`` of ``exc``.
    """
    if isinstance(exc, ThinkgateError):
        return exc
    mapped: ThinkgateError
    if isinstance(exc, openai.APIStatusError):
        body = exc.body
        cls = _status_class(exc.status_code, exc.code, getattr(exc, "type", None))
        message = _describe(exc.status_code, body, exc.message)
        mapped = cls(message, response=exc.response, body=body)
        if isinstance(mapped, RateLimited):
            mapped.retry_after = parse_retry_after(exc.response.headers)
    elif isinstance(exc, openai.APITimeoutError):
        mapped = APITimeoutError(request=exc.request)
    elif isinstance(exc, openai.APIConnectionError):
        mapped = APIConnectionError(message=exc.message, request=exc.request)
    elif isinstance(exc, openai.APIError):
        mapped = APIError(_describe(None, exc.body, exc.message), exc.request, body=exc.body)
    else:
        return exc
    mapped.retries_taken = retries_taken
    return mapped
