"""The raw-ASGI completions path driven directly: client disconnects and the metrics it keeps.

The upstream is a loopback server that accepts the request and never answers,
standing for a long generation; the client is a hand-written ASGI
receive/send pair, so the disconnect arrives at an exact moment.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from server import create_app
from thinkgate.config import Settings
from thinkgate.gateway import hotpath
from thinkgate.gateway.metrics import Family, Metrics

CHAT = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})


class Hanging:
    """Upstream that reads one request and waits; records when the gateway hangs up."""

    def __init__(self) -> None:
        self.got_request = asyncio.Event()
        self.eof = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def on_conn(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        head = await r.readuntil(b"\r\n\r\n")
        if not head.startswith(b"POST /v1/chat/completions "):  # health probe, /tokenize: an empty answer
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
            w.close()
            return
        self.got_request.set()
        await r.read()  # returns at EOF: the gateway closed the connection
        self.eof.set()
        w.close()


async def _app_with(url: str) -> Any:
    settings = Settings(gateway={"health_interval_s": 60}, router={"default_thinking_budget": 8},
                        backends=[{"name": "b", "url": url, "model": "m"}], ledger_url="sqlite:///:memory:")
    return create_app(settings)


@pytest.mark.parametrize("disconnect_after_s", [0.0, 0.1])
async def test_client_disconnect_aborts_the_upstream_request(disconnect_after_s):
    up = Hanging()
    server = await asyncio.start_server(up.on_conn, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    app = await _app_with(url)
    gone = asyncio.Event()
    sent: list[dict[str, Any]] = []
    body_sent = False

    async def receive() -> dict[str, Any]:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": CHAT, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions",
             "headers": [(b"content-type", b"application/json")]}
    async with app.router.lifespan_context(app):
        task = asyncio.ensure_future(app(scope, receive, send))
        await asyncio.wait_for(up.got_request.wait(), 5)
        # Before the watcher's start (0.0) and after it (0.1): both must abort upstream.
        await asyncio.sleep(disconnect_after_s)
        gone.set()
        await asyncio.wait_for(task, 5)  # the handler ends; it does not raise to the server
        await asyncio.wait_for(up.eof.wait(), 5)  # the backend saw the hang-up (vLLM aborts)
        assert sent == [], sent[-1]  # nothing was sent to a client that is gone
        text = app.gateway.metrics.render().decode()
        assert 'thinkgate_requests_total{backend="",code="499",route="/v1/chat/completions"} 1.0' in text
        assert 'thinkgate_inflight_requests{backend="b"} 1.0' not in text
        assert app.gateway.pool.replicas["b"].outstanding == 0
    server.close()


async def test_an_upstream_cut_mid_stream_counts_as_502_not_as_a_server_error():
    async def cut(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        head = await r.readuntil(b"\r\n\r\n")
        if not head.startswith(b"POST /v1/chat/completions "):
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        else:  # one SSE event of a chunked stream, then the connection drops mid-stream
            w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"1f\r\ndata: {\"id\":\"x\",\"choices\":[]}\n\n\r\n")
            await w.drain()
        w.close()

    server = await asyncio.start_server(cut, "127.0.0.1", 0)
    app = await _app_with(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
    sent: list[dict[str, Any]] = []
    body = orjson.dumps({"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    done = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if not sent and not done.is_set():
            done.set()
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": []}
    async with app.router.lifespan_context(app):
        await asyncio.wait_for(app(scope, receive, send), 5)
        assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200, sent  # the stream had begun
        text = app.gateway.metrics.render().decode()
        assert 'thinkgate_requests_total{backend="",code="502",route="/v1/chat/completions"} 1.0' in text
        assert "server_error" not in text
        assert 'thinkgate_inflight_requests{backend="b"} 0.0' in text
    server.close()


async def test_watcher_starts_only_for_long_requests(monkeypatch):
    started: list[bool] = []
    real = hotpath._DisconnectWatch._start

    def spy(self: Any) -> None:
        started.append(True)
        real(self)

    monkeypatch.setattr(hotpath._DisconnectWatch, "_start", spy)

    async def never() -> dict[str, Any]:
        await asyncio.sleep(3600)
        return {}

    w = hotpath._DisconnectWatch(never, None)
    w.stop()
    await asyncio.sleep(hotpath.WATCH_AFTER_S * 3)
    assert started == [] and not w.fired
    w = hotpath._DisconnectWatch(never, None)
    await asyncio.sleep(hotpath.WATCH_AFTER_S * 3)
    assert started == [True] and w.watcher is not None and not w.watcher.done()
    w.stop()
    await asyncio.sleep(0)
    assert w.watcher.cancelled() and not w.fired


def test_metric_families_render_like_prometheus_client():
    m = Metrics()
    m.requests.labels("/r", "200", "a").inc()
    m.requests.labels("/r", "200", "a").inc(2)
    for v in (0.0005, 0.001, 0.002, 400.0):
        m.latency.labels("/r").observe(v)
    m.inflight.labels("a").inc()
    text = m.render().decode()
    assert 'thinkgate_requests_total{backend="a",code="200",route="/r"} 3.0' in text
    assert 'thinkgate_request_duration_seconds_bucket{le="0.001",route="/r"} 2.0' in text  # le is inclusive
    assert 'thinkgate_request_duration_seconds_bucket{le="0.0025",route="/r"} 3.0' in text
    assert 'thinkgate_request_duration_seconds_bucket{le="300.0",route="/r"} 3.0' in text
    assert 'thinkgate_request_duration_seconds_bucket{le="+Inf",route="/r"} 4.0' in text
    assert 'thinkgate_request_duration_seconds_count{route="/r"} 4.0' in text
    assert 'thinkgate_inflight_requests{backend="a"} 1.0' in text
    assert "# TYPE thinkgate_backend_healthy gauge" in text
    with pytest.raises(ValueError, match="expected labels"):
        m.tokens.labels("only-one")
    with pytest.raises(ValueError, match="kind"):
        Family("x", "doc", (), "summary")
