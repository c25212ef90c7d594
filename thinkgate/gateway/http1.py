"""A lean HTTP/1.1 client for the completions hot path: keep-alive pool, asyncio Protocol, httptools parser.

Why not aiohttp: profiling ``thinkgate serve`` under ``bench/proxy_overhead.py``
(py-spy, this 2-core box) put about 40% of the gateway's on-CPU samples in
aiohttp's client (request building, header merging, connector bookkeeping,
the garbage its per-request objects leave for the collector). The gateway needs
far less: POST a prebuilt body to a known backend, read a status, then either
the whole body or its chunks as they arrive. This module does exactly that on
``asyncio.Protocol`` with ``httptools.HttpResponseParser`` (the llhttp parser
uvicorn uses), which handles content-length, chunked and close-delimited bodies.

Contract:

* :meth:`HTTP1Pool.request` returns a :class:`Response` once the status line
  and headers arrived; the body is read with :meth:`Response.read` (whole) or
  :meth:`Response.read_chunk` (what has arrived, ``b""`` at the end).
* The caller ends every response with :meth:`Response.release` (connection
  back to the pool when the body was read to the end and the server allows
  keep-alive, closed otherwise) or :meth:`Response.close` (always closed: the
  backend sees the disconnect and aborts the generation).
* Errors: :class:`ConnectError` (nothing was sent; safe to try another
  replica), :class:`Disconnected` (``before_response`` tells whether any byte
  of the answer arrived), :class:`ReadTimeout` (no byte for ``read_timeout_s``),
  :class:`ProtocolError` (unparseable answer). All derive from :class:`UpstreamError`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

import httptools

__all__ = ["HTTP1Pool", "Response", "UpstreamError", "ConnectError", "ConnectTimeout", "Disconnected",
           "ReadTimeout", "ProtocolError"]

_PAUSE_AT = 256 * 1024  # buffered body bytes at which reading from the backend pauses (slow client)


class UpstreamError(Exception):
    """Base of the client's errors."""


class ConnectError(UpstreamError):
    """The connection could not be opened (refused, unreachable, name not resolved)."""


class ConnectTimeout(ConnectError):
    """The connection was not established within ``connect_timeout_s``."""


class Disconnected(UpstreamError):
    """The backend closed the connection before the response was complete."""

    def __init__(self, message: str, *, before_response: bool) -> None:
        super().__init__(message)
        self.before_response = before_response  # no byte of the answer arrived: the request may be resent


class ReadTimeout(UpstreamError):
    """No data arrived for ``read_timeout_s`` while waiting for the response."""


class ProtocolError(UpstreamError):
    """The backend's answer is not valid HTTP/1.1."""


