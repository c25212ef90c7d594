"""Upstream calls to vLLM: failover before the first byte, SSE pass-through, usage capture.

Streaming is forwarded event by event as bytes arrive; the gateway parses only
the events it must (the usage chunk, ``[DONE]``) and never buffers a whole
response. Failover to another replica happens only while nothing has been sent
to the client: on a connect error or a 5xx status.

The upstream client is one pooled :class:`~thinkgate.gateway.http1.HTTP1Pool`
per app (a lean keep-alive HTTP/1.1 client on the httptools parser). httpx was
measured here at about 1.0-1.2 ms of CPU per request and aiohttp's client at
roughly 0.3 ms (py-spy under ``bench/proxy_overhead.py``); the lean client
costs a fraction of that, which is what keeps the gateway's overhead near the
backend's own per-request cost.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from router.pool import BackendPool, Replica
from thinkgate.gateway.errors import BackendTimeout, BadGateway, NoBackend
from thinkgate.gateway.http1 import (
    ConnectError,
    Disconnected,
    HTTP1Pool,
    ProtocolError,
    ReadTimeout,
    Response,
    UpstreamError,
)


@dataclass(slots=True)
class Usage:
    """Token usage of one completion, thinking split from answer."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    thinking_tokens: int | None = None  # None: backend did not report a split

    @property
    def answer_tokens(self) -> int:
        return self.completion_tokens - (self.thinking_tokens or 0)

    @classmethod
    def parse(cls, usage: Any) -> Usage | None:
        if not isinstance(usage, dict):
            return None
        details = usage.get("completion_tokens_details") or {}
        reasoning = details.get("reasoning_tokens") if isinstance(details, dict) else None
        return cls(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            thinking_tokens=int(reasoning) if isinstance(reasoning, int) else None,
        )


def make_pool(connect_timeout_s: float, read_timeout_s: float, max_connections: int) -> HTTP1Pool:
    """The app's one pooled upstream client (keep-alive; bodies pass through undecoded)."""
    return HTTP1Pool(connect_timeout_s=connect_timeout_s, read_timeout_s=read_timeout_s,
                     max_connections=max_connections)


class Upstream:
    """Sends one request to a healthy replica of a model, failing over on connect errors and 5xx."""

    def __init__(self, client: HTTP1Pool, pool: BackendPool) -> None:
        self.client = client
        self.pool = pool

    async def open(self, model: str, path: str, body: bytes, *, request_id: str) -> tuple[Replica, Response]:
        """Return the replica that answered and its response (status < 500), body unread.

        The caller owns the response (``close``/``release`` it) and must call
        ``pool.release(replica)`` when done. Raises :class:`NoBackend` when no
        replica is healthy or reachable, :class:`BadGateway` when every replica
        answered 5xx or broke the protocol, :class:`BackendTimeout` on a read timeout.
        """
        replicas = self.pool.order(model)
        if not replicas:
            raise NoBackend(f"no healthy backend for model {model!r}")
        last_5xx: str | None = None
        for replica in replicas:
            headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),
                                                    ("X-Request-Id", request_id))
            if replica.api_key:
                headers += (("Authorization", f"Bearer {replica.api_key}"),)
            self.pool.acquire(replica)
            resp = None
            for attempt in (0, 1):
                try:
                    resp = await self.client.request(replica.url, "POST", path, body, headers)
                    break
                except Disconnected as exc:
                    # A pooled keep-alive connection closed by the server as the
                    # request went out: one retry on a fresh connection. A
                    # disconnect after part of the answer arrived is not retried.
                    if not exc.before_response:
                        last_5xx = f"backend {replica.name} closed the connection mid-answer: {exc}"
                        break
                    if attempt:
                        break
                except ConnectError as exc:
                    self.pool.mark(replica, False, f"{type(exc).__name__}: {exc}")
                    break
                except ProtocolError as exc:
                    last_5xx = f"backend {replica.name}: {exc}"
                    break
                except ReadTimeout:
                    self.pool.release(replica)
                    raise BackendTimeout(f"backend {replica.name} timed out") from None
                except BaseException:
                    self.pool.release(replica)
                    raise
            if resp is None:
                self.pool.release(replica)
                continue
            if resp.status >= 500:
                try:
                    detail = (await resp.read())[:500].decode("utf-8", "replace")
                except UpstreamError:
                    detail = ""
                finally:
                    resp.release()
                    self.pool.release(replica)
                last_5xx = f"backend {replica.name} answered {resp.status}: {detail}"
                continue
            return replica, resp
        if last_5xx is not None:
            raise BadGateway(last_5xx)
        raise NoBackend(f"no backend for model {model!r} could be reached")


_DONE = b"data: [DONE]"
_IDS_RE = re.compile(rb',"(?:prompt_)?token_ids":(?:\[[0-9, ]*\]|null)')
_CHOICE_IDS_RE = re.compile(rb'"token_ids":\[([0-9, ]*)\]')
_PROMPT_IDS_RE = re.compile(rb'"prompt_token_ids":\[([0-9, ]*)\]')


class ThinkCounter:
    """Counts thinking tokens from output token ids.

    vLLM's ``reasoning_tokens`` usage field counts only tokens between a
    ``<think>`` and ``</think>`` *in the output*; templates that open ``<think>``
    in the prompt (DeepSeek-R1, Qwen3) get 0. The gateway therefore asks for
    ``return_token_ids`` and counts every output token up to and including the
    first end marker as thinking (the marker counts, as for vLLM's budget).
    """

    __slots__ = ("end_id", "before_end", "seen_end", "saw_reasoning", "total", "prompt")

    def __init__(self, end_id: int) -> None:
        self.end_id = end_id
        self.before_end = 0
        self.seen_end = False
        self.saw_reasoning = False
        self.total = 0  # output tokens seen, for the accounting of aborted streams
        self.prompt = 0

    def add(self, ids: list[int]) -> None:
        self.total += len(ids)
        if self.seen_end:
            return
        try:
            self.before_end += ids.index(self.end_id) + 1
            self.seen_end = True
        except ValueError:
            self.before_end += len(ids)

    @property
    def thinking(self) -> int:
        return self.before_end if self.saw_reasoning or self.seen_end else 0


