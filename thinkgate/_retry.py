"""Retry policy of the SDK, the same rules as openai-python's ``_base_client``.

Retried: HTTP 408, 409, 429 and every 5xx, plus connection errors and
timeouts, up to ``max_retries`` times. The wait is the server's
``Retry-After`` when it is positive and at most ``max_retry_after`` seconds;
a longer ``Retry-After`` is not waited for at all (the error is raised at once,
so a ``BudgetExceeded`` whose window resets in an hour surfaces immediately
with its ``retry_after``). Otherwise the wait is exponential,
``min(initial_delay * 2**attempt, max_delay)``, shortened by a random jitter of
up to ``jitter`` (25 %), which spreads clients that failed together.
An ``x-should-retry: true|false`` response header overrides the status rule.

Only the request itself is retried: once a stream has started, an error
inside it is raised, never replayed (the caller already saw part of the answer).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import NoReturn, TypeVar

import openai

from .errors import map_error, parse_retry_after

__all__ = ["RetryPolicy", "call_with_retries", "acall_with_retries"]

T = TypeVar("T")

_RETRY_STATUSES = frozenset({408, 409, 429})


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before retrying a failed request.

    Defaults are openai-python's (2 retries, 0.5 s doubling to at most 8 s,
    25 % jitter) except ``max_retry_after``: openai waits up to 120 s on a
    ``Retry-After``; 60 s keeps an interactive caller from hanging for minutes.
    """

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if (
            isinstance(self.max_retries, bool)
            or not isinstance(self.max_retries, int)
            or self.max_retries < 0
        ):
            raise ValueError(f"max_retries: must be an integer >= 0, got {self.max_retries!r}")
        for name in ("initial_delay", "max_delay", "max_retry_after"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name}: must be a finite number >= 0, got {value!r}")
        if not isinstance(self.jitter, int | float) or not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter: must be a number in [0, 1], got {self.jitter!r}")

    def should_retry_status(self, status: int, headers: Mapping[str, str] | None) -> bool:
        """Whether a response with this status and headers may be retried (ignoring the count)."""
        retry_after = parse_retry_after(headers)
        if retry_after is not None and retry_after > self.max_retry_after:
            # The server asked for a longer pause than we are willing to block for.
            return False
        verdict = (headers or {}).get("x-should-retry")
        if verdict == "true":
            return True
        if verdict == "false":
            return False
        return status in _RETRY_STATUSES or status >= 500

    def backoff(self, attempt: int, rand: float) -> float:
        """Jittered exponential wait before retry number ``attempt + 1`` (``attempt`` counts from 0).

        ``rand`` is a uniform draw in [0, 1); the result lies in
        ``[(1 - jitter) * base, base]`` with ``base = min(initial_delay * 2**attempt, max_delay)``.
        """
        base = min(self.initial_delay * math.pow(2.0, min(attempt, 1000)), self.max_delay)
        return max(0.0, base * (1.0 - self.jitter * rand))

    def delay(self, attempt: int, headers: Mapping[str, str] | None, rand: float) -> float:
        """Seconds to wait before retry ``attempt + 1``: the server's ``Retry-After`` if usable, else backoff."""
        retry_after = parse_retry_after(headers)
        if retry_after is not None and 0 < retry_after <= self.max_retry_after:
            return retry_after
        return self.backoff(attempt, rand)

    def next_delay(self, exc: BaseException, attempt: int, rand: float) -> float | None:
        """Seconds to wait after ``exc`` on try ``attempt`` (0 = first try), or None to give up."""
        if attempt >= self.max_retries:
            return None
        if isinstance(exc, openai.APIStatusError):
            headers = exc.response.headers
            if not self.should_retry_status(exc.status_code, headers):
                return None
            return self.delay(attempt, headers, rand)
        if isinstance(exc, openai.APIConnectionError):  # includes timeouts
            return self.backoff(attempt, rand)
        return None


def _reraise(exc: openai.OpenAIError, attempt: int) -> NoReturn:
    """Raise ``exc`` as its thinkgate error, chained to the openai original."""
    mapped = map_error(exc, retries_taken=attempt)
    if mapped is exc:
        raise exc
    raise mapped from exc


def call_with_retries(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], object] = time.sleep,
    rng: Callable[[], float] = random.random,
) -> T:
    """Call ``fn`` until it succeeds or ``policy`` gives up; errors come out as thinkgate errors.

    ``fn`` must make exactly one HTTP attempt (the openai client it uses must
    have ``max_retries=0``), otherwise retries multiply.
    """
    attempt = 0
    while True:
        try:
            return fn()
        except openai.OpenAIError as exc:
            wait = policy.next_delay(exc, attempt, rng())
            if wait is None:
                _reraise(exc, attempt)
        sleep(wait)
        attempt += 1


async def acall_with_retries(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    rng: Callable[[], float] = random.random,
) -> T:
    """Async twin of :func:`call_with_retries`; ``fn`` returns a fresh awaitable per attempt."""
    attempt = 0
    while True:
        try:
            return await fn()
        except openai.OpenAIError as exc:
            wait = policy.next_delay(exc, attempt, rng())
            if wait is None:
                _reraise(exc, attempt)
        await sleep(wait)
        attempt += 1
