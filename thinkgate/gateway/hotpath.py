"""The completions hot path as raw ASGI.

``POST /v1/chat/completions`` and ``POST /v1/completions`` bypass FastAPI's
middleware stack, routing and request objects (the app's ``__call__`` hands
them here, see ``server.py``); every other route stays on FastAPI. This keeps
the gateway's added latency under a millisecond (``bench/proxy_overhead.py``).

A watcher task listens for ``http.disconnect`` while the request is served and
cancels the handler when the client goes away; the cancellation closes the
upstream connection, which makes vLLM abort the generation (no orphan work).
The watcher starts only once a request has lasted ``WATCH_AFTER_S``: a task
per request costs more than everything else the gateway does for a short
request, and a disconnect during the first milliseconds is still seen (the
server remembers it) as soon as the watcher starts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from typing import TYPE_CHECKING, Any

import orjson

from router.seam import NoModelAvailable, UnknownModel
from thinkgate.gateway import errors as E
from thinkgate.gateway.http1 import ReadTimeout, Response, UpstreamError
from thinkgate.gateway.metrics import Served
from thinkgate.gateway.pipeline import (
    Outcome,
    cost_usd,
    decision_headers,
    request_view,
    thinkgate_object,
    upstream_body,
    with_guidance,
)
from thinkgate.gateway.proxy import SSERelay, ThinkCounter, Usage, count_thinking, strip_token_ids
from thinkgate.gateway.validate import Endpoint, ParsedRequest, parse_body

if TYPE_CHECKING:
    from router.pool import Replica
    from server import Gateway

HOT_PATHS: dict[str, Endpoint] = {"/v1/chat/completions": "chat", "/v1/completions": "completions"}
WATCH_AFTER_S = 0.02  # requests shorter than this never start a disconnect watcher
_JSON_HDR = (b"content-type", b"application/json")
_SSE_HDRS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]

Send = Any
Receive = Any


def _hdrs(d: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.encode(), v.encode()) for k, v in d.items()]


async def send_json(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [_JSON_HDR, (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


def new_id() -> str:
    """A random 32-hex-digit id (request and decision ids; cheaper than ``uuid4().hex``)."""
    return os.urandom(16).hex()


def _upstream_failed(exc: UpstreamError, replica: Replica) -> E.GatewayError:
    """A broken or stalled upstream body as the client-facing error: 504 on a read timeout, else 502."""
    if isinstance(exc, ReadTimeout):
        return E.BackendTimeout(f"backend {replica.name} timed out")
    return E.BadGateway(f"backend {replica.name}: {exc}")


async def _read_all(resp: Response, replica: Replica) -> bytes:
    """The whole upstream body; a broken or stalled upstream maps to 502/504."""
    try:
        return await resp.read()
    except UpstreamError as exc:
        raise _upstream_failed(exc, replica) from None


async def serve_completion(gw: Gateway, scope: dict[str, Any], receive: Receive, send: Send,
                           endpoint: Endpoint) -> None:
    """Serve one completion request end to end; never raises to the server."""
    t0 = time.perf_counter()
    headers = dict(scope["headers"])
    rid = headers.get(b"x-request-id", b"").decode("latin-1") or new_id()
    route = scope["path"]
    started = [False]
    watch: _DisconnectWatch | None = None

    async def tracked_send(msg: dict[str, Any]) -> None:
        if msg["type"] == "http.response.start":
            started[0] = True
        elif not msg.get("more_body", False) and watch is not None:
            # Response complete: a disconnect from now on must not cancel the
            # settlement and bookkeeping that follow.
            watch.stop()
        await send(msg)

    try:
        raw = await _read_body(receive, headers, gw.settings.gateway.max_body_bytes)
        # From here on the client can only send a disconnect: watch for it.
        watch = _DisconnectWatch(receive, asyncio.current_task())
        await _complete(gw, raw, headers, endpoint, route, rid, t0, tracked_send)
    except E.GatewayError as exc:
        gw.metrics.requests.labels(route, str(exc.status), "").inc()
        gw.metrics.errors.labels(route, str(exc.status), exc.type).inc()
        if not started[0]:
            await send_json(send, exc.status, orjson.dumps(exc.body()), _hdrs({"x-request-id": rid, **exc.headers}))
    except asyncio.CancelledError:
        if watch is None or not watch.fired:
            raise  # server shutdown, not a client disconnect
        gw.metrics.requests.labels(route, "499", "").inc()
    except Exception as exc:  # noqa: BLE001 - the server must stay up
        gw.metrics.errors.labels(route, "500", "server_error").inc()
        if not started[0]:
            err = E.GatewayError(f"internal error: {type(exc).__name__}: {exc}", code="internal_error")
            await send_json(send, 500, orjson.dumps(err.body()), _hdrs({"x-request-id": rid}))
    finally:
        if watch is not None:
            watch.stop()


async def _read_body(receive: Receive, headers: dict[bytes, bytes], limit: int) -> bytes:
    cl = headers.get(b"content-length")
    if cl is not None and cl.isdigit() and int(cl) > limit:
        raise E.BodyTooLarge(f"request body of {int(cl)} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise asyncio.CancelledError
        chunk = msg.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise E.BodyTooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
        if not msg.get("more_body", False):
            return b"".join(chunks) if len(chunks) > 1 else chunk


class _DisconnectWatch:
    """Cancels ``task`` when the client disconnects; starts watching after ``WATCH_AFTER_S``."""

    __slots__ = ("receive", "task", "timer", "watcher")

    def __init__(self, receive: Receive, task: asyncio.Task[Any] | None) -> None:
        self.receive = receive
        self.task = task
        self.watcher: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(WATCH_AFTER_S, self._start)

    def _start(self) -> None:
        self.timer = None
        self.watcher = asyncio.ensure_future(_cancel_on_disconnect(self.receive, self.task))

    def stop(self) -> None:
        """No more watching (response complete or request over); idempotent."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        w = self.watcher
        if w is not None and not w.done():
            w.cancel()

    @property
    def fired(self) -> bool:
        """True when the client's disconnect cancelled the task."""
        w = self.watcher
        return w is not None and w.done() and not w.cancelled()


