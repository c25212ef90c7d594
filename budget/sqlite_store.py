"""SQLite ledger store: one file in WAL mode, safe across threads and processes.

Every mutation runs inside a ``BEGIN IMMEDIATE`` transaction, which takes
SQLite's single write lock up front, so the check-then-reserve is atomic across
every process sharing the file (readers are never blocked in WAL mode). Calls
run on one worker thread per store (:mod:`budget._sqlite_worker`), which
group-commits operations that arrive together, so the event loop never blocks
and the connection never crosses threads. A caller cancelled after submitting
does not undo its operation; an orphaned reservation simply expires.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import EllipsisType
from typing import Any

from budget._sqlite_worker import SQLiteWorker
from budget.ledger import (
    KEEP_S,
    BudgetExceeded,
    BudgetStatus,
    Cost,
    Reservation,
    Tenant,
    UnknownReservation,
    UnknownTenant,
    check_admission,
    from_nano,
    hash_api_key,
    new_id,
    new_tenant,
    to_nano,
    validate_tenant_fields,
    validate_ttl,
    window_bounds,
)

__all__ = ["SQLiteLedger"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tenants (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, budget_usd REAL, budget_tokens INTEGER,
    window TEXT NOT NULL, policy TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS api_keys (
    key_hash TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id));
CREATE TABLE IF NOT EXISTS usage (
    tenant_id TEXT NOT NULL, window_start INTEGER NOT NULL,
    spent_n INTEGER NOT NULL DEFAULT 0, spent_tokens INTEGER NOT NULL DEFAULT 0,
    reserved_n INTEGER NOT NULL DEFAULT 0, reserved_tokens INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, window_start));
CREATE TABLE IF NOT EXISTS reservations (
    id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, window_start INTEGER NOT NULL,
    usd_n INTEGER NOT NULL, tokens INTEGER NOT NULL, created_at REAL NOT NULL, expires_at REAL NOT NULL,
    state TEXT NOT NULL, actual_n INTEGER, actual_tokens INTEGER);
CREATE INDEX IF NOT EXISTS reservations_open ON reservations (tenant_id, expires_at) WHERE state = 'open';
CREATE INDEX IF NOT EXISTS reservations_open_all ON reservations (expires_at) WHERE state = 'open';
CREATE INDEX IF NOT EXISTS reservations_done ON reservations (expires_at) WHERE state != 'open';
CREATE TABLE IF NOT EXISTS stats (key TEXT PRIMARY KEY, vec TEXT NOT NULL);
"""


def _tenant(row: tuple[Any, ...]) -> Tenant:
    return Tenant(id=row[0], name=row[1], budget_usd=row[2], budget_tokens=row[3], window=row[4], policy=row[5])


_TENANT_COLS = "id, name, budget_usd, budget_tokens, window, policy"


