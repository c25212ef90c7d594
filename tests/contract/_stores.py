"""Store construction shared by the fixtures and the worker processes (no pytest import)."""

from __future__ import annotations

import time

from budget.ledger import LedgerStore


def make_store(kind: str, target: str, prefix: str, clock=time.time) -> LedgerStore:
    """Construct a store of ``kind`` (also used by the worker processes)."""
    if kind == "sqlite":
        from budget.sqlite_store import SQLiteLedger

        return SQLiteLedger(target, clock=clock)
    from budget.redis_store import RedisLedger

    return RedisLedger(target, prefix=prefix, clock=clock)
