"""Redis-store behaviour beyond the shared contract: script reloads and batch isolation."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from budget.ledger import Cost
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
