"""Stream wrappers that yield openai chunks and catch the gateway's decision.

The gateway sends ordinary chunks, then one final chunk with ``choices: []``
and a ``thinkgate`` object, then ``[DONE]``. The wrappers yield every chunk
unchanged (the final one too, like OpenAI's ``include_usage`` chunk, so code
written for plain ``openai`` behaves the same) and keep the decision in
``.decision``. ``decision_id`` is known earlier, from the response headers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Any, Generic, TypeVar

import openai

from .errors import map_error
from .types import Decision, DecisionCost, DecisionUsage, Predicted

__all__ = ["AsyncDecisionStream", "DecisionStream", "complete_decision", "decision_from_headers"]

ChunkT = TypeVar("ChunkT")


def decision_from_headers(headers: Any) -> Decision | None:
    """A partial :class:`Decision` from the ``X-Thinkgate-*`` headers, or None if absent.

    Used when the body carries no ``thinkgate`` object; only ``decision_id``,
    ``model``, ``backend``, ``thinking_budget`` (``unlimited`` -> None) and
    ``mode`` are known from headers.
    """
    if headers is None:
        return None
    decision_id = headers.get("x-thinkgate-decision-id")
    model = headers.get("x-thinkgate-model")
    if not decision_id or not model:
        return None
    budget: int | None
    try:
        budget = int(headers.get("x-thinkgate-thinking-budget") or "")
    except ValueError:  # "unlimited", absent or garbled: no known cap
        budget = None
    return Decision(
        decision_id=decision_id,
        model=model,
        backend=headers.get("x-thinkgate-backend") or None,
        thinking_budget=budget,
        mode=headers.get("x-thinkgate-mode") or None,
    )


def complete_decision(value: object) -> Decision | None:
    """The parsed ``thinkgate`` object as a usable :class:`Decision`, or None if it is not one.

    openai's lenient parser leaves sub-objects the gateway omitted (or sent as
    null) as None and ignores ``default_factory``; give each decision its own
    empty ``predicted``/``cost``/``usage`` so attribute access never fails.
    """
    if not isinstance(value, Decision):
        return None
    for name, cls in (("predicted", Predicted), ("cost", DecisionCost), ("usage", DecisionUsage)):
        if not isinstance(getattr(value, name, None), cls):
            setattr(value, name, cls())
    return value


def _chunk_decision(chunk: object) -> Decision | None:
    return complete_decision(getattr(chunk, "thinkgate", None))


class _StreamBase(Generic[ChunkT]):
    decision: Decision | None
    """The gateway's decision; None until the final chunk has been read."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.decision = None

    @property
    def response(self) -> Any:
        """The underlying ``httpx2.Response`` (status, headers)."""
        return self._stream.response

    @property
    def decision_id(self) -> str | None:
        """The decision id: from the final chunk if read, else from ``X-Thinkgate-Decision-Id``."""
        if self.decision is not None:
            return self.decision.decision_id
        return self._stream.response.headers.get("x-thinkgate-decision-id")

    def _observe(self, chunk: ChunkT) -> ChunkT:
        decision = _chunk_decision(chunk)
        if decision is not None:
            self.decision = decision
        return chunk


class DecisionStream(_StreamBase[ChunkT]):
    """Iterator over a streamed completion; ``.decision`` is set once the final chunk is read.

    Use as a context manager (or call ``close()``) when breaking out early, so
    the connection is released.
    """

    def __init__(self, stream: openai.Stream[Any]) -> None:
        super().__init__(stream)
        self._iterator = self._iterate()

    def _iterate(self) -> Iterator[ChunkT]:
        try:
            for chunk in self._stream:
                yield self._observe(chunk)
        except openai.OpenAIError as exc:
            mapped = map_error(exc)
            if mapped is exc:
                raise
            raise mapped from exc

    def __iter__(self) -> Iterator[ChunkT]:
        return self._iterator

    def __next__(self) -> ChunkT:
        return next(self._iterator)

    def until_done(self) -> Decision | None:
        """Read the rest of the stream (discarding it) and return the decision."""
        for _ in self._iterator:
            pass
        return self.decision

    def close(self) -> None:
        """Release the connection without reading the rest."""
        self._stream.close()

    def __enter__(self) -> DecisionStream[ChunkT]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncDecisionStream(_StreamBase[ChunkT]):
    """Async iterator twin of :class:`DecisionStream`."""

    def __init__(self, stream: openai.AsyncStream[Any]) -> None:
        super().__init__(stream)
        self._iterator = self._iterate()

    async def _iterate(self) -> AsyncIterator[ChunkT]:
        try:
            async for chunk in self._stream:
                yield self._observe(chunk)
        except openai.OpenAIError as exc:
            mapped = map_error(exc)
            if mapped is exc:
                raise
            raise mapped from exc

    def __aiter__(self) -> AsyncIterator[ChunkT]:
        return self._iterator

    async def __anext__(self) -> ChunkT:
        return await self._iterator.__anext__()

    async def until_done(self) -> Decision | None:
        """Read the rest of the stream (discarding it) and return the decision."""
        async for _ in self._iterator:
            pass
        return self.decision

    async def close(self) -> None:
        """Release the connection without reading the rest."""
        await self._stream.close()

    async def __aenter__(self) -> AsyncDecisionStream[ChunkT]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
