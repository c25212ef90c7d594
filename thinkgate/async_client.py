"""``thinkgate.AsyncClient``: the asyncio twin of :class:`thinkgate.Client`.

Same arguments, same results, awaited; streams are async iterators
(``async for chunk in await client.chat(..., stream=True)``).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import inspect
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

import openai

from ._request import build_call_kwargs, thinkgate_extension, validate_feedback
from ._retry import RetryPolicy, acall_with_retries
from ._streaming import AsyncDecisionStream
from .client import finish_completion, openai_client_options
from .types import BudgetStatus, ChatCompletion, ChatCompletionChunk, Completion, Decision, FeedbackResult

__all__ = ["AsyncClient"]

if TYPE_CHECKING:
    import httpx2

T = TypeVar("T")


async def _parse(raw: Any, to: Any) -> Any:
    # openai announces that the async raw response's parse() will become a
    # coroutine in a later major version; accept both.
    parsed = raw.parse(to=to)
    return await parsed if inspect.isawaitable(parsed) else parsed


class _AsyncChatNamespace:
    """``client.chat``: await it for a budgeted completion, or use ``.completions`` as in openai."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    @property
    def completions(self) -> openai.resources.chat.AsyncCompletions:
        """openai's ``chat.completions`` resource (plain openai behaviour)."""
        return self._client.openai.chat.completions

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client.openai.chat, name)

    @overload
    async def __call__(
        self,
        messages: Iterable[Any],
        *,
        model: str = "auto",
        max_thinking_tokens: int | None = None,
        effort: float | Literal["auto"] | None = None,
        max_cost_usd: float | None = None,
        min_quality: float | None = None,
        allow_skip: bool | None = None,
        stream: Literal[False] = False,
        **openai_kwargs: Any,
    ) -> ChatCompletion: ...

    @overload
    async def __call__(
        self,
        messages: Iterable[Any],
        *,
        model: str = "auto",
        max_thinking_tokens: int | None = None,
        effort: float | Literal["auto"] | None = None,
        max_cost_usd: float | None = None,
        min_quality: float | None = None,
        allow_skip: bool | None = None,
        stream: Literal[True],
        **openai_kwargs: Any,
    ) -> AsyncDecisionStream[ChatCompletionChunk]: ...

    async def __call__(
        self,
        messages: Iterable[Any],
        *,
        model: str = "auto",
        max_thinking_tokens: int | None = None,
        effort: float | Literal["auto"] | None = None,
        max_cost_usd: float | None = None,
        min_quality: float | None = None,
        allow_skip: bool | None = None,
        stream: bool = False,
        **openai_kwargs: Any,
    ) -> ChatCompletion | AsyncDecisionStream[ChatCompletionChunk]:
        """Create a chat completion through the gateway; see :meth:`thinkgate.Client.chat`."""
        if isinstance(messages, str | bytes | Mapping):
            raise ValueError(
                "messages: must be a list of messages such as [{'role': 'user', 'content': '...'}]"
            )
        messages = list(messages)
        if not messages:
            raise ValueError("messages: must contain at least one message")
        ext = thinkgate_extension(
            max_thinking_tokens=max_thinking_tokens,
            effort=effort,
            max_cost_usd=max_cost_usd,
            min_quality=min_quality,
            allow_skip=allow_skip,
        )
        kwargs = build_call_kwargs(model=model, extension=ext, stream=stream, openai_kwargs=openai_kwargs)
        kwargs["messages"] = messages
        client = self._client
        raw = await client._send(lambda: client._once.chat.completions.with_raw_response.create(**kwargs))
        if stream:
            return AsyncDecisionStream(await _parse(raw, openai.AsyncStream[ChatCompletionChunk]))
        return finish_completion(await _parse(raw, ChatCompletion), raw.headers)


