"""The lean upstream HTTP/1.1 client (thinkgate/gateway/http1.py) against raw loopback servers.

Each test's server is a few lines of asyncio that write exact response bytes,
so framing (content-length, chunked, close-delimited), keep-alive reuse,
disconnects and timeouts are exercised on real sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import orjson
import pytest

from router.pool import BackendPool, Replica
from tests.helpers import free_port
from thinkgate.gateway.errors import BackendTimeout, BadGateway, NoBackend
from thinkgate.gateway.hotpath import splice_member
from thinkgate.gateway.http1 import ConnectError, Disconnected, HTTP1Pool, ProtocolError, ReadTimeout
from thinkgate.gateway.proxy import Upstream

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Server"], Awaitable[None]]


class Server:
    """A loopback server that runs ``handler`` per connection and records what it saw."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.eof = asyncio.Event()  # set when a client closed its side
        self.gate = asyncio.Event()  # handlers may wait on it to pace a stream
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        async def on_conn(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.handler(r, w, self)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                w.close()

        self.server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def read_request(self, r: asyncio.StreamReader) -> bytes:
        head = await r.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        req = head + (await r.readexactly(length) if length else b"")
        self.requests.append(req)
        return req


def json_response(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s" % (
        len(body), extra, body)


async def keepalive_json(r: asyncio.StreamReader, w: asyncio.StreamWriter, s: Server) -> None:
    while True:
        await s.read_request(r)
        w.write(json_response(b'{"n":%d}' % len(s.requests)))
        await w.drain()


def pool(**kw: float) -> HTTP1Pool:
    opts = {"connect_timeout_s": 2.0, "read_timeout_s": 5.0, "max_connections": 8, **kw}
    return HTTP1Pool(**opts)  # type: ignore[arg-type]


async def test_content_length_body_and_keepalive_reuse():
    async with Server(keepalive_json) as s:
        p = pool()
        for i in (1, 2, 3):
            resp = await p.request(s.url, "POST", "/v1/x", b'{"a":1}', (("X-Request-Id", "r1"),))
            assert resp.status == 200
            assert (b"content-type", b"application/json") in [(k.lower(), v) for k, v in resp.headers]
            assert await resp.read() == b'{"n":%d}' % i
            resp.release()
        assert s.connections == 1  # one keep-alive connection served all three
        req = s.requests[0]
        assert req.startswith(b"POST /v1/x HTTP/1.1\r\n")
        assert b"\r\nX-Request-Id: r1\r\n" in req and b"\r\nContent-Length: 7\r\n" in req
        assert req.endswith(b'\r\n\r\n{"a":1}')
        await p.close()


async def test_chunked_body_arrives_piece_by_piece():
    async def handler(r, w, s):
        await s.read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        w.write(b"8\r\ndata: a\n\r\n")
        await w.drain()
        await s.gate.wait()  # the second piece only after the client has the first
        w.write(b"8\r\ndata: b\n\r\n0\r\n\r\n")
        await w.drain()
        await r.read()

    async with Server(handler) as s:
        p = pool()
        resp = await p.request(s.url, "POST", "/v1/s", b"{}")
        assert await resp.read_chunk() == b"data: a\n"
        s.gate.set()
        rest = b""
        while chunk := await resp.read_chunk():
            rest += chunk
        assert rest == b"data: b\n"
        assert await resp.read_chunk() == b""
        resp.release()
        assert p._open == 1 and len(p._idle[("127.0.0.1", int(s.url.rsplit(":", 1)[1]), False)]) == 1
        await p.close()


async def test_close_delimited_body_ends_at_eof_and_is_not_reused():
    async def handler(r, w, s):
        await s.read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
        await w.drain()

    async with Server(handler) as s:
        p = pool()
        for _ in range(2):
            resp = await p.request(s.url, "GET", "/", b"")
            assert await resp.read() == b"all of it"
            resp.release()
        assert s.connections == 2
        assert p._open == 0
        await p.close()


async def test_connect_refused_is_a_connect_error():
    p = pool()
    with pytest.raises(ConnectError):
        await p.request(f"http://127.0.0.1:{free_port()}", "POST", "/", b"")
    assert p._open == 0


async def test_disconnect_before_response_and_mid_body():
    async def hangup(r, w, s):
        await s.read_request(r)

    async def half(r, w, s):
        await s.read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        await w.drain()

    p = pool()
    async with Server(hangup) as s:
        with pytest.raises(Disconnected) as info:
            await p.request(s.url, "POST", "/", b"{}")
        assert info.value.before_response
    async with Server(half) as s:
        resp = await p.request(s.url, "POST", "/", b"{}")
        with pytest.raises(Disconnected) as info:
            await resp.read()
        assert not info.value.before_response
        resp.close()
    assert p._open == 0


async def test_read_timeout_and_garbage():
    async def silent(r, w, s):
        await s.read_request(r)
        await r.read()

    async def garbage(r, w, s):
        await s.read_request(r)
        w.write(b"SPDY/9 what\r\n\r\n")
        await w.drain()
        await r.read()

    p = pool(read_timeout_s=0.2)
    async with Server(silent) as s:
        with pytest.raises(ReadTimeout):
            await p.request(s.url, "POST", "/", b"{}")
    async with Server(garbage) as s:
        with pytest.raises(ProtocolError):
            await p.request(s.url, "POST", "/", b"{}")
    assert p._open == 0


async def test_close_mid_stream_reaches_the_server():
    async def endless(r, w, s):
        await s.read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\ntoken \r\n")
        await w.drain()
        await r.read()  # returns at the client's FIN
        s.eof.set()

    async with Server(endless) as s:
        p = pool()
        resp = await p.request(s.url, "POST", "/", b"{}")
        assert await resp.read_chunk() == b"token "
        resp.close()
        await asyncio.wait_for(s.eof.wait(), 5)  # the backend sees the disconnect (vLLM aborts)
        assert p._open == 0
        await p.close()


async def test_cancelled_request_closes_its_connection():
    async def slow(r, w, s):
        await s.read_request(r)
        await r.read()
        s.eof.set()

    async with Server(slow) as s:
        p = pool()
        task = asyncio.ensure_future(p.request(s.url, "POST", "/", b"{}"))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(s.eof.wait(), 5)
        assert p._open == 0


async def test_max_connections_queues_requests():
    async def paced(r, w, s):
        while True:
            await s.read_request(r)
            await asyncio.sleep(0.05)
            w.write(json_response(b"{}"))
            await w.drain()

    async with Server(paced) as s:
        p = pool(max_connections=1)

        async def one() -> bytes:
            resp = await p.request(s.url, "POST", "/", b"{}")
            body = await resp.read()
            resp.release()
            return body

        assert await asyncio.gather(*(one() for _ in range(4))) == [b"{}"] * 4
        assert s.connections == 1 and p._open == 1
        await p.close()


async def test_server_closed_idle_connection_is_replaced():
    async def one_shot(r, w, s):
        await s.read_request(r)
        w.write(json_response(b"{}"))  # keep-alive offered, then closed anyway
        await w.drain()

    async with Server(one_shot) as s:
        p = pool()
        for _ in range(2):
            resp = await p.request(s.url, "POST", "/", b"{}")
            assert await resp.read() == b"{}"
            resp.release()
            await asyncio.sleep(0.05)  # the server's FIN arrives while the connection idles
        assert s.connections == 2 and p._open == 0
        await p.close()


def _bp(*urls: str) -> BackendPool:
    return BackendPool([Replica(name=f"b{i}", url=u, model="m", price_input_per_m=0.0, price_output_per_m=0.0)
                        for i, u in enumerate(urls)])


async def test_upstream_fails_over_on_5xx_and_dead_backends():
    async def five_hundred(r, w, s):
        while True:
            await s.read_request(r)
            body = b'{"error":"boom"}'
            w.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await w.drain()

    async with Server(five_hundred) as bad, Server(keepalive_json) as good:
        dead = f"http://127.0.0.1:{free_port()}"
        bp = _bp(dead, bad.url, good.url)
        up = Upstream(pool(), bp)
        replica, resp = await up.open("m", "/v1/chat/completions", b"{}", request_id="rid-7")
        assert replica.name == "b2" and resp.status == 200
        assert await resp.read() == b'{"n":1}'
        resp.release()
        bp.release(replica)
        assert not bp.replicas["b0"].healthy  # connect error marks the replica down
        assert all(r.outstanding == 0 for r in bp.replicas.values())
        assert b"X-Request-Id: rid-7" in bad.requests[0]

        up2 = Upstream(pool(), _bp(bad.url))
        with pytest.raises(BadGateway, match="503"):
            await up2.open("m", "/v1/chat/completions", b"{}", request_id="r")
    with pytest.raises(NoBackend):
        await Upstream(pool(), _bp(f"http://127.0.0.1:{free_port()}")).open("m", "/", b"{}", request_id="r")


async def test_upstream_read_timeout_is_504():
    async def silent(r, w, s):
        await s.read_request(r)
        await r.read()

    async with Server(silent) as s:
        bp = _bp(s.url)
        with pytest.raises(BackendTimeout):
            await Upstream(pool(read_timeout_s=0.2), bp).open("m", "/", b"{}", request_id="r")
        assert bp.replicas["b0"].outstanding == 0


def test_splice_member_keeps_upstream_bytes_and_falls_back():
    raw = b'{"id":"x","choices":[{"text":"}"}],"usage":{"prompt_tokens":3}}\n'
    out = splice_member(raw, orjson.loads(raw), b"thinkgate", b'{"model":"m"}')
    assert out.startswith(raw.rstrip()[:-1])
    assert orjson.loads(out) == {**orjson.loads(raw), "thinkgate": {"model": "m"}}
    assert orjson.loads(splice_member(b"{}", {}, b"thinkgate", b"1")) == {"thinkgate": 1}
    dup = b'{"thinkgate":0,"a":1}'
    assert orjson.loads(splice_member(dup, orjson.loads(dup), b"thinkgate", b"2")) == {"thinkgate": 2, "a": 1}


async def test_upstream_resends_once_after_a_disconnect_before_any_answer():
    async def flaky(r, w, s):
        await s.read_request(r)
        if s.connections == 1:
            return  # hang up on the first connection without answering (keep-alive race)
        w.write(json_response(b"{}"))
        await w.drain()

    async with Server(flaky) as s:
        bp = _bp(s.url)
        replica, resp = await Upstream(pool(), bp).open("m", "/", b"{}", request_id="r")
        assert await resp.read() == b"{}" and s.connections == 2 and len(s.requests) == 2
        resp.release()
        bp.release(replica)
        assert bp.replicas["b0"].healthy


async def test_large_body_read_whole_and_url_path_prefix():
    big = b"x" * (3 * 1024 * 1024)  # well past the pause threshold: read() must not stall

    async def handler(r, w, s):
        await s.read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(big))
        for i in range(0, len(big), 65536):
            w.write(big[i:i + 65536])
            await w.drain()
        await r.read()

    async with Server(handler) as s:
        p = pool(read_timeout_s=5.0)
        resp = await p.request(s.url + "/prefix/", "POST", "/v1/x", b"{}")
        assert await asyncio.wait_for(resp.read(), 10) == big
        resp.release()
        assert s.requests[0].startswith(b"POST /prefix/v1/x HTTP/1.1\r\n")
        await p.close()


