"""Redis-store behaviour beyond the shared contract: script reloads, batch isolation, the pipelined connection."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from budget.ledger import BudgetExceeded, Cost
from budget.redis_store import RedisLedger

pytestmark = [pytest.mark.redis, pytest.mark.asyncio(loop_scope="function")]


@pytest.fixture
def prefix() -> str:
    return f"s{uuid.uuid4().hex[:8]}:"


async def test_survives_script_flush(redis_url, prefix):
    store = RedisLedger(redis_url, prefix=prefix)
    t, _ = await store.add_tenant("f", budget_usd=None, budget_tokens=100, window="total")
    r = await store.reserve(t.id, Cost(tokens=10))
    raw = aioredis.Redis.from_url(redis_url)
    await raw.script_flush()
    await raw.aclose()
    # Single call, batch and pipeline forms all reload the scripts and run once.
    await store.settle(r.id, Cost(tokens=10))
    rs = await asyncio.gather(*(store.reserve(t.id, Cost(tokens=10)) for _ in range(5)))
    assert len(rs) == 5
    await asyncio.gather(store.stats_add("x", [1.0]), store.settle(rs[0].id, Cost(tokens=10)))
    st = await store.status(t.id)
    assert (st.spent_tokens, st.reserved_tokens) == (20, 40)
    await store.close()


async def test_one_failing_operation_does_not_fail_its_batch(redis_url, prefix):
    store = RedisLedger(redis_url, prefix=prefix)
    t, _ = await store.add_tenant("b", budget_usd=None, budget_tokens=None, window="total")
    good = await store.reserve(t.id, Cost(tokens=1))
    bad = await store.reserve(t.id, Cost(tokens=1))
    raw = aioredis.Redis.from_url(redis_url)
    # Corrupt one reservation so its settle script errors (WRONGTYPE on HMGET).
    await raw.delete(f"{prefix}res:{bad.id}")
    await raw.set(f"{prefix}res:{bad.id}", "not a hash")
    await raw.aclose()
    # Issued in one loop tick, the two settles travel in one batch script.
    names: list[str] = []
    real = store._evalsha

    async def spy(name, args):
        names.append(name)
        return await real(name, args)

    store._evalsha = spy
    results = await asyncio.gather(
        store.settle(bad.id, Cost(tokens=1)), store.settle(good.id, Cost(tokens=1)), return_exceptions=True
    )
    assert isinstance(results[0], ResponseError) and "WRONGTYPE" in str(results[0])
    assert results[1] is None and names == ["batch"]
    st = await store.status(t.id)
    assert (st.spent_tokens, st.reserved_tokens) == (1, 1)
    await store.close()


async def test_replies_reach_their_callers_across_pipelined_batches(redis_url, prefix):
    store = RedisLedger(redis_url, prefix=prefix)
    tight, _ = await store.add_tenant("tight", budget_usd=None, budget_tokens=60, window="total")
    loose, _ = await store.add_tenant("loose", budget_usd=None, budget_tokens=None, window="total")

    async def one(i: int) -> tuple[str, int] | None:
        await asyncio.sleep((i % 7) * 0.0003)  # spread over several loop ticks: several writes in flight
        tid = tight.id if i % 2 else loose.id
        try:
            r = await store.reserve(tid, Cost(tokens=i + 1))
        except BudgetExceeded:
            return None
        return r.tenant_id, r.cost.tokens

    got = await asyncio.gather(*(one(i) for i in range(60)))
    # Each caller's view (admitted or refused) must match what Redis recorded for it.
    for tid in (tight.id, loose.id):
        st = await store.status(tid)
        assert st.reserved_tokens == sum(tok for g in got if g is not None and g[0] == tid for tok in [g[1]])
    assert any(g is None for g in got)  # the tight budget refused some
    await store.close()


async def test_reconnects_after_the_server_closed_an_idle_connection(redis_url, prefix):
    store = RedisLedger(redis_url, prefix=prefix)
    t, _ = await store.add_tenant("idle", budget_usd=None, budget_tokens=None, window="total")
    await store.settle((await store.reserve(t.id, Cost(tokens=1))).id, Cost(tokens=1))
    raw = aioredis.Redis.from_url(redis_url)
    await raw.client_kill_filter(skipme=True)  # what a restart or an idle timeout does
    await raw.aclose()
    await asyncio.sleep(0.1)  # let the event loop see the close
    r = await store.reserve(t.id, Cost(tokens=2))
    await store.settle(r.id, Cost(tokens=2))
    assert (await store.status(t.id)).spent_tokens == 3
    await store.close()


async def test_lost_connection_fails_in_flight_calls_and_never_resends_them(redis_url, prefix):
    store = RedisLedger(redis_url, prefix=prefix)
    t, _ = await store.add_tenant("lost", budget_usd=None, budget_tokens=None, window="total")
    await store.status(t.id)  # connected
    raw = aioredis.Redis.from_url(redis_url)
    await raw.execute_command("CLIENT", "PAUSE", "5000", "WRITE")  # scripts wait; CLIENT KILL still runs
    try:
        pending = asyncio.ensure_future(store.reserve(t.id, Cost(tokens=5)))
        await asyncio.sleep(0.2)
        assert not pending.done()
        await raw.client_kill_filter(skipme=True)
        with pytest.raises(RedisConnectionError):
            await pending
    finally:
        await raw.execute_command("CLIENT", "UNPAUSE")
        await raw.aclose()
    # The next call reconnects; the lost reservation was not replayed behind the caller's back.
    await store.reserve(t.id, Cost(tokens=1))
    assert (await store.status(t.id)).reserved_tokens == 1
    await store.close()