class SQLiteLedger:
    """LedgerStore on one SQLite file (``":memory:"`` for a private in-process ledger).

    ``clock`` returns epoch seconds (injectable for tests); ``busy_timeout_s`` is
    how long a writer waits for another process's transaction.
    """

    def __init__(self, path: str, *, clock: Callable[[], float] = time.time, busy_timeout_s: float = 30.0) -> None:
        self.path = path
        self._clock = clock
        if path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self._worker = SQLiteWorker(lambda: self._connect(busy_timeout_s))

    def _connect(self, busy_timeout_s: float) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=busy_timeout_s, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: durable against process crashes (what the ledger must
        # survive); only an OS crash may lose the last commits.
        conn.execute("PRAGMA synchronous=NORMAL")
        with _txn(conn):
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
        return conn

    async def _run(self, fn: Callable[..., Any], *args: Any, write: bool = True) -> Any:
        return await self._worker.submit(fn, args, write=write)

    # -- reservations -------------------------------------------------------

    async def reserve(self, tenant_id: str, cost: Cost, ttl_s: float = 600.0) -> Reservation:
        """Atomically hold ``cost`` against the tenant's current window; raises BudgetExceeded."""
        cost.validate()
        validate_ttl(ttl_s)
        res = await self._run(self._reserve, tenant_id, cost, float(ttl_s))
        if isinstance(res, BudgetExceeded):
            raise res
        return res

    def _reserve(self, conn: sqlite3.Connection, tenant_id: str, cost: Cost, ttl_s: float) -> Reservation | BudgetExceeded:
        # Returns (not raises) BudgetExceeded so the expiries done here still commit.
        now = self._clock()
        req_n = to_nano(cost.usd)
        row = conn.execute(f"SELECT {_TENANT_COLS} FROM tenants WHERE id = ?", (tenant_id,)).fetchone()
        if row is None:
            raise UnknownTenant(tenant_id)
        tenant = _tenant(row)
        self._expire(conn, now, tenant_id)
        ws = int(window_bounds(tenant.window, now)[0])
        u = _usage(conn, tenant_id, ws)
        err = check_admission(
            tenant, now=now, spent_n=u[0], spent_tokens=u[1], reserved_n=u[2], reserved_tokens=u[3],
            req_n=req_n, req_tokens=cost.tokens,
        )
        if err is not None:
            return err
        rid = new_id("r")
        conn.execute(
            "INSERT INTO reservations (id, tenant_id, window_start, usd_n, tokens, created_at, expires_at, state)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 'open')",
            (rid, tenant_id, ws, req_n, cost.tokens, now, now + ttl_s),
        )
        conn.execute(
            "UPDATE usage SET reserved_n = reserved_n + ?, reserved_tokens = reserved_tokens + ?"
            " WHERE tenant_id = ? AND window_start = ?",
            (req_n, cost.tokens, tenant_id, ws),
        )
        return Reservation(rid, tenant_id, cost, now, now + ttl_s)

    async def settle(self, reservation_id: str, actual: Cost) -> None:
        """Record the actual spend exactly once; a no-op on settled or released reservations."""
        actual.validate("actual")
        await self._run(self._finish, reservation_id, actual)

    async def release(self, reservation_id: str) -> None:
        """Drop an open reservation; a no-op when it is already settled, released or expired."""
        await self._run(self._finish, reservation_id, None)

    def _finish(self, conn: sqlite3.Connection, rid: str, actual: Cost | None) -> None:
        row = conn.execute(
            "SELECT tenant_id, window_start, usd_n, tokens, state FROM reservations WHERE id = ?", (rid,)
        ).fetchone()
        if row is None:
            raise UnknownReservation(rid)
        tid, ws, usd_n, tokens, state = row
        if state == "open":
            conn.execute(
                "UPDATE usage SET reserved_n = reserved_n - ?, reserved_tokens = reserved_tokens - ?"
                " WHERE tenant_id = ? AND window_start = ?",
                (usd_n, tokens, tid, ws),
            )
        elif not (state == "expired" and actual is not None):
            return  # settled or released already: idempotent no-op
        if actual is None:
            conn.execute("UPDATE reservations SET state = 'released' WHERE id = ?", (rid,))
            return
        an = to_nano(actual.usd)
        conn.execute(
            "UPDATE usage SET spent_n = spent_n + ?, spent_tokens = spent_tokens + ?"
            " WHERE tenant_id = ? AND window_start = ?",
            (an, actual.tokens, tid, ws),
        )
        conn.execute(
            "UPDATE reservations SET state = 'settled', actual_n = ?, actual_tokens = ? WHERE id = ?",
            (an, actual.tokens, rid),
        )

    def _expire(self, conn: sqlite3.Connection, now: float, tenant_id: str | None) -> int:
        """Inside a transaction: move stale open reservations' holds out of ``reserved``."""
        if tenant_id is None:
            rows = conn.execute(
                "SELECT id, tenant_id, window_start, usd_n, tokens FROM reservations"
                " WHERE state = 'open' AND expires_at <= ?", (now,)
            ).fetchall()
        else:
            rows = conn.execute(
                "SELECT id, tenant_id, window_start, usd_n, tokens FROM reservations"
                " WHERE state = 'open' AND tenant_id = ? AND expires_at <= ?", (tenant_id, now)
            ).fetchall()
        for rid, tid, ws, usd_n, tokens in rows:
            conn.execute(
                "UPDATE usage SET reserved_n = reserved_n - ?, reserved_tokens = reserved_tokens - ?"
                " WHERE tenant_id = ? AND window_start = ?",
                (usd_n, tokens, tid, ws),
            )
            conn.execute("UPDATE reservations SET state = 'expired' WHERE id = ?", (rid,))
        return len(rows)

    async def expire_stale(self, now: float | None = None) -> int:
        """Expire every open reservation whose deadline is <= now; returns the count.

        Also deletes finished (settled, released, expired) reservations whose
        deadline is more than ``KEEP_S`` (7 days) old, as the Redis store's key
        TTLs do; settling one of those afterwards raises UnknownReservation.
        """
        return await self._run(self._expire_all, self._clock() if now is None else now)

    def _expire_all(self, conn: sqlite3.Connection, now: float) -> int:
        n = self._expire(conn, now, None)
        conn.execute("DELETE FROM reservations WHERE state != 'open' AND expires_at < ?", (now - KEEP_S,))
        return n

    async def status(self, tenant_id: str) -> BudgetStatus:
        """Usage of the tenant's current window, after expiring its stale reservations."""
        return await self._run(self._status, tenant_id)

    def _status(self, conn: sqlite3.Connection, tenant_id: str) -> BudgetStatus:
        now = self._clock()
        row = conn.execute(f"SELECT {_TENANT_COLS} FROM tenants WHERE id = ?", (tenant_id,)).fetchone()
        if row is None:
            raise UnknownTenant(tenant_id)
        t = _tenant(row)
        self._expire(conn, now, tenant_id)
        start, reset = window_bounds(t.window, now)
        u = _usage(conn, tenant_id, int(start))
        return BudgetStatus(
            tenant_id, t.window, start, reset, t.budget_usd, t.budget_tokens,
            from_nano(u[0]), u[1], from_nano(u[2]), u[3],
        )

    # -- tenants ------------------------------------------------------------

    async def add_tenant(
        self,
        name: str,
        *,
        budget_usd: float | None,
        budget_tokens: int | None,
        window: str,
        policy: str = "reject",
        api_key: str | None = None,
    ) -> tuple[Tenant, str]:
        """Create a tenant (names are unique); returns it and the plaintext key, shown once."""
        t, key = new_tenant(name, budget_usd=budget_usd, budget_tokens=budget_tokens, window=window, policy=policy,
                            api_key=api_key)
        await self._run(self._add_tenant, t, hash_api_key(key))
        return t, key

    def _add_tenant(self, conn: sqlite3.Connection, t: Tenant, key_hash: str) -> None:
        if conn.execute("SELECT 1 FROM tenants WHERE name = ?", (t.name,)).fetchone():
            raise ValueError(f"name: a tenant named {t.name!r} already exists")
        if conn.execute("SELECT 1 FROM api_keys WHERE key_hash = ?", (key_hash,)).fetchone():
            raise ValueError("api_key: already assigned to a tenant")
        conn.execute(
            f"INSERT INTO tenants ({_TENANT_COLS}, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (t.id, t.name, t.budget_usd, t.budget_tokens, t.window, t.policy, self._clock()),
        )
        conn.execute("INSERT INTO api_keys (key_hash, tenant_id) VALUES (?, ?)", (key_hash, t.id))

    async def tenant_for_key(self, api_key: str) -> Tenant | None:
        """Look a tenant up by the sha256 of its key."""
        return await self._run(
            _one_tenant, "id = (SELECT tenant_id FROM api_keys WHERE key_hash = ?)", hash_api_key(api_key), write=False
        )

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        """The tenant with that id, or None."""
        return await self._run(_one_tenant, "id = ?", tenant_id, write=False)

    async def list_tenants(self) -> list[Tenant]:
        """All tenants ordered by name."""
        rows = await self._run(
            lambda conn: conn.execute(f"SELECT {_TENANT_COLS} FROM tenants ORDER BY name").fetchall(), write=False
        )
        return [_tenant(r) for r in rows]

    async def set_budget(
        self,
        tenant_id: str,
        *,
        budget_usd: float | None | EllipsisType = ...,
        budget_tokens: int | None | EllipsisType = ...,
        window: str | None = None,
        policy: str | None = None,
    ) -> Tenant:
        """Update budgets (``...`` keeps, None = unlimited), window or policy; returns the new tenant."""
        validate_tenant_fields(budget_usd=budget_usd, budget_tokens=budget_tokens, window=window, policy=policy)
        return await self._run(self._set_budget, tenant_id, budget_usd, budget_tokens, window, policy)

    def _set_budget(
        self, conn: sqlite3.Connection, tid: str, usd: Any, tokens: Any, window: str | None, policy: str | None
    ) -> Tenant:
        row = conn.execute(f"SELECT {_TENANT_COLS} FROM tenants WHERE id = ?", (tid,)).fetchone()
        if row is None:
            raise UnknownTenant(tid)
        t = _tenant(row)
        new = Tenant(
            t.id, t.name,
            t.budget_usd if usd is ... else (None if usd is None else float(usd)),
            t.budget_tokens if tokens is ... else tokens,
            window or t.window, policy or t.policy,
        )
        conn.execute(
            "UPDATE tenants SET budget_usd = ?, budget_tokens = ?, window = ?, policy = ? WHERE id = ?",
            (new.budget_usd, new.budget_tokens, new.window, new.policy, tid),
        )
        return new

    # -- stats --------------------------------------------------------------

    async def stats_add(self, key: str, values: Sequence[float]) -> None:
        """Atomic element-wise add; the vector is created as zeros of ``len(values)``."""
        vals = [float(x) for x in values]
        await self._run(self._stats_add, key, vals)

    def _stats_add(self, conn: sqlite3.Connection, key: str, vals: list[float]) -> None:
        row = conn.execute("SELECT vec FROM stats WHERE key = ?", (key,)).fetchone()
        cur = json.loads(row[0]) if row else [0.0] * len(vals)
        if len(cur) != len(vals):
            raise ValueError(f"values: length {len(vals)} != stored length {len(cur)} of {key!r}")
        new = [a + b for a, b in zip(cur, vals, strict=True)]
        conn.execute("INSERT OR REPLACE INTO stats (key, vec) VALUES (?, ?)", (key, json.dumps(new)))

    async def stats_get(self, key: str) -> list[float] | None:
        """The stored vector, or None."""
        row = await self._run(
            lambda conn: conn.execute("SELECT vec FROM stats WHERE key = ?", (key,)).fetchone(), write=False
        )
        return None if row is None else [float(x) for x in json.loads(row[0])]

    async def close(self) -> None:
        """Finish queued operations, close the connection and the worker thread (idempotent)."""
        self._worker.close()


def _one_tenant(conn: sqlite3.Connection, where: str, arg: str) -> Tenant | None:
    row = conn.execute(f"SELECT {_TENANT_COLS} FROM tenants WHERE {where}", (arg,)).fetchone()
    return None if row is None else _tenant(row)


def _usage(conn: sqlite3.Connection, tenant_id: str, ws: int) -> tuple[int, int, int, int]:
    """(spent_n, spent_tokens, reserved_n, reserved_tokens), creating the row."""
    conn.execute("INSERT OR IGNORE INTO usage (tenant_id, window_start) VALUES (?, ?)", (tenant_id, ws))
    return conn.execute(
        "SELECT spent_n, spent_tokens, reserved_n, reserved_tokens FROM usage WHERE tenant_id = ? AND window_start = ?",
        (tenant_id, ws),
    ).fetchone()


class _txn:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error) on an autocommit connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")