async def _cancel_on_disconnect(receive: Receive, task: asyncio.Task[Any] | None) -> None:
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            if task is not None:
                task.cancel()
            return


async def _complete(gw: Gateway, raw: bytes, headers: dict[bytes, bytes], endpoint: Endpoint, route: str,
                    rid: str, t0: float, send: Send) -> None:
    auth = headers.get(b"authorization")
    tenant = await gw.admission.authenticate(auth.decode("latin-1") if auth else None)
    req = parse_body(raw, endpoint, gw.settings.gateway.aliases[0])
    snapshot = gw.pool.snapshot()
    view = request_view(req, tenant)
    if gw.predictor is not None and gw.needs_estimates:
        estimates, features = await asyncio.to_thread(_estimate, gw.predictor, req.prompt_text, gw.needs_features)
        view = dataclasses.replace(view, estimates=estimates, features=features)
    price = getattr(gw.admission, "price_lambda", None)
    lam = price(tenant) if price is not None else 0.0
    if lam:
        view = dataclasses.replace(view, price_lambda=lam)
    out = await _decide(gw, req, view, tenant, snapshot)
    settled = False
    client_ids = bool(req.body.get("return_token_ids"))
    try:
        try:
            replica, resp, end_id = await _open(gw, req, out, route, rid)
        except E.NoBackend:
            # Every replica of the chosen model refused the connection (nothing was sent; they are
            # now marked down). A routing alias falls back to the models still up, as the health
            # loop would have made it do, and the new decision's reason says which model was down.
            # A request that named its model gets the 503.
            if req.model not in gw.settings.gateway.aliases or gw.pool.snapshot() == snapshot:
                raise
            await gw.settle(tenant, out)  # nothing was served: release the reservation
            snapshot = gw.pool.snapshot()
            out = await _decide(gw, req, view, tenant, snapshot)
            replica, resp, end_id = await _open(gw, req, out, route, rid)
        out.backend = replica.name
        served = gw.metrics.served(route, replica.name)
        inflight = served.inflight
        inflight.inc()
        completed = False
        try:
            if gw.feedback is not None:
                # Logged once, for the decision that reached a backend, and before any byte of the
                # answer (which carries the decision id) can reach the client and its feedback return.
                gw.feedback.record(out, view, snapshot)
            if resp.status != 200:
                raw_err = await _read_all(resp, replica)
                gw.metrics.requests.labels(route, str(resp.status), replica.name).inc()
                gw.metrics.errors.labels(route, str(resp.status), "upstream").inc()
                # vLLM's 4xx (e.g. a validate_params ValueError) reaches the client unchanged.
                await send_json(send, resp.status, raw_err,
                                _hdrs({"x-request-id": rid, "x-thinkgate-backend": replica.name}))
                completed = True
                return
            if req.stream:
                await _relay_stream(gw, req, out, replica, resp, served, rid, t0, send, end_id, client_ids)
            else:
                await _relay_json(gw, out, replica, resp, served, rid, t0, send, end_id, client_ids)
            completed = True
        finally:
            if completed:
                resp.release()
            else:
                resp.close()  # drop the connection: vLLM aborts the generation
            gw.pool.release(replica)
            inflight.dec()
            if not completed:
                out.extra["aborted"] = True
            await gw.settle(tenant, out)
            settled = True
    finally:
        if not settled:
            await gw.settle(tenant, out)


async def _decide(gw: Gateway, req: ParsedRequest, view: Any, tenant: Any, snapshot: Any) -> Outcome:
    """The policy's decision, admitted (reserved), as an :class:`Outcome`."""
    try:
        decision = gw.policy.decide(view, snapshot)
    except UnknownModel as exc:
        raise E.ModelNotFound(str(exc), param="model") from None
    except NoModelAvailable as exc:
        raise E.NoBackend(str(exc)) from None
    out = Outcome(decision_id=new_id(), decision=decision)
    await gw.admission.admit(tenant, req, out, snapshot)
    out.decision = with_guidance(out.decision, gw.settings.router.guidance_strength,
                                 gw.settings.router.guidance_horizon)
    return out


