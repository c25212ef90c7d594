"""One pipelined Redis connection for the ledger's hot-path script calls.

Why not ``redis.asyncio.Redis.evalsha``: per command it takes a connection from
the blocking pool (an ``asyncio.Condition``, a timeout context, a liveness
check) and packs the arguments by repeated byte concatenation, which costs
more client CPU than the Lua script costs Redis. Here every caller writes its
pre-packed commands to one shared connection and a single reader task hands
the replies back in order (Redis answers the commands of one connection in
the order they arrive). Connecting (AUTH, SELECT, TLS, protocol handshake)
and reply parsing (hiredis when installed) are still redis-py's, through its
public ``Connection`` methods.

Failure semantics: a lost connection fails every command in flight with
redis-py's ``ConnectionError``; such a command may or may not have run, as
with any Redis client, and it is never resent (resending a reservation could
apply it twice). The next call connects afresh.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Any

__all__ = ["ScriptPipe", "pack"]

try:  # C packer, shipped with the hiredis parser
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - hiredis is in the server extra
    _hiredis_pack = None


def pack(args: Sequence[str | bytes | int]) -> bytes:
    """One command in the Redis protocol (RESP): ``*n`` then ``$len`` + bytes per argument."""
    if _hiredis_pack is not None:
        return _hiredis_pack(tuple(args))
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%b\r\n" % (len(b), b))
    return b"".join(out)


class _Link:
    """One connection, the futures awaiting its replies in order, and its reader task."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.reader: asyncio.Task[None] | None = None
        self.dead = False


class ScriptPipe:
    """Pipelined commands over one connection made with a redis-py connection pool's settings.

    ``execute`` returns one reply per command, in order: the parsed reply, or a
    ``redis.exceptions.ResponseError`` instance (``NoScriptError`` for NOSCRIPT)
    for an error reply, so one command's failure does not fail the others.
    Connection failures raise ``redis.exceptions.ConnectionError``.
    """

    def __init__(self, pool: Any) -> None:
        from redis.exceptions import ConnectionError as RedisConnectionError

        self._pool = pool  # only its connection class and settings are used
        self._broken = (OSError, RedisConnectionError)  # what a closed socket raises
        self._link: _Link | None = None
        self._connecting: asyncio.Lock | None = None
        self._closing: set[asyncio.Future[Any]] = set()

    async def _usable(self) -> _Link:
        """The current link, reconnecting when it is gone or was closed while idle."""
        link = self._link
        if link is not None and not link.dead and link.conn.is_connected:
            # An idle connection the server closed (restart, idle timeout) shows
            # as readable; drop it now rather than fail the next command with it.
            try:
                # can_read() is redis-py >= 8.0 (the floor in pyproject.toml);
                # only a broken socket is caught, so a missing API fails loudly.
                readable = not link.waiting and await link.conn.can_read()
            except self._broken:  # already broken
                readable = True
            if not readable:
                return link
            self._fail(link, OSError("connection closed while idle"))
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            link = self._link
            if link is None or link.dead or not link.conn.is_connected:
                conn = self._pool.connection_class(**self._pool.connection_kwargs)
                await conn.connect()
                link = self._link = _Link(conn)
            return link

    async def execute(self, commands: Sequence[bytes]) -> list[Any]:
        """Send packed ``commands`` in one write and wait for their replies."""
        link = await self._usable()
        loop = asyncio.get_running_loop()
        futs = [loop.create_future() for _ in commands]
        # No await between queuing the futures and writing the bytes, so the
        # reply order matches the queue order across concurrent callers.
        link.waiting.extend(futs)
        if link.reader is None:
            link.reader = loop.create_task(self._read(link))
        try:
            await link.conn.send_packed_command(b"".join(commands), check_health=False)
        except BaseException as exc:
            self._fail(link, exc)
            for f in futs:  # the error is raised here; mark theirs as seen
                if f.done() and not f.cancelled():
                    f.exception()
            raise
        return [await f for f in futs]

    async def _read(self, link: _Link) -> None:
        """Hand replies to the link's queued futures in order while any are queued."""
        from redis.exceptions import ResponseError

        try:
            while link.waiting:
                try:
                    res: Any = await link.conn.read_response()
                except ResponseError as exc:  # an error reply: the connection is fine
                    res = exc
                fut = link.waiting.popleft()
                if not fut.done():  # done: its caller was cancelled; the reply is dropped
                    fut.set_result(res)
        except BaseException as exc:  # connection lost, or close() cancelled us
            self._fail(link, exc)
        finally:
            link.reader = None

    def _fail(self, link: _Link, exc: BaseException) -> None:
        """Fail every command queued on ``link`` and drop its connection."""
        from redis.exceptions import ConnectionError as RedisConnectionError

        if isinstance(exc, RedisConnectionError):
            err: BaseException = exc
        else:
            err = RedisConnectionError(f"redis connection lost: {exc!r}")
            err.__cause__ = exc
        while link.waiting:
            fut = link.waiting.popleft()
            if not fut.done():
                fut.set_exception(err)
        if link.dead:
            return
        link.dead = True
        if self._link is link:
            self._link = None
        task = asyncio.ensure_future(link.conn.disconnect(nowait=True))
        self._closing.add(task)  # keep a reference until done
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Stop the reader and close the connection."""
        link, self._link = self._link, None
        if link is not None:
            if link.reader is not None:
                link.reader.cancel()
                try:
                    await link.reader
                except BaseException:  # noqa: S110 - cancelled or already failed: nothing left to report
                    pass
            link.dead = True
            await link.conn.disconnect()
        if self._closing:  # disconnects of dropped links; their errors no longer matter
            await asyncio.gather(*self._closing, return_exceptions=True)