class _AsyncCompletionsNamespace:
    """``client.completions``: await it for a budgeted text completion, or ``.create`` as in openai."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client.openai.completions, name)

    @overload
    async def __call__(
        self,
        prompt: str | list[str] | list[int] | list[list[int]],
        *,
        model: str = "auto",
        max_thinking_tokens: int | None = None,
        effort: float | Literal["auto"] | None = None,
        max_cost_usd: float | None = None,
        min_quality: float | None = None,
        allow_skip: bool | None = None,
        stream: Literal[False] = False,
        **openai_kwargs: Any,
    ) -> Completion: ...

    @overload
    async def __call__(
        self,
        prompt: str | list[str] | list[int] | list[list[int]],
        *,
        model: str = "auto",
        max_thinking_tokens: int | None = None,
        effort: float | Literal["auto"] | None = None,
        max_cost_usd: float | None = None,
        min_quality: float | None = None,
        allow_skip: bool | None = None,
        stream: Literal[True],
        **openai_kwargs: Any,
    ) -> AsyncDecisionStream[Completion]: ...

    async def __call__(
        self,
        prompt: str | list[str] | list[int] | list[list[int]],
        *,
        model: str = "auto",
        max_thinking_tokens: int | None = None,
        effort: float | Literal["auto"] | None = None,
        max_cost_usd: float | None = None,
        min_quality: float | None = None,
        allow_skip: bool | None = None,
        stream: bool = False,
        **openai_kwargs: Any,
    ) -> Completion | AsyncDecisionStream[Completion]:
        """Create a text completion (``/v1/completions``); see :meth:`thinkgate.Client.chat`."""
        ext = thinkgate_extension(
            max_thinking_tokens=max_thinking_tokens,
            effort=effort,
            max_cost_usd=max_cost_usd,
            min_quality=min_quality,
            allow_skip=allow_skip,
        )
        kwargs = build_call_kwargs(model=model, extension=ext, stream=stream, openai_kwargs=openai_kwargs)
        kwargs["prompt"] = prompt
        client = self._client
        raw = await client._send(lambda: client._once.completions.with_raw_response.create(**kwargs))
        if stream:
            return AsyncDecisionStream(await _parse(raw, openai.AsyncStream[Completion]))
        return finish_completion(await _parse(raw, Completion), raw.headers)


class AsyncClient:
    """Asynchronous thinkgate client; constructor as :class:`thinkgate.Client` (``http_client``: ``httpx2.AsyncClient``)."""

    chat: _AsyncChatNamespace
    completions: _AsyncCompletionsNamespace

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        max_retries: int = 2,
        retry_policy: RetryPolicy | None = None,
        timeout: float | httpx2.Timeout | None = None,
        http_client: httpx2.AsyncClient | None = None,
        **openai_options: Any,
    ) -> None:
        self.retry_policy = retry_policy if retry_policy is not None else RetryPolicy(max_retries=max_retries)
        options = openai_client_options(
            base_url=base_url,
            api_key=api_key,
            retry_policy=self.retry_policy,
            timeout=timeout,
            extra=openai_options,
        )
        if http_client is not None:
            options["http_client"] = http_client
        self._bind(openai.AsyncOpenAI(**options))
        # Indirections so tests can run the retry loop without sleeping.
        self._sleep = asyncio.sleep
        self._rng = random.random

    def _bind(self, client: openai.AsyncOpenAI) -> None:
        self.openai: openai.AsyncOpenAI = client
        """The wrapped openai client, for anything the SDK does not wrap."""
        # One HTTP attempt per call: the retry loop is ours (same connection pool).
        self._once = client.with_options(max_retries=0)
        self.chat = _AsyncChatNamespace(self)
        self.completions = _AsyncCompletionsNamespace(self)

    def with_options(
        self,
        *,
        max_retries: int | None = None,
        retry_policy: RetryPolicy | None = None,
        **openai_options: Any,
    ) -> AsyncClient:
        """A copy with some options changed (e.g. ``timeout=5``), sharing the connection pool.

        Any ``openai`` client option may be given; ``max_retries`` replaces the
        retry count of the current policy, ``retry_policy`` the whole policy.
        """
        policy = retry_policy or self.retry_policy
        if retry_policy is None and max_retries is not None:
            policy = dataclasses.replace(self.retry_policy, max_retries=max_retries)
        new = copy.copy(self)
        new.retry_policy = policy
        new._bind(self.openai.with_options(max_retries=policy.max_retries, **openai_options))
        return new

    @property
    def base_url(self) -> str:
        """The gateway's API root, e.g. ``http://127.0.0.1:8080/v1/``."""
        return str(self.openai.base_url)

    async def _send(self, attempt: Callable[[], Awaitable[T]]) -> T:
        return await acall_with_retries(attempt, self.retry_policy, sleep=self._sleep, rng=self._rng)

    async def feedback(self, decision_id: str | Decision, score: float) -> FeedbackResult:
        """Report an answer's quality (``score`` in [0, 1]); see :meth:`thinkgate.Client.feedback`."""
        body = validate_feedback(decision_id, score)
        return await self._send(lambda: self._once.post("/feedback", cast_to=FeedbackResult, body=body))

    async def budget(self) -> BudgetStatus:
        """The calling tenant's spend, reservations and remaining budget in the current window."""
        return await self._send(lambda: self._once.get("/budget", cast_to=BudgetStatus))

    async def close(self) -> None:
        """Close the connection pool (also done by ``async with AsyncClient(...)``)."""
        await self.openai.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __getattr__(self, name: str) -> Any:
        if name in ("openai", "_once") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.openai, name)

    def __repr__(self) -> str:
        return (
            f"thinkgate.AsyncClient(base_url={self.base_url!r}, max_retries={self.retry_policy.max_retries})"
        )
