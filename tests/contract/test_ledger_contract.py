"""The ledger contract: one suite, run against every store (SQLite file, Redis)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from budget.ledger import BudgetExceeded, Cost, LedgerStore, UnknownReservation, UnknownTenant, window_bounds

from ._stores import make_store

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.asyncio(loop_scope="function")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


async def test_store_implements_the_protocol(store):
    assert isinstance(store, LedgerStore)


async def test_200_concurrent_reservations_exactly_50_fit(store):
    t, _ = await store.add_tenant("acme", budget_usd=0.5, budget_tokens=None, window="day")
    results = await asyncio.gather(
        *(store.reserve(t.id, Cost(usd=0.01, tokens=10)) for _ in range(200)), return_exceptions=True
    )
    ok = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BudgetExceeded)]
    assert len(ok) == 50 and len(refused) == 150
    assert len({r.id for r in ok}) == 50
    st = await store.status(t.id)
    assert st.reserved_usd == pytest.approx(0.5, abs=1e-12) and st.spent_usd == 0
    assert st.remaining_usd == pytest.approx(0.0, abs=1e-12)


async def test_200_concurrent_token_reservations_exactly_50_fit(store):
    t, _ = await store.add_tenant("tok", budget_usd=None, budget_tokens=5000, window="total")
    results = await asyncio.gather(*(store.reserve(t.id, Cost(tokens=100)) for _ in range(200)), return_exceptions=True)
    assert sum(not isinstance(r, BaseException) for r in results) == 50
    exc = next(r for r in results if isinstance(r, BudgetExceeded))
    assert exc.budget == "tokens" and exc.window == "total" and exc.retry_after_s is None
    assert exc.limit == 5000 and exc.requested == 100 and exc.spent + exc.reserved == 5000


async def test_settle_release_are_idempotent_and_counted_once(store):
    t, _ = await store.add_tenant("a", budget_usd=1.0, budget_tokens=1000, window="hour")
    r1 = await store.reserve(t.id, Cost(usd=0.3, tokens=300))
    r2 = await store.reserve(t.id, Cost(usd=0.2, tokens=200))
    await store.settle(r1.id, Cost(usd=0.1, tokens=120))
    await store.settle(r1.id, Cost(usd=0.1, tokens=120))
    await store.release(r2.id)
    await store.release(r2.id)
    await store.settle(r2.id, Cost(usd=0.5, tokens=5))  # released: stays released, nothing spent
    st = await store.status(t.id)
    assert (st.spent_usd, st.spent_tokens) == (pytest.approx(0.1), 120)
    assert (st.reserved_usd, st.reserved_tokens) == (0.0, 0)
    assert st.remaining_usd == pytest.approx(0.9) and st.remaining_tokens == 880
    with pytest.raises(UnknownReservation):
        await store.settle("r_nope", Cost())
    with pytest.raises(UnknownTenant):
        await store.reserve("t_nope", Cost(usd=0.1))


async def test_budget_exceeded_says_which_budget_and_retry_after(store, clock):
    clock.now = 1_700_000_000.0 + 12_345.0
    t, _ = await store.add_tenant("b", budget_usd=0.05, budget_tokens=None, window="day")
    await store.reserve(t.id, Cost(usd=0.04))
    with pytest.raises(BudgetExceeded) as ei:
        await store.reserve(t.id, Cost(usd=0.02))
    e = ei.value
    _, reset = window_bounds("day", clock.now)
    assert e.budget == "usd" and e.window == "day" and e.tenant_id == t.id
    assert e.limit == pytest.approx(0.05) and e.reserved == pytest.approx(0.04) and e.requested == pytest.approx(0.02)
    assert e.retry_after_s == pytest.approx(reset - clock.now)
    assert "usd budget per day" in str(e)


async def test_window_resets_at_calendar_boundary(store, clock):
    start, reset = window_bounds("minute", time.time())
    clock.now = start + 59.0
    t, _ = await store.add_tenant("m", budget_usd=None, budget_tokens=100, window="minute")
    r = await store.reserve(t.id, Cost(tokens=100))
    await store.settle(r.id, Cost(tokens=100))
    with pytest.raises(BudgetExceeded) as ei:
        await store.reserve(t.id, Cost(tokens=1))
    assert ei.value.retry_after_s == pytest.approx(1.0)
    clock.now = reset + 0.5
    st = await store.status(t.id)
    assert st.window_start == reset and st.window_reset_at == reset + 60 and st.spent_tokens == 0
    await store.reserve(t.id, Cost(tokens=100))


@pytest.mark.parametrize("window", ["minute", "hour", "day", "month", "total"])
async def test_status_window_matches_utc_calendar(store, clock, window):
    clock.now = 1_767_225_599.5  # 2025-12-31 23:59:59.5 UTC: every window is about to roll over
    t, _ = await store.add_tenant("w", budget_usd=1.0, budget_tokens=None, window=window)
    r = await store.reserve(t.id, Cost(usd=0.25))
    await store.settle(r.id, Cost(usd=0.25))
    st = await store.status(t.id)
    assert (st.window_start, st.window_reset_at) == window_bounds(window, clock.now)
    assert st.spent_usd == pytest.approx(0.25)
    clock.now += 1.0  # 2026-01-01 00:00:00.5
    st = await store.status(t.id)
    assert (st.window_start, st.window_reset_at) == window_bounds(window, clock.now)
    assert st.spent_usd == (pytest.approx(0.25) if window == "total" else 0.0)


async def test_expired_reservation_frees_budget_and_late_settle_counts_once(store, clock):
    t, _ = await store.add_tenant("c", budget_usd=None, budget_tokens=100, window="total")
    r = await store.reserve(t.id, Cost(tokens=80), ttl_s=5)
    with pytest.raises(BudgetExceeded):
        await store.reserve(t.id, Cost(tokens=30))
    clock.now += 6
    assert await store.expire_stale() == 1
    assert await store.expire_stale() == 0
    assert (await store.status(t.id)).reserved_tokens == 0
    await store.settle(r.id, Cost(tokens=40))
    await store.settle(r.id, Cost(tokens=40))
    st = await store.status(t.id)
    assert (st.spent_tokens, st.reserved_tokens) == (40, 0)
    await store.release(r.id)  # settled: no effect
    assert (await store.status(t.id)).spent_tokens == 40


async def test_reserve_expires_stale_holds_lazily(store, clock):
    t, _ = await store.add_tenant("d", budget_usd=None, budget_tokens=100, window="total")
    await store.reserve(t.id, Cost(tokens=100), ttl_s=1)
    clock.now += 2
    await store.reserve(t.id, Cost(tokens=100))  # fits only once the first hold expired


async def test_tenants_keys_and_budgets(store):
    t, key = await store.add_tenant("acme", budget_usd=2.5, budget_tokens=None, window="month", policy="degrade")
    assert key and (await store.tenant_for_key(key)) == t
    assert await store.tenant_for_key(key + "x") is None
    assert await store.get_tenant(t.id) == t and await store.get_tenant("t_missing") is None
    t2, key2 = await store.add_tenant("beta", budget_usd=None, budget_tokens=10, window="total", api_key="given-key")
    assert key2 == "given-key" and (await store.tenant_for_key("given-key")).id == t2.id
    assert [x.name for x in await store.list_tenants()] == ["acme", "beta"]
    with pytest.raises(ValueError, match="name"):
        await store.add_tenant("acme", budget_usd=1, budget_tokens=None, window="day")
    with pytest.raises(ValueError, match="window"):
        await store.add_tenant("x", budget_usd=1, budget_tokens=None, window="week")
    with pytest.raises(ValueError, match="budget_usd"):
        await store.add_tenant("x", budget_usd=-1, budget_tokens=None, window="day")
    with pytest.raises(ValueError, match="policy"):
        await store.add_tenant("x", budget_usd=1, budget_tokens=None, window="day", policy="yolo")
    new = await store.set_budget(t.id, budget_tokens=500)
    assert (new.budget_usd, new.budget_tokens, new.window, new.policy) == (2.5, 500, "month", "degrade")
    new = await store.set_budget(t.id, budget_usd=None, window="day", policy="reject")
    assert (new.budget_usd, new.budget_tokens, new.window, new.policy) == (None, 500, "day", "reject")
    assert await store.get_tenant(t.id) == new
    with pytest.raises(UnknownTenant):
        await store.set_budget("t_missing", budget_usd=1.0)
    with pytest.raises(ValueError, match="cost.usd"):
        await store.reserve(t.id, Cost(usd=float("nan")))


async def test_stats_vectors_add_atomically(store):
    assert await store.stats_get("arm:a") is None
    await asyncio.gather(*(store.stats_add("arm:a", [1.0, 0.5, -2.0]) for _ in range(20)))
    assert await store.stats_get("arm:a") == pytest.approx([20.0, 10.0, -40.0])
    with pytest.raises(ValueError, match="length"):
        await store.stats_add("arm:a", [1.0])


async def test_two_processes_never_spend_past_budget_together(backend):
    kind, target, prefix = backend
    store = make_store(kind, target, prefix)
    t, _ = await store.add_tenant("shared", budget_usd=0.2, budget_tokens=None, window="total")
    cmd = [sys.executable, "-m", "tests.contract._worker", "hammer", kind, target, prefix, t.id, "150", "0.001"]
    procs = [subprocess.Popen(cmd, cwd=REPO, env=_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    # Both import and connect first (which can take seconds on a loaded machine), then start together.
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    outs = [json.loads(p.communicate(timeout=120)[0].strip().splitlines()[-1]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    # They really ran at the same time, and together admitted exactly what fits.
    assert max(o["first"] for o in outs) < min(o["last"] for o in outs)
    assert all(o["ok"] > 0 for o in outs)
    assert sum(o["ok"] for o in outs) == 200 and sum(o["refused"] for o in outs) == 100
    st = await store.status(t.id)
    assert st.spent_usd == pytest.approx(0.2, abs=1e-12) and st.reserved_usd == 0 and st.spent_tokens == 200
    await store.close()


async def test_killed_process_loses_nothing_and_double_counts_nothing(backend, tmp_path):
    kind, target, prefix = backend
    store = make_store(kind, target, prefix)
    t, _ = await store.add_tenant("crash", budget_usd=None, budget_tokens=None, window="total")
    log = tmp_path / "journal.log"
    cmd = [sys.executable, "-m", "tests.contract._worker", "crashy", kind, target, prefix, t.id, str(log), "0.001"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env())
    deadline = time.time() + 30
    while time.time() < deadline and (not log.exists() or log.read_text().count("S ") < 50):
        await asyncio.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    lines = log.read_text().split()
    reserved_ids = [lines[i + 1] for i in range(len(lines) - 1) if lines[i] == "R"]
    settled = sum(1 for w in lines if w == "S")
    assert settled >= 50
    # "Restart": a fresh store; the journal tells which reservations were in flight.
    await store.close()
    store = make_store(kind, target, prefix)
    st = await store.status(t.id)
    # Settles are atomic: the in-flight pair is either fully counted or not at all.
    assert round(st.spent_usd / 0.001) in (settled, settled + 1)
    await store.expire_stale(now=time.time() + 10)
    st = await store.status(t.id)
    assert st.reserved_usd == 0 and st.reserved_tokens == 0
    # Reconcile: settle every journaled reservation again (the crash may have eaten one settle).
    for rid in reserved_ids:
        await store.settle(rid, Cost(usd=0.001, tokens=1))
    st = await store.status(t.id)
    assert st.spent_tokens == len(reserved_ids)
    assert st.spent_usd == pytest.approx(0.001 * len(reserved_ids), abs=1e-12)
    await store.close()