def count_thinking(obj: dict[str, Any], end_id: int | None) -> int | None:
    """Thinking tokens of a non-stream response from its choices' ``token_ids`` (None: unknown)."""
    if end_id is None:
        return None
    total = 0
    for choice in obj.get("choices") or ():
        ids = choice.get("token_ids")
        if not isinstance(ids, list):
            return None
        c = ThinkCounter(end_id)
        c.add(ids)
        msg = choice.get("message")
        c.saw_reasoning = bool(msg.get("reasoning") or msg.get("reasoning_content")) if isinstance(msg, dict) else True
        total += c.thinking
    return total


def strip_token_ids(obj: dict[str, Any]) -> None:
    """Remove the token ids the gateway asked for on the client's behalf."""
    obj.pop("prompt_token_ids", None)
    for choice in obj.get("choices") or ():
        choice.pop("token_ids", None)
        choice.pop("prompt_token_ids", None)


class SSERelay:
    """Splits an upstream SSE byte stream into events and relays them.

    Captures the usage chunk (asked for upstream with
    ``stream_options.include_usage``) and drops it again when the client did not
    ask for usage; drops the upstream ``[DONE]`` so the gateway can append its
    own final ``thinkgate`` chunk first. With a ``counter``, counts thinking
    tokens from the per-chunk ``token_ids`` and strips them (byte edits, no
    re-serialisation) unless the client asked for them.
    """

    __slots__ = ("include_usage", "usage", "buf", "last_chunk_id", "created", "model", "saw_token", "counter",
                 "strip_ids")

    def __init__(self, include_usage: bool, counter: ThinkCounter | None = None, strip_ids: bool = False) -> None:
        self.include_usage = include_usage
        self.usage: Usage | None = None
        self.buf = b""
        self.last_chunk_id: str | None = None
        self.created: int | None = None
        self.model: str | None = None
        self.saw_token = False
        self.counter = counter
        self.strip_ids = strip_ids

    def feed(self, data: bytes) -> bytes:
        """Consume raw bytes; return the complete events to forward now (maybe empty)."""
        buf = self.buf + data
        cut = buf.rfind(b"\n\n")
        if cut < 0:
            self.buf = buf
            return b""
        complete, self.buf = buf[: cut + 2], buf[cut + 2 :]
        if self.last_chunk_id is None:
            self._remember_ids(complete)
        if not self.saw_token and (b'"delta"' in complete or b'"text"' in complete):
            self.saw_token = True
        counter = self.counter
        if counter is not None:
            if not counter.saw_reasoning and b'"reasoning' in complete:
                counter.saw_reasoning = True
            if not counter.prompt and b'"prompt_token_ids":[' in complete:
                m = _PROMPT_IDS_RE.search(complete)
                counter.prompt = m.group(1).count(b",") + 1 if m and m.group(1).strip() else 0
            if b'"token_ids"' in complete:
                for m in _CHOICE_IDS_RE.finditer(complete):
                    counter.add([int(x) for x in m.group(1).split(b",") if x.strip()])
            if self.strip_ids and b"token_ids" in complete:
                complete = _IDS_RE.sub(b"", complete)
        if b'"usage"' not in complete and _DONE not in complete:
            return complete  # fast path: nothing to inspect
        out = []
        for event in complete.split(b"\n\n"):
            if not event:
                continue
            if event.startswith(_DONE):
                continue
            if b'"usage"' in event:
                if self._take_usage(event) and not self.include_usage:
                    continue
            out.append(event)
            out.append(b"\n\n")
        return b"".join(out)

    def _remember_ids(self, complete: bytes) -> None:
        first = complete.split(b"\n\n", 1)[0]
        if first.startswith(b"data: {"):
            try:
                obj = orjson.loads(first[6:])
            except orjson.JSONDecodeError:
                return
            self.last_chunk_id = obj.get("id")
            self.created = obj.get("created")
            self.model = obj.get("model")

    def _take_usage(self, event: bytes) -> bool:
        """Parse a usage-bearing event; True when it is the usage-only chunk."""
        if not event.startswith(b"data: {"):
            return False
        try:
            obj = orjson.loads(event[6:])
        except orjson.JSONDecodeError:
            return False
        usage = Usage.parse(obj.get("usage"))
        if usage is not None:
            self.usage = usage
        return usage is not None and not obj.get("choices")

    def final_usage(self) -> Usage | None:
        """The usage with thinking tokens from the counter when it saw token ids."""
        if self.usage is not None and self.counter is not None and (self.counter.before_end or self.counter.seen_end):
            self.usage.thinking_tokens = self.counter.thinking
        return self.usage

    def partial_usage(self) -> Usage | None:
        """What is known of an unfinished stream (client gone, upstream cut): tokens seen so far."""
        c = self.counter
        if c is None or not c.total:
            return self.usage
        return Usage(prompt_tokens=c.prompt, completion_tokens=c.total, thinking_tokens=c.thinking)

    def tail(self) -> bytes:
        """Whatever incomplete event is left when the upstream closes."""
        rest, self.buf = self.buf, b""
        return rest if rest.strip() and not rest.startswith(_DONE) else b""