async def _open(gw: Gateway, req: ParsedRequest, out: Outcome, route: str,
                rid: str) -> tuple[Replica, Response, int | None]:
    """Send the decided request upstream; also returns the model's ``</think>`` id (None: unknown)."""
    end_id = gw.pool.think_end_ids.get(out.decision.model)
    body = orjson.dumps(upstream_body(req, out.decision, want_token_ids=end_id is not None))
    assert gw.upstream is not None
    replica, resp = await gw.upstream.open(out.decision.model, route, body, request_id=rid)
    return replica, resp, end_id


def _estimate(predictor: Any, text: str, with_features: bool) -> tuple[tuple[Any, ...], Any]:
    """Predictor call, run in a worker thread (featurization can take milliseconds)."""
    return tuple(predictor.predict(text)), (predictor.features(text) if with_features else None)


def _account(served: Served, out: Outcome, replica: Replica, usage: Usage | None) -> None:
    out.usage = usage
    if usage is None:
        return
    out.actual_usd = cost_usd(usage, replica.price_input_per_m, replica.price_output_per_m)
    served.prompt.inc(usage.prompt_tokens)
    served.thinking.inc(usage.thinking_tokens or 0)
    served.answer.inc(usage.answer_tokens)


async def _relay_json(gw: Gateway, out: Outcome, replica: Replica, resp: Response, served: Served,
                      rid: str, t0: float, send: Send, end_id: int | None, client_ids: bool) -> None:
    raw = await _read_all(resp, replica)
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise E.BadGateway(f"backend {replica.name} returned invalid JSON") from None
    if not isinstance(obj, dict):
        raise E.BadGateway(f"backend {replica.name} returned JSON that is not an object")
    usage = Usage.parse(obj.get("usage"))
    thinking = count_thinking(obj, end_id)
    if usage is not None and thinking is not None:
        usage.thinking_tokens = thinking
    _account(served, out, replica, usage)
    tg = orjson.dumps(thinkgate_object(out))
    if end_id is not None and not client_ids:
        strip_token_ids(obj)
        obj["thinkgate"] = orjson.Fragment(tg)
        body = orjson.dumps(obj)
    else:
        body = splice_member(raw, obj, b"thinkgate", tg)
    await send_json(send, 200, body, decision_headers(out, rid))
    served.ok.inc()
    served.latency.observe(time.perf_counter() - t0)


async def _relay_stream(gw: Gateway, req: ParsedRequest, out: Outcome, replica: Replica,
                        resp: Response, served: Served, rid: str, t0: float, send: Send,
                        end_id: int | None, client_ids: bool) -> None:
    counter = ThinkCounter(end_id) if end_id is not None else None
    relay = SSERelay(req.include_usage, counter, strip_ids=counter is not None and not client_ids)
    await send({"type": "http.response.start", "status": 200,
                "headers": [*_SSE_HDRS, *decision_headers(out, rid)]})
    first = True
    try:
        while data := await resp.read_chunk():
            chunk = relay.feed(data)
            if chunk:
                if first and relay.saw_token:
                    first = False
                    served.ttft.observe(time.perf_counter() - t0)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except BaseException as exc:
        # Client gone or upstream cut: account for the tokens generated so far.
        _account(served, out, replica, relay.partial_usage())
        if isinstance(exc, UpstreamError):  # counted as 502/504 like a broken whole-body read
            raise _upstream_failed(exc, replica) from None
        raise
    tail = relay.tail()
    _account(served, out, replica, relay.final_usage())
    obj_name = "chat.completion.chunk" if req.endpoint == "chat" else "text_completion"
    final = {"id": relay.last_chunk_id or out.decision_id, "object": obj_name,
             "created": relay.created or int(time.time()), "model": relay.model or out.decision.model,
             "choices": [], "thinkgate": thinkgate_object(out)}
    await send({"type": "http.response.body", "body": tail + b"data: " + orjson.dumps(final) + b"\n\ndata: [DONE]\n\n"})
    served.ok.inc()
    served.latency.observe(time.perf_counter() - t0)


def splice_member(raw: bytes, obj: dict[str, Any], key: bytes, value: bytes) -> bytes:
    """``raw`` (the bytes of JSON object ``obj``) with ``"key": value`` added as its last member.

    Byte surgery instead of re-serialising the upstream body (the body stays
    byte-identical otherwise). Falls back to a re-serialisation when the object
    is empty or already has the key (a duplicate key would be ambiguous).
    """
    end = raw.rstrip().rfind(b"}")
    if not obj or end < 0 or key.decode() in obj:
        obj[key.decode()] = orjson.Fragment(value)
        return orjson.dumps(obj)
    return b"".join((raw[:end], b',"', key, b'":', value, b"}"))
