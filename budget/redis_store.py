"""Redis ledger store: atomic reserve/settle/release/expire as Lua scripts.

Each mutation is one Lua script (``budget/lua/*.lua``), which Redis runs
atomically, so several gateway replicas sharing one Redis never overspend a
tenant together. Window starts are computed by the caller's clock (UTC
calendar, including month starts, which Lua cannot do cheaply) and passed in;
replicas therefore need roughly synchronised clocks (NTP). Scripts build key
names from their arguments, so this store targets a single Redis (or a
primary with replicas), not Redis Cluster.

Script calls issued in the same event-loop tick (concurrent requests of one
gateway process) travel together: reserve/settle/release/status calls as ONE
batch script, other mixes as a pipeline of EVALSHA commands; one round trip
for the lot, each operation still atomic on its own. Script calls go over one
pipelined connection (``budget._redis_pipe``), not redis-py's per-command
pool path, whose client CPU was the larger part of a reserve+settle pair. A
call whose connection is lost fails with ``redis.exceptions.ConnectionError``
and is never resent (a resent reservation could be applied twice); tenant
administration and reads use redis-py's pool.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import EllipsisType
from typing import Any

from budget._redis_pipe import ScriptPipe, pack
from budget.ledger import (
    KEEP_S,
    BudgetExceeded,
    BudgetStatus,
    Cost,
    Reservation,
    Tenant,
    UnknownReservation,
    UnknownTenant,
    from_nano,
    hash_api_key,
    new_id,
    new_tenant,
    to_nano,
    validate_tenant_fields,
    validate_ttl,
    window_bounds,
)

__all__ = ["RedisLedger"]

_LUA_DIR = Path(__file__).with_name("lua")


_OPS = ("reserve", "finish", "status")  # defined as Lua functions op_<name>(A); batchable


def _script(name: str, prefix: str) -> str:
    """Source of script ``name``: the shared helpers, then the operation(s), then the entry point."""
    common = (_LUA_DIR / "common.lua").read_text().replace("@PREFIX@", prefix).replace("@KEEP@", str(KEEP_S))
    if name == "batch":
        ops = "\n".join((_LUA_DIR / f"{op}.lua").read_text() for op in _OPS)
        return f"{common}\n{ops}\n{(_LUA_DIR / 'batch.lua').read_text()}"
    body = (_LUA_DIR / f"{name}.lua").read_text()
    if name in _OPS:
        body += f"\nreturn op_{name}(ARGV)\n"
    return f"{common}\n{body}"


def _s(b: Any) -> str:
    return b.decode() if isinstance(b, bytes) else str(b)


def _tenant(tid: str, h: dict[bytes, bytes]) -> Tenant:
    d = {_s(k): _s(v) for k, v in h.items()}
    return Tenant(
        id=tid,
        name=d["name"],
        budget_usd=float(d["budget_usd"]) if d.get("budget_usd") else None,
        budget_tokens=int(d["budget_tokens"]) if d.get("budget_tokens") else None,
        window=d["window"],
        policy=d.get("policy", "reject"),
    )


def _tenant_fields(t: Tenant) -> dict[str, str]:
    return {
        "name": t.name,
        "budget_usd": "" if t.budget_usd is None else repr(float(t.budget_usd)),
        "budget_usd_n": "" if t.budget_usd is None else str(to_nano(t.budget_usd)),
        "budget_tokens": "" if t.budget_tokens is None else str(int(t.budget_tokens)),
        "window": t.window,
        "policy": t.policy,
    }


class RedisLedger:
    """LedgerStore on Redis (``redis://host:port/db``); ``prefix`` namespaces every key."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "tg:",
        clock: Callable[[], float] = time.time,
        max_connections: int = 64,
    ) -> None:
        import redis.asyncio as aioredis

        if not re.fullmatch(r"[A-Za-z0-9:_.-]*", prefix):
            raise ValueError(f"prefix: only letters, digits and :_.- allowed, got {prefix!r}")
        self.url = url
        self.prefix = prefix
        self._clock = clock
        # A blocking pool: bursts of concurrent requests queue for a connection
        # instead of failing once the pool is exhausted.
        pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=30)
        self._r = aioredis.Redis.from_pool(pool)
        # Script calls (the per-request path) go through one pipelined
        # connection; tenant admin and reads use the pool.
        self._pipe = ScriptPipe(pool)
        self._month: tuple[float, float, int] = (0.0, 0.0, 0)  # cached [start, end) of the current month
        names = (*_OPS, "batch", "expire", "add_tenant", "stats_add")
        self._src = {n: _script(n, prefix) for n in names}
        self._sha: dict[str, str] = {}
        self._pending: list[tuple[str, list[Any], asyncio.Future[Any]]] = []
        self._flushes: set[asyncio.Task[None]] = set()

    # -- batched script calls ---------------------------------------------

    async def _eval(self, name: str, args: list[Any]) -> Any:
        """Run script ``name``; calls made in the same loop tick share one pipeline round trip."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._pending.append((name, args, fut))
        if len(self._pending) == 1:
            loop.call_soon(self._start_flush)
        return await fut

    def _start_flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.ensure_future(self._flush(batch))
        self._flushes.add(task)  # keep a reference until done
        task.add_done_callback(self._flushes.discard)

    async def _flush(self, batch: list[tuple[str, list[Any], asyncio.Future[Any]]]) -> None:
        try:
            results = await self._exec([(n, a) for n, a, _ in batch])
        except Exception as exc:  # connection errors: every caller sees them
            results = [exc] * len(batch)
        for (_, _, fut), res in zip(batch, results, strict=True):
            if fut.done():
                continue
            if isinstance(res, Exception):
                fut.set_exception(res)
            else:
                fut.set_result(res)

    async def _exec(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Run the calls in order in one round trip; returns a result or an exception per call.

        Several reserve/finish/status calls go as ONE batch script (cheapest for
        client and server); a mix with other scripts goes as a pipeline.
        """
        from redis.exceptions import NoScriptError, ResponseError

        await self._ensure_scripts()
        if len(calls) > 1 and all(n in _OPS for n, _ in calls):
            flat: list[Any] = []
            for n, a in calls:
                flat += [n, len(a), *a]
            return list(await self._evalsha("batch", flat))
        if len(calls) == 1:
            try:
                return [await self._evalsha(*calls[0])]
            except ResponseError as exc:  # a script's own error belongs to its caller
                return [exc]
        results: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        for _ in range(3):
            out = await self._pipe.execute([pack(("EVALSHA", self._sha[calls[i][0]], 0, *calls[i][1])) for i in todo])
            retry = []
            for i, res in zip(todo, out, strict=True):
                if isinstance(res, NoScriptError):  # did not run: reload and rerun just these
                    retry.append(i)
                else:
                    results[i] = res
            if not retry:
                return results
            self._sha.clear()
            await self._ensure_scripts()
            todo = retry
        raise RuntimeError("redis: scripts keep disappearing (SCRIPT FLUSH loop?)")

    async def _ensure_scripts(self) -> None:
        """Load every script once per server (again after a restart or SCRIPT FLUSH)."""
        if len(self._sha) < len(self._src):
            for n, src in self._src.items():
                self._sha[n] = _s(await self._r.script_load(src))

    async def _evalsha(self, name: str, args: list[Any]) -> Any:
        """EVALSHA with reload-and-retry on NOSCRIPT (which means the script did not run)."""
        from redis.exceptions import NoScriptError, ResponseError

        for _ in range(3):
            (res,) = await self._pipe.execute([pack(("EVALSHA", self._sha[name], 0, *args))])
            if isinstance(res, NoScriptError):
                self._sha.clear()
                await self._ensure_scripts()
                continue
            if isinstance(res, ResponseError):
                raise res
            return res
        raise RuntimeError("redis: scripts keep disappearing (SCRIPT FLUSH loop?)")

    def _month_start(self, now: float) -> int:
        """Start of the UTC month containing ``now`` (cached: datetime math is slow per request)."""
        lo, hi, start = self._month
        if not lo <= now < hi:
            lo, hi = window_bounds("month", now)
            assert hi is not None
            self._month = (lo, hi, int(lo))
            start = int(lo)
        return start

    async def _tenant_or_raise(self, tid: str) -> Tenant:
        t = await self.get_tenant(tid)
        if t is None:
            raise UnknownTenant(tid)
        return t

    # -- reservations -------------------------------------------------------

    async def reserve(self, tenant_id: str, cost: Cost, ttl_s: float = 600.0) -> Reservation:
        """Atomically hold ``cost`` against the tenant's current window; raises BudgetExceeded."""
        cost.validate()
        validate_ttl(ttl_s)
        now = self._clock()
        rid = new_id("r")
        res = await self._eval(
            "reserve",
            [tenant_id, rid, to_nano(cost.usd), cost.tokens, repr(now), repr(now + ttl_s), self._month_start(now)],
        )
        code = int(res[0])
        if code == 1:
            return Reservation(rid, tenant_id, cost, now, now + ttl_s)
        if code == -1:
            raise UnknownTenant(tenant_id)
        budget, window = _s(res[1]), _s(res[6])
        _, reset = window_bounds(window, now)
        retry = None if reset is None else max(0.0, reset - now)
        limit, spent, reserved = int(_s(res[2])), int(_s(res[3])), int(_s(res[4]))
        if budget == "usd":
            raise BudgetExceeded(tenant_id, "usd", window, from_nano(limit), from_nano(spent),
                                 from_nano(reserved), cost.usd, retry)
        raise BudgetExceeded(tenant_id, "tokens", window, limit, spent, reserved, cost.tokens, retry)

    async def settle(self, reservation_id: str, actual: Cost) -> None:
        """Record the actual spend exactly once; a no-op on settled or released reservations."""
        actual.validate("actual")
        await self._finish(reservation_id, "settle", actual)

    async def release(self, reservation_id: str) -> None:
        """Drop an open reservation; a no-op when it is already settled, released or expired."""
        await self._finish(reservation_id, "release", Cost())

    async def _finish(self, rid: str, mode: str, actual: Cost) -> None:
        code = await self._eval("finish", [rid, mode, to_nano(actual.usd), actual.tokens])
        if int(code) == -1:
            raise UnknownReservation(rid)

    async def expire_stale(self, now: float | None = None) -> int:
        """Expire every open reservation whose deadline is <= now; returns the count."""
        now = self._clock() if now is None else now
        return int(await self._eval("expire", [repr(now)]))

    async def status(self, tenant_id: str) -> BudgetStatus:
        """Usage of the tenant's current window, after expiring its stale reservations."""
        now = self._clock()
        res = await self._eval("status", [tenant_id, repr(now), self._month_start(now)])
        if not res:
            raise UnknownTenant(tenant_id)
        window, busd, btok, ws, sn, st, rn, rt = (_s(x) for x in res)
        _, reset = window_bounds(window, now)
        # The window start is the one the scripts used (so a clock or calendar bug shows here).
        return BudgetStatus(
            tenant_id, window, float(ws), reset,
            float(busd) if busd else None, int(btok) if btok else None,
            from_nano(int(sn)), int(st), from_nano(int(rn)), int(rt),
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
        fields = _tenant_fields(t) | {"created_at": repr(self._clock())}
        flat = [x for kv in fields.items() for x in kv]
        res = _s(await self._eval("add_tenant", [t.id, name, hash_api_key(key), *flat]))
        if res == "name":
            raise ValueError(f"name: a tenant named {name!r} already exists")
        if res == "api_key":
            raise ValueError("api_key: already assigned to a tenant")
        return t, key

    async def tenant_for_key(self, api_key: str) -> Tenant | None:
        """Look a tenant up by the sha256 of its key."""
        tid = await self._r.get(self.prefix + "key:" + hash_api_key(api_key))
        return None if tid is None else await self.get_tenant(_s(tid))

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        """The tenant with that id, or None."""
        h = await self._r.hgetall(self.prefix + "tenant:" + tenant_id)
        return _tenant(tenant_id, h) if h else None

    async def list_tenants(self) -> list[Tenant]:
        """All tenants ordered by name."""
        ids = sorted(_s(x) for x in await self._r.smembers(self.prefix + "tenants"))
        out = [t for t in [await self.get_tenant(i) for i in ids] if t is not None]
        return sorted(out, key=lambda t: t.name)

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
        t = await self._tenant_or_raise(tenant_id)
        new = Tenant(
            t.id, t.name,
            t.budget_usd if budget_usd is ... else (None if budget_usd is None else float(budget_usd)),
            t.budget_tokens if budget_tokens is ... else budget_tokens,
            window or t.window, policy or t.policy,
        )
        # One HSET is atomic; concurrent set_budget calls are last-writer-wins.
        await self._r.hset(self.prefix + "tenant:" + tenant_id, mapping=_tenant_fields(new))
        return new

    # -- stats --------------------------------------------------------------

    async def stats_add(self, key: str, values: Sequence[float]) -> None:
        """Atomic element-wise add; the vector is created as zeros of ``len(values)``."""
        import redis.exceptions

        vals = [repr(float(x)) for x in values]
        try:
            await self._eval("stats_add", [key, *vals])
        except redis.exceptions.ResponseError as exc:
            if "stored length" in str(exc):
                raise ValueError(f"values: {exc} of {key!r}") from exc
            raise

    async def stats_get(self, key: str) -> list[float] | None:
        """The stored vector, or None."""
        h = {_s(k): _s(v) for k, v in (await self._r.hgetall(self.prefix + "stats:" + key)).items()}
        if not h:
            return None
        return [float(h[str(i)]) for i in range(int(h["n"]))]

    async def close(self) -> None:
        """Close the script connection and the connection pool."""
        await self._pipe.close()
        await self._r.aclose()
