"""One worker thread per SQLite store that runs ledger operations with group commit.

Async callers enqueue ``fn(conn, *args)``; the thread drains whatever is queued
(up to ``max_batch``), runs the batch inside ONE transaction -- ``BEGIN
IMMEDIATE`` when any operation writes -- with a SAVEPOINT around each operation
so that one failing operation rolls back only its own changes, then commits
once and resolves every caller's future with one wake-up of the event loop.

Operations still apply one after another under SQLite's write lock, so the
result is the same as running each in its own transaction; batching only
shares the commit and the thread hand-off among requests that arrived together
(one request at a time degenerates to one transaction per operation).
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["SQLiteWorker"]

_STOP = object()


class SQLiteWorker:
    """Owns the connection; ``connect`` runs on the worker thread (SQLite objects stay on it)."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], *, max_batch: int = 256) -> None:
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._max_batch = max_batch
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._main, args=(connect,), name="thinkgate-ledger", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...], *, write: bool) -> asyncio.Future[Any]:
        """Queue ``fn(conn, *args)``; the returned future resolves on the caller's loop."""
        if self._closed:
            raise RuntimeError("ledger: store is closed")
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._q.put((fn, args, write, loop, fut))
        return fut

    def run_sync(self, fn: Callable[..., Any], args: tuple[Any, ...], *, write: bool) -> Any:
        """Run one operation from a thread without an event loop (constructors, tools)."""
        done = threading.Event()
        box: list[Any] = []

        class _Fut:
            def cancelled(self) -> bool:
                return False

            def set_result(self, v: Any) -> None:
                box.append((True, v))
                done.set()

            def set_exception(self, e: BaseException) -> None:
                box.append((False, e))
                done.set()

        self._q.put((fn, args, write, None, _Fut()))
        done.wait()
        ok, val = box[0]
        if not ok:
            raise val
        return val

    def close(self) -> None:
        """Stop the thread after the queued operations ran; closes the connection. Idempotent."""
        if not self._closed:
            self._closed = True
            self._q.put(_STOP)
            self._thread.join()

    def _main(self, connect: Callable[[], sqlite3.Connection]) -> None:
        try:
            conn = connect()
        except BaseException as exc:  # surfaced to the constructor
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            stop = False
            while not stop:
                item = self._q.get()
                if item is _STOP:
                    break
                batch = [item]
                while len(batch) < self._max_batch:
                    try:
                        nxt = self._q.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is _STOP:
                        stop = True
                        break
                    batch.append(nxt)
                self._run_batch(conn, batch)
        finally:
            conn.close()

    def _run_batch(self, conn: sqlite3.Connection, batch: list[Any]) -> None:
        results: list[tuple[bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE" if any(item[2] for item in batch) else "BEGIN")
            for fn, args, *_ in batch:
                conn.execute("SAVEPOINT op")
                try:
                    results.append((True, fn(conn, *args)))
                except Exception as exc:
                    conn.execute("ROLLBACK TO op")
                    results.append((False, exc))
                conn.execute("RELEASE op")
            conn.execute("COMMIT")
        except Exception as exc:  # BEGIN timed out or COMMIT failed: nothing of the batch happened
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            results = [(False, exc)] * len(batch)
        by_loop: dict[Any, list[tuple[Any, bool, Any]]] = {}
        for (_, _, _, loop, fut), (ok, val) in zip(batch, results, strict=True):
            if loop is None:
                _deliver([(fut, ok, val)])
            else:
                by_loop.setdefault(loop, []).append((fut, ok, val))
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, items)
            except RuntimeError:
                pass  # the caller's loop is gone; nobody is waiting


def _deliver(items: list[tuple[Any, bool, Any]]) -> None:
    for fut, ok, val in items:
        if fut.cancelled():
            continue
        if ok:
            fut.set_result(val)
        else:
            fut.set_exception(val)