def _on_timeout(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(ReadTimeout("no data from the backend within the read timeout"))


class _Conn(asyncio.Protocol):
    """One keep-alive connection; the parser callbacks fill the current response's state."""

    def __init__(self, pool: HTTP1Pool, key: tuple[str, int, bool]) -> None:
        self.pool = pool
        self.key = key
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.lost = False
        self.uses = 0  # requests sent on this connection
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.paused = False
        self.got_bytes = False
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.length_known = False  # content-length or chunked: EOF before the end is an error
        self.whole = False  # the reader wants the whole body: never pause reading
        self.exc: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None

    # -- asyncio.Protocol
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # small requests must not wait for Nagle
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"invalid HTTP response from the backend: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.complete and self.exc is None:
            if self.headers_done and not self.length_known:
                self.complete = True  # a close-delimited body ends at EOF
                self.keep_alive = False
            else:
                self._fail(Disconnected(
                    "backend closed the connection" + (f": {exc}" if exc else ""),
                    before_response=not self.got_bytes))
        self._wake()
        self.pool._forget(self)

    # -- httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        lname = name.lower()
        if lname == b"content-length" or (lname == b"transfer-encoding" and b"chunked" in value.lower()):
            self.length_known = True

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered >= _PAUSE_AT and not self.paused and not self.whole and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()
        self._wake()

    # -- helpers
    def _fail(self, exc: BaseException) -> None:
        if self.exc is None:
            self.exc = exc
        self._wake()

    def _wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def wait(self) -> None:
        """Wait for the next parser event (or the read timeout)."""
        if self.exc is not None:
            raise self.exc
        w = self.waiter = self.loop.create_future()
        timer = self.loop.call_later(self.pool.read_timeout_s, _on_timeout, w)
        try:
            await w
        finally:
            timer.cancel()
            self.waiter = None
        if self.exc is not None:
            raise self.exc

    def close(self) -> None:
        if self.transport is not None and not self.lost:
            self.transport.close()
        self.lost = True


class Response:
    """A response whose status and headers arrived; the body is read on demand (see module doc)."""

    __slots__ = ("_conn", "status", "headers", "_done")

    def __init__(self, conn: _Conn) -> None:
        self._conn = conn
        self.status: int = conn.status
        self.headers: list[tuple[bytes, bytes]] = conn.headers
        self._done = False

    async def read(self) -> bytes:
        """The whole body (waits for the end of the message)."""
        c = self._conn
        c.whole = True
        if c.paused and not c.lost and c.transport is not None:
            c.paused = False
            c.transport.resume_reading()
        while not c.complete:
            await c.wait()
        body = b"".join(c.chunks) if len(c.chunks) != 1 else c.chunks[0]
        c.chunks = []
        c.buffered = 0
        return body

    async def read_chunk(self) -> bytes:
        """Everything that has arrived since the last call; waits when nothing has; ``b""`` at the end."""
        c = self._conn
        while not c.chunks:
            if c.complete:
                return b""
            await c.wait()
        data = b"".join(c.chunks) if len(c.chunks) != 1 else c.chunks[0]
        c.chunks = []
        c.buffered = 0
        if c.paused and not c.lost and c.transport is not None:
            c.paused = False
            c.transport.resume_reading()
        return data

    def release(self) -> None:
        """Back to the pool when the message was read to its end and keep-alive holds; closed otherwise."""
        if not self._done:
            self._done = True
            self._conn.pool._put_back(self._conn)

    def close(self) -> None:
        """Close the connection (the backend sees a disconnect and aborts the request)."""
        if not self._done:
            self._done = True
            self._conn.close()
            self._conn.pool._put_back(self._conn)


class HTTP1Pool:
    """Keep-alive connections to HTTP/1.1 backends, at most ``max_connections`` open in total."""

    def __init__(self, *, connect_timeout_s: float, read_timeout_s: float, max_connections: int,
                 keepalive_s: float = 30.0, ssl_context: ssl.SSLContext | None = None) -> None:
        """``ssl_context`` verifies https backends (default: the system's trusted CAs)."""
        if max_connections < 1:
            raise ValueError(f"max_connections: must be >= 1, got {max_connections}")
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.max_connections = max_connections
        self.keepalive_s = keepalive_s
        self._idle: dict[tuple[str, int, bool], list[_Conn]] = {}  # (host, port, tls) -> idle connections
        self._open = 0  # connections open or being opened (idle ones included)
        self._slot_waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        # base url -> (key, path prefix, Host header line)
        self._bases: dict[str, tuple[tuple[str, int, bool], str, bytes]] = {}
        self._ssl: ssl.SSLContext | None = ssl_context
        self._closed = False

    def _base(self, base_url: str) -> tuple[tuple[str, int, bool], str, bytes]:
        hit = self._bases.get(base_url)
        if hit is None:
            u = urlsplit(base_url)
            if u.scheme not in ("http", "https") or not u.hostname:
                raise ValueError(f"backend url must be http(s)://host[:port][/prefix], got {base_url!r}")
            tls = u.scheme == "https"
            key = (u.hostname, u.port or (443 if tls else 80), tls)
            host = u.netloc.rpartition("@")[2]
            hit = self._bases[base_url] = (key, u.path.rstrip("/"), f"Host: {host}\r\n".encode("latin-1"))
        return hit

    async def request(self, base_url: str, method: str, path: str, body: bytes = b"",
                      headers: tuple[tuple[str, str], ...] = ()) -> Response:
        """Send one request; return once the response's status and headers arrived.

        Raises :class:`ConnectError` when no connection could be opened,
        :class:`Disconnected`, :class:`ReadTimeout` or :class:`ProtocolError`
        while waiting for the headers. On any error or cancellation the
        connection is closed (never reused half-way through a message).
        """
        key, prefix, host_line = self._base(base_url)
        conn = await self._acquire(key)
        conn.uses += 1
        head = [f"{method} {prefix}{path} HTTP/1.1\r\n".encode("latin-1"), host_line]
        for k, v in headers:
            head.append(f"{k}: {v}\r\n".encode("latin-1"))
        head.append(b"Content-Length: %d\r\n\r\n" % len(body))
        head.append(body)
        try:
            assert conn.transport is not None
            conn.transport.write(b"".join(head))
            while not conn.headers_done:
                await conn.wait()
        except BaseException:
            conn.close()
            self._put_back(conn)
            raise
        return Response(conn)

    async def _acquire(self, key: tuple[str, int, bool]) -> _Conn:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            conn = idle.pop()  # most recently used first: the least likely to have been closed by the server
            if not conn.lost and now - conn.idle_since < self.keepalive_s:
                return conn
            conn.close()
            self._open -= 1
            self._wake_slot()
        while self._open >= self.max_connections:
            if not self._evict_idle():
                w = asyncio.get_running_loop().create_future()
                self._slot_waiters.append(w)
                try:
                    await w
                except BaseException:
                    if w.done() and not w.cancelled():
                        self._wake_slot()  # woken, then cancelled before running: pass the free slot on
                    else:
                        with contextlib.suppress(ValueError):
                            self._slot_waiters.remove(w)
                    raise
                idle = self._idle.get(key)
                if idle:  # a connection to this backend came back while we waited
                    return await self._acquire(key)
        self._open += 1
        try:
            return await self._connect(key)
        except BaseException:
            self._open -= 1
            self._wake_slot()
            raise

    async def _connect(self, key: tuple[str, int, bool]) -> _Conn:
        loop = asyncio.get_running_loop()
        tls: ssl.SSLContext | None = None
        if key[2]:
            tls = self._ssl = self._ssl or ssl.create_default_context()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Conn(self, key), key[0], key[1], ssl=tls),
                self.connect_timeout_s)
        except TimeoutError:
            raise ConnectTimeout(f"connect to {key[0]}:{key[1]} timed out after {self.connect_timeout_s}s") from None
        except OSError as exc:
            raise ConnectError(f"cannot connect to {key[0]}:{key[1]}: {exc}") from None
        return conn

    def _evict_idle(self) -> bool:
        """Close one idle connection (any backend) to make room; False when none is idle."""
        for conns in self._idle.values():
            if conns:
                conns.pop(0).close()
                self._open -= 1
                return True
        return False

    def _wake_slot(self) -> None:
        while self._slot_waiters:
            w = self._slot_waiters.popleft()
            if not w.done():
                w.set_result(None)
                return

    def _put_back(self, conn: _Conn) -> None:
        """Return a finished connection: idle when reusable, else closed; frees a slot either way."""
        if conn.uses < 0:
            return  # already returned
        if (not self._closed and not conn.lost and conn.complete and conn.keep_alive and not conn.chunks
                and conn.exc is None):
            conn._reset()
            conn.idle_since = time.monotonic()
            self._idle.setdefault(conn.key, []).append(conn)
            self._wake_slot()
            return
        conn.close()
        conn.uses = -1  # counted out of the pool exactly once
        self._open -= 1
        self._wake_slot()

    def _forget(self, conn: _Conn) -> None:
        """An idle connection the server closed: drop it from the idle list."""
        conns = self._idle.get(conn.key)
        if conns and conn in conns:
            conns.remove(conn)
            conn.uses = -1
            self._open -= 1
            self._wake_slot()

    async def close(self) -> None:
        """Close every idle connection; connections in use close when their response is released."""
        self._closed = True
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
                conn.uses = -1
                self._open -= 1
            conns.clear()
