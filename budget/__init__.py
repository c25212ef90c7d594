"""thinkgate budget: allocation math (MCKP, online pricing) and the per-tenant ledger.

Public names resolve lazily (PEP 562) so that ``import budget`` -- which the
``thinkgate`` command line does through ``budget.cli`` -- pulls in neither numpy
nor a database driver until a name is used.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    # knapsack core
    "MCKPInfeasible": "budget.mckp",
    "MCKPSolution": "budget.mckp",
    "solve_exact": "budget.mckp",
    "solve_greedy": "budget.mckp",
    "with_skip": "budget.mckp",
    # online allocation
    "PacingState": "budget.online",
    "OnlineDecision": "budget.online",
    "choose_option": "budget.online",
    "DualPacer": "budget.online",
    "ThresholdPolicy": "budget.online",
    "zcl_threshold": "budget.online",
    "ect_threshold": "budget.online",
    # admission
    "PricedOption": "budget.admission",
    "Admission": "budget.admission",
    "admit": "budget.admission",
    # ledger
    "WINDOWS": "budget.ledger",
    "POLICIES": "budget.ledger",
    "Cost": "budget.ledger",
    "BudgetExceeded": "budget.ledger",
    "UnknownReservation": "budget.ledger",
    "UnknownTenant": "budget.ledger",
    "Tenant": "budget.ledger",
    "Reservation": "budget.ledger",
    "BudgetStatus": "budget.ledger",
    "LedgerStore": "budget.ledger",
    "open_ledger": "budget.ledger",
    "window_bounds": "budget.ledger",
    "hash_api_key": "budget.ledger",
    "SQLiteLedger": "budget.sqlite_store",
    "RedisLedger": "budget.redis_store",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'budget' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
