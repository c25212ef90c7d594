"""``thinkgate.Client``: the openai client plus thinkgate's budget controls.

``client.chat(messages, max_thinking_tokens=...)`` sends one chat completion
through the gateway and returns :class:`thinkgate.types.ChatCompletion` (the
openai object with a typed ``.thinkgate`` decision). Everything openai offers
still works on the same object: ``client.chat.completions.create(...)``,
``client.models.list()``, ... are the wrapped ``openai.OpenAI`` client's
(reachable as ``client.openai``), with openai's own retries and exceptions.
"""

from __future__ import annotations

import copy
import dataclasses
import random
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

import openai

from ._request import (
    build_call_kwargs,
    resolve_api_key,
    resolve_base_url,
    thinkgate_extension,
    validate_feedback,
)
from ._retry import RetryPolicy, call_with_retries
from ._streaming import DecisionStream, complete_decision, decision_from_headers
from .types import BudgetStatus, ChatCompletion, ChatCompletionChunk, Completion, Decision, FeedbackResult

__all__ = ["Client"]

if TYPE_CHECKING:
    import httpx2

T = TypeVar("T")


def openai_client_options(
    *,
    base_url: str | None,
    api_key: str | None,
    retry_policy: RetryPolicy,
    timeout: float | httpx2.Timeout | None,
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    """Constructor arguments for the wrapped ``openai.OpenAI``/``AsyncOpenAI``."""
    options: dict[str, Any] = dict(extra)
    options["base_url"] = resolve_base_url(base_url)
    options["api_key"] = resolve_api_key(api_key)
    # Plain openai calls through client.openai keep openai's retry loop, with our count.
    options["max_retries"] = retry_policy.max_retries
    if timeout is not None:
        options["timeout"] = timeout
    return options


def finish_completion(result: ChatCompletion | Completion, headers: Any) -> Any:
    """Normalise ``thinkgate``; rebuild it from the ``X-Thinkgate-*`` headers when the body had none."""
    decision = complete_decision(result.thinkgate)
    result.thinkgate = decision if decision is not None else decision_from_headers(headers)
    return result


class _ChatNamespace:
    """``client.chat``: call it for a budgeted completion, or use ``.completions`` as in openai."""

    def __init__(self, client: Client) -> None:
        self._client = client

    @property
    def completions(self) -> openai.resources.chat.Completions:
        """openai's ``chat.completions`` resource (plain openai behaviour)."""
        return self._client.openai.chat.completions

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client.openai.chat, name)

    @overload
    def __call__(
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
    def __call__(
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
    ) -> DecisionStream[ChatCompletionChunk]: ...

    def __call__(
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
    ) -> ChatCompletion | DecisionStream[ChatCompletionChunk]:
        """Create a chat completion through the gateway.

        The budget controls travel as the ``thinkgate`` request object (None =
        let the gateway decide). ``openai_kwargs`` are any other arguments of
        openai's ``chat.completions.create`` (``temperature``, ``max_tokens``,
        ``extra_body``, ``timeout``, ...). Returns a ``ChatCompletion`` whose
        ``.thinkgate`` is the decision, or with ``stream=True`` a
        ``DecisionStream`` of chunks whose ``.decision`` is set at the end.
        Raises ``ValueError`` for a bad control before sending, and the
        ``thinkgate.errors`` classes for gateway errors (after retries).
        """
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
        raw = client._send(lambda: client._once.chat.completions.with_raw_response.create(**kwargs))
        if stream:
            return DecisionStream(raw.parse(to=openai.Stream[ChatCompletionChunk]))
        return finish_completion(raw.parse(to=ChatCompletion), raw.headers)


class _CompletionsNamespace:
    """``client.completions``: call it for a budgeted text completion, or ``.create`` as in openai."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client.openai.completions, name)

    @overload
    def __call__(
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
    def __call__(
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
    ) -> DecisionStream[Completion]: ...

    def __call__(
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
    ) -> Completion | DecisionStream[Completion]:
        """Create a text completion (``/v1/completions``); same contract as ``client.chat(...)``."""
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
        raw = client._send(lambda: client._once.completions.with_raw_response.create(**kwargs))
        if stream:
            return DecisionStream(raw.parse(to=openai.Stream[Completion]))
        return finish_completion(raw.parse(to=Completion), raw.headers)


class Client:
    """Synchronous thinkgate client.

    ``base_url`` defaults to ``THINKGATE_BASE_URL`` (else ``http://127.0.0.1:8080/v1``;
    ``/v1`` is appended when missing), ``api_key`` to ``THINKGATE_API_KEY``.
    ``max_retries`` (default 2) or a full ``retry_policy`` sets how failed
    requests are retried (``retry_policy`` wins when both are given).
    ``http_client`` (an ``httpx2.Client``) and any other ``openai.OpenAI``
    argument pass through, e.g. a mock transport in tests.
    """

    chat: _ChatNamespace
    completions: _CompletionsNamespace

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        max_retries: int = 2,
        retry_policy: RetryPolicy | None = None,
        timeout: float | httpx2.Timeout | None = None,
        http_client: httpx2.Client | None = None,
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
        self._bind(openai.OpenAI(**options))
        # Indirections so tests can run the retry loop without sleeping.
        self._sleep = time.sleep
        self._rng = random.random

    def _bind(self, client: openai.OpenAI) -> None:
        self.openai: openai.OpenAI = client
        """The wrapped openai client, for anything the SDK does not wrap."""
        # One HTTP attempt per call: the retry loop is ours (same connection pool).
        self._once = client.with_options(max_retries=0)
        self.chat = _ChatNamespace(self)
        self.completions = _CompletionsNamespace(self)

    def with_options(
        self,
        *,
        max_retries: int | None = None,
        retry_policy: RetryPolicy | None = None,
        **openai_options: Any,
    ) -> Client:
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

    def _send(self, attempt: Callable[[], T]) -> T:
        return call_with_retries(attempt, self.retry_policy, sleep=self._sleep, rng=self._rng)

    def feedback(self, decision_id: str | Decision, score: float) -> FeedbackResult:
        """Report how good the answer of a decision was (``score`` in [0, 1]) to the online router.

        Sending the same decision twice is safe: the gateway answers
        ``duplicate=True``. Raises ``NotFound`` for an unknown or expired id.
        """
        body = validate_feedback(decision_id, score)
        return self._send(lambda: self._once.post("/feedback", cast_to=FeedbackResult, body=body))

    def budget(self) -> BudgetStatus:
        """The calling tenant's spend, reservations and remaining budget in the current window."""
        return self._send(lambda: self._once.get("/budget", cast_to=BudgetStatus))

    def close(self) -> None:
        """Close the connection pool (also done by ``with Client(...)``)."""
        self.openai.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        # Only reached for names Client lacks: delegate to openai (models, embeddings, ...).
        if name in ("openai", "_once") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.openai, name)

    def __repr__(self) -> str:
        return f"thinkgate.Client(base_url={self.base_url!r}, max_retries={self.retry_policy.max_retries})"