async def test_slow_reader_pauses_and_resumes_a_large_stream():
    piece = b"y" * 65536
    n = 64  # 4 MiB through a reader that takes its time

    async def handler(r, w, s):
        await s.read_request(r)
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(n):
            w.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await w.drain()
        w.write(b"0\r\n\r\n")
        await w.drain()
        await r.read()

    async with Server(handler) as s:
        p = pool()
        resp = await p.request(s.url, "POST", "/", b"{}")
        total, paused_seen = 0, False
        while chunk := await asyncio.wait_for(resp.read_chunk(), 10):
            total += len(chunk)
            await asyncio.sleep(0.01)
            paused_seen = paused_seen or resp._conn.paused  # read_chunk() resumes it again
        assert total == n * len(piece)
        resp.release()
        await p.close()
        assert paused_seen  # flow control engaged, and reading resumed every time


def test_backend_url_must_be_http():
    with pytest.raises(ValueError, match="http"):
        pool()._base("ftp://example.com")


async def test_a_waiter_cancelled_after_its_wake_up_passes_the_slot_on():
    async with Server(keepalive_json) as s:
        p = pool(max_connections=1)
        held = await p.request(s.url, "POST", "/", b"{}")  # the only slot, body unread

        async def one() -> bytes:
            resp = await p.request(s.url, "POST", "/", b"{}")
            body = await resp.read()
            resp.release()
            return body

        b, c = asyncio.create_task(one()), asyncio.create_task(one())
        await asyncio.sleep(0.05)  # both wait for the slot
        held.close()  # frees the slot and wakes b ...
        b.cancel()  # ... which is cancelled before it runs
        assert await asyncio.wait_for(c, 2) == b'{"n":2}'
        with pytest.raises(asyncio.CancelledError):
            await b
        await p.close()
