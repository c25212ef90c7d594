"""Ledger helpers: calendar windows, validation, errors, URL parsing, the in-memory SQLite store."""

from __future__ import annotations

import calendar
import hashlib
import sqlite3

import pytest

from budget.ledger import (
    BudgetExceeded,
    BudgetStatus,
    Cost,
    Tenant,
    UnknownReservation,
    check_admission,
    hash_api_key,
    open_ledger,
    window_bounds,
)
from budget.sqlite_store import SQLiteLedger


def ts(y, mo, d, h=0, mi=0, s=0):
    return float(calendar.timegm((y, mo, d, h, mi, s)))


def test_calendar_windows_in_utc():
    now = ts(2024, 2, 29, 13, 45, 10) + 0.25
    assert window_bounds("minute", now) == (ts(2024, 2, 29, 13, 45), ts(2024, 2, 29, 13, 46))
    assert window_bounds("hour", now) == (ts(2024, 2, 29, 13), ts(2024, 2, 29, 14))
    assert window_bounds("day", now) == (ts(2024, 2, 29), ts(2024, 3, 1))
    assert window_bounds("month", now) == (ts(2024, 2, 1), ts(2024, 3, 1))
    assert window_bounds("month", ts(2025, 12, 31, 23, 59, 59)) == (ts(2025, 12, 1), ts(2026, 1, 1))
    assert window_bounds("month", ts(2026, 1, 1)) == (ts(2026, 1, 1), ts(2026, 2, 1))
    assert window_bounds("total", now) == (0.0, None)
    with pytest.raises(ValueError, match="window"):
        window_bounds("week", now)


def test_admission_checks_both_budgets_with_retry_after():
    t = Tenant("t_1", "a", budget_usd=1.0, budget_tokens=100, window="hour")
    now = ts(2025, 5, 5, 10, 59, 30)
    ok = check_admission(t, now=now, spent_n=0, spent_tokens=50, reserved_n=0, reserved_tokens=0, req_n=10**9, req_tokens=50)
    assert ok is None
    e = check_admission(t, now=now, spent_n=0, spent_tokens=50, reserved_n=0, reserved_tokens=10, req_n=1, req_tokens=41)
    assert isinstance(e, BudgetExceeded) and e.budget == "tokens" and e.retry_after_s == pytest.approx(30.0)
    e = check_admission(t, now=now, spent_n=5 * 10**8, spent_tokens=0, reserved_n=0, reserved_tokens=0,
                        req_n=5 * 10**8 + 1, req_tokens=0)
    assert e.budget == "usd" and e.spent == pytest.approx(0.5) and "usd budget per hour" in str(e)


def test_cost_validation_names_field():
    with pytest.raises(ValueError, match=r"cost\.usd"):
        Cost(usd=-1.0).validate()
    with pytest.raises(ValueError, match=r"actual\.tokens"):
        Cost(tokens=1.5).validate("actual")  # type: ignore[arg-type]
    Cost(usd=0.1, tokens=3).validate()


def test_status_remaining_never_negative():
    st = BudgetStatus("t", "day", 0.0, 86400.0, 1.0, None, 0.8, 10, 0.5, 0)
    assert st.remaining_usd == 0.0 and st.remaining_tokens is None


def test_hash_is_sha256():
    assert hash_api_key("k") == hashlib.sha256(b"k").hexdigest()


def test_open_ledger_urls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="ledger url"):
        open_ledger("postgres://x")
    with pytest.raises(ValueError, match="ledger url"):
        open_ledger("sqlite://relative")
    s = open_ledger("sqlite:///sub/ledger.db")
    assert isinstance(s, SQLiteLedger) and (tmp_path / "sub" / "ledger.db").exists()
    s2 = open_ledger(f"sqlite:///{tmp_path}/abs.db")
    assert (tmp_path / "abs.db").exists()
    for x in (s, s2):
        x._worker.close()


@pytest.mark.asyncio(loop_scope="function")
async def test_sqlite_keys_stored_only_hashed(tmp_path):
    path = tmp_path / "l.db"
    s = SQLiteLedger(str(path))
    t, key = await s.add_tenant("acme", budget_usd=1.0, budget_tokens=None, window="day")
    await s.close()
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT key_hash, tenant_id FROM api_keys").fetchall()
    conn.close()
    assert rows == [(hash_api_key(key), t.id)]
    assert key.encode() not in path.read_bytes()


@pytest.mark.asyncio(loop_scope="function")
async def test_memory_store_round_trip():
    s = open_ledger("sqlite:///:memory:")
    t, _ = await s.add_tenant("m", budget_usd=0.01, budget_tokens=None, window="total")
    r = await s.reserve(t.id, Cost(usd=0.01))
    with pytest.raises(BudgetExceeded) as ei:
        await s.reserve(t.id, Cost(usd=0.001))
    assert ei.value.retry_after_s is None
    await s.settle(r.id, Cost(usd=0.004))
    st = await s.status(t.id)
    assert st.spent_usd == pytest.approx(0.004) and st.window_reset_at is None
    await s.close()
    with pytest.raises(RuntimeError, match="closed"):
        await s.status(t.id)


@pytest.mark.asyncio(loop_scope="function")
async def test_sqlite_prunes_finished_reservations_after_retention(tmp_path):
    now = [1_800_000_000.0]
    s = SQLiteLedger(str(tmp_path / "p.db"), clock=lambda: now[0])
    t, _ = await s.add_tenant("p", budget_usd=None, budget_tokens=None, window="total")
    done = await s.reserve(t.id, Cost(tokens=5), ttl_s=10)
    await s.settle(done.id, Cost(tokens=5))
    now[0] += 3 * 86400
    live = await s.reserve(t.id, Cost(tokens=5), ttl_s=30 * 86400)
    now[0] += 6 * 86400  # done's deadline is 9 days old, live is open
    await s.expire_stale()
    with pytest.raises(UnknownReservation):
        await s.settle(done.id, Cost(tokens=5))
    await s.settle(live.id, Cost(tokens=7))
    assert (await s.status(t.id)).spent_tokens == 12
    await s.close()
