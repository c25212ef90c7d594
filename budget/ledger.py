"""The ledger contract: tenants, budgets per calendar window, atomic reservations.

The gateway reserves a request's worst-case cost before calling a backend,
then settles the actual usage (or releases the reservation). A reservation is
admitted only if ``spent + reserved + requested <= limit`` for every budget the
tenant has (dollars and/or tokens), atomically, so concurrent requests can
never overspend by more than one request's worst-case reservation (and not at
all when actual <= reserved). Reservations that are never settled expire after
their TTL (crash safety); settling an expired reservation still records the
actual spend exactly once.

Windows are calendar-aligned in UTC: minute, hour, day, month, or ``total``
(never resets). Spend and reservations count against the window in which the
reservation was made. Dollar amounts are kept as integer nano-dollars in every
store so sums are exact and identical across stores.

Stores: :class:`budget.sqlite_store.SQLiteLedger` (default) and
:class:`budget.redis_store.RedisLedger`; :func:`open_ledger` picks one by URL.
"""

from __future__ import annotations

import calendar
import hashlib
import math
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import EllipsisType
from typing import Protocol, runtime_checkable

__all__ = [
    "WINDOWS",
    "POLICIES",
    "Cost",
    "BudgetExceeded",
    "UnknownReservation",
    "UnknownTenant",
    "Tenant",
    "Reservation",
    "BudgetStatus",
    "LedgerStore",
    "open_ledger",
    "window_bounds",
    "hash_api_key",
]

WINDOWS: tuple[str, ...] = ("minute", "hour", "day", "month", "total")
POLICIES: tuple[str, ...] = ("reject", "degrade")
NANO = 1_000_000_000  # nano-dollars per dollar
KEEP_S = 7 * 86400  # finished reservations are kept this long, so late settles stay idempotent


@dataclass(frozen=True)
class Cost:
    """An amount in dollars and tokens (either may be 0)."""

    usd: float = 0.0
    tokens: int = 0

    def validate(self, field: str = "cost") -> None:
        """Raise ValueError naming ``field`` unless usd is finite and >= 0 and tokens an int >= 0."""
        if not (isinstance(self.usd, int | float) and math.isfinite(self.usd) and self.usd >= 0):
            raise ValueError(f"{field}.usd: must be a finite number >= 0, got {self.usd!r}")
        if isinstance(self.tokens, bool) or not isinstance(self.tokens, int) or self.tokens < 0:
            raise ValueError(f"{field}.tokens: must be an integer >= 0, got {self.tokens!r}")


def to_nano(usd: float) -> int:
    """Dollars -> integer nano-dollars (rounded to nearest)."""
    return int(round(usd * NANO))


def from_nano(n: int) -> float:
    """Integer nano-dollars -> dollars."""
    return n / NANO


class BudgetExceeded(Exception):
    """A reservation would push a tenant past one of its budgets.

    ``budget`` is ``"usd"`` or ``"tokens"``; amounts are in that budget's unit.
    ``retry_after_s`` is the number of seconds until the window resets (None for
    the ``total`` window, which never resets).
    """

    def __init__(
        self,
        tenant_id: str,
        budget: str,
        window: str,
        limit: float,
        spent: float,
        reserved: float,
        requested: float,
        retry_after_s: float | None,
    ) -> None:
        self.tenant_id = tenant_id
        self.budget = budget
        self.window = window
        self.limit = limit
        self.spent = spent
        self.reserved = reserved
        self.requested = requested
        self.retry_after_s = retry_after_s
        unit = "$" if budget == "usd" else " tokens"
        fmt = (lambda x: f"${x:.6g}") if budget == "usd" else (lambda x: f"{int(x)}{unit}")
        when = "never resets" if retry_after_s is None else f"resets in {retry_after_s:.0f} s"
        super().__init__(
            f"tenant {tenant_id}: {budget} budget per {window} exceeded: limit {fmt(limit)}, "
            f"spent {fmt(spent)}, reserved {fmt(reserved)}, requested {fmt(requested)} ({window} window {when})"
        )


class UnknownReservation(KeyError):
    """No reservation with that id (never made, or pruned after its retention)."""


class UnknownTenant(KeyError):
    """No tenant with that id."""


@dataclass(frozen=True)
class Tenant:
    """A tenant and its budgets; a None budget is unlimited. ``policy``: reject | degrade."""

    id: str
    name: str
    budget_usd: float | None
    budget_tokens: int | None
    window: str
    policy: str = "reject"


@dataclass(frozen=True)
class Reservation:
    """A held worst-case cost, valid until ``expires_at`` (epoch seconds)."""

    id: str
    tenant_id: str
    cost: Cost
    created_at: float
    expires_at: float


@dataclass(frozen=True)
class BudgetStatus:
    """A tenant's usage in its current window (``window_reset_at`` None for ``total``)."""

    tenant_id: str
    window: str
    window_start: float
    window_reset_at: float | None
    limit_usd: float | None
    limit_tokens: int | None
    spent_usd: float
    spent_tokens: int
    reserved_usd: float
    reserved_tokens: int

    @property
    def remaining_usd(self) -> float | None:
        """Dollars still reservable (never negative); None when unlimited."""
        if self.limit_usd is None:
            return None
        return max(0.0, self.limit_usd - self.spent_usd - self.reserved_usd)

    @property
    def remaining_tokens(self) -> int | None:
        """Tokens still reservable (never negative); None when unlimited."""
        if self.limit_tokens is None:
            return None
        return max(0, self.limit_tokens - self.spent_tokens - self.reserved_tokens)


@runtime_checkable
class LedgerStore(Protocol):
    """The async API the gateway calls. Every method is safe under concurrency and across processes."""

    async def reserve(self, tenant_id: str, cost: Cost, ttl_s: float = 600.0) -> Reservation:
        """Atomically hold ``cost``; raises BudgetExceeded (or UnknownTenant)."""
        ...

    async def settle(self, reservation_id: str, actual: Cost) -> None:
        """Record the actual spend once (idempotent; works on expired reservations)."""
        ...

    async def release(self, reservation_id: str) -> None:
        """Drop an open reservation without spend (idempotent)."""
        ...

    async def status(self, tenant_id: str) -> BudgetStatus:
        """Usage in the tenant's current window (expiring stale reservations first)."""
        ...

    async def expire_stale(self, now: float | None = None) -> int:
        """Expire every open reservation past its deadline; returns how many."""
        ...

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
        """Create a tenant; returns it and its plaintext API key (stored only as sha256)."""
        ...

    async def tenant_for_key(self, api_key: str) -> Tenant | None:
        """The tenant owning ``api_key``, or None."""
        ...

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        """The tenant with that id, or None."""
        ...

    async def list_tenants(self) -> list[Tenant]:
        """All tenants, ordered by name."""
        ...

    async def set_budget(
        self,
        tenant_id: str,
        *,
        budget_usd: float | None | EllipsisType = ...,
        budget_tokens: int | None | EllipsisType = ...,
        window: str | None = None,
        policy: str | None = None,
    ) -> Tenant:
        """Change budgets (``...`` = unchanged, None = unlimited), window or policy."""
        ...

    async def stats_add(self, key: str, values: Sequence[float]) -> None:
        """Atomically add ``values`` element-wise to the float vector ``key`` (created as zeros)."""
        ...

    async def stats_get(self, key: str) -> list[float] | None:
        """The float vector ``key``, or None."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


def window_bounds(window: str, now: float) -> tuple[float, float | None]:
    """(start, next start) of the UTC calendar window containing ``now``; next start None for total."""
    if window == "total":
        return 0.0, None
    if window in ("minute", "hour", "day"):
        size = {"minute": 60, "hour": 3600, "day": 86400}[window]
        # Unix time has no leap seconds, so UTC boundaries are plain multiples.
        start = math.floor(now / size) * size
        return float(start), float(start + size)
    if window == "month":
        d = datetime.fromtimestamp(now, UTC)
        start = calendar.timegm((d.year, d.month, 1, 0, 0, 0))
        y, m = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
        return float(start), float(calendar.timegm((y, m, 1, 0, 0, 0)))
    raise ValueError(f"window: must be one of {', '.join(WINDOWS)}, got {window!r}")


def all_window_starts(now: float) -> dict[str, int]:
    """Start of every window kind at ``now`` (integer epoch seconds)."""
    return {w: int(window_bounds(w, now)[0]) for w in WINDOWS}


def hash_api_key(api_key: str) -> str:
    """sha256 hex digest of the key: the only form in which keys are stored."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def new_api_key() -> str:
    """A fresh random API key (192 bits)."""
    return "tg-" + secrets.token_urlsafe(24)


def new_id(prefix: str) -> str:
    """A random id such as ``t_9f2c...`` or ``r_...``."""
    return f"{prefix}_{secrets.token_hex(10)}"


def validate_tenant_fields(
    *,
    name: str | None = None,
    budget_usd: float | None | EllipsisType = ...,
    budget_tokens: int | None | EllipsisType = ...,
    window: str | None = None,
    policy: str | None = None,
) -> None:
    """Raise ValueError naming the bad field."""
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ValueError("name: must be a non-empty string")
    if budget_usd is not ... and budget_usd is not None:
        if isinstance(budget_usd, bool) or not isinstance(budget_usd, int | float) or not math.isfinite(budget_usd) or budget_usd < 0:
            raise ValueError(f"budget_usd: must be a finite number >= 0 or None, got {budget_usd!r}")
        if budget_usd * NANO > 2**53:
            raise ValueError(f"budget_usd: at most {2**53 / NANO:.0f} dollars per window, got {budget_usd!r}")
    if budget_tokens is not ... and budget_tokens is not None:
        if isinstance(budget_tokens, bool) or not isinstance(budget_tokens, int) or budget_tokens < 0:
            raise ValueError(f"budget_tokens: must be an integer >= 0 or None, got {budget_tokens!r}")
    if window is not None and window not in WINDOWS:
        raise ValueError(f"window: must be one of {', '.join(WINDOWS)}, got {window!r}")
    if policy is not None and policy not in POLICIES:
        raise ValueError(f"policy: must be one of {', '.join(POLICIES)}, got {policy!r}")


def check_admission(
    tenant: Tenant,
    *,
    now: float,
    spent_n: int,
    spent_tokens: int,
    reserved_n: int,
    reserved_tokens: int,
    req_n: int,
    req_tokens: int,
) -> BudgetExceeded | None:
    """The BudgetExceeded a reservation would hit (dollars checked first), or None if it fits."""
    _, reset = window_bounds(tenant.window, now)
    retry = None if reset is None else max(0.0, reset - now)
    if tenant.budget_usd is not None and spent_n + reserved_n + req_n > to_nano(tenant.budget_usd):
        return BudgetExceeded(
            tenant.id, "usd", tenant.window, tenant.budget_usd,
            from_nano(spent_n), from_nano(reserved_n), from_nano(req_n), retry,
        )
    if tenant.budget_tokens is not None and spent_tokens + reserved_tokens + req_tokens > tenant.budget_tokens:
        return BudgetExceeded(
            tenant.id, "tokens", tenant.window, tenant.budget_tokens,
            spent_tokens, reserved_tokens, req_tokens, retry,
        )
    return None


def validate_ttl(ttl_s: float) -> None:
    """Raise ValueError unless 0 < ttl_s < inf."""
    if not (isinstance(ttl_s, int | float) and math.isfinite(ttl_s) and ttl_s > 0):
        raise ValueError(f"ttl_s: must be a finite number > 0, got {ttl_s!r}")


def open_ledger(url: str) -> LedgerStore:
    """Build a store from a URL: ``sqlite:///relative.db``, ``sqlite:////abs.db``,
    ``sqlite:///:memory:`` or ``redis://host:port/db`` (``rediss://`` too).

    Constructing does no network I/O for Redis; SQLite creates the file and schema.
    """
    if url.startswith("sqlite://"):
        from budget.sqlite_store import SQLiteLedger

        path = url[len("sqlite://"):]
        if not path.startswith("/"):
            raise ValueError(f"ledger url: expected sqlite:///PATH, got {url!r}")
        path = path[1:]  # sqlite:///rel -> rel ; sqlite:////abs -> /abs
        if not path:
            raise ValueError(f"ledger url: missing database path in {url!r}")
        return SQLiteLedger(path)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from budget.redis_store import RedisLedger

        return RedisLedger(url)
    raise ValueError(f"ledger url: unknown scheme in {url!r} (use sqlite:///PATH or redis://HOST:PORT/DB)")


def now_s() -> float:
    """Wall clock (epoch seconds); stores take a ``clock`` to make tests deterministic."""
    return time.time()


def new_tenant(
    name: str, *, budget_usd: float | None, budget_tokens: int | None, window: str, policy: str,
    api_key: str | None,
) -> tuple[Tenant, str]:
    """Validate the fields and build a new Tenant and its plaintext key (given, or fresh); shared by the stores."""
    validate_tenant_fields(name=name, budget_usd=budget_usd, budget_tokens=budget_tokens, window=window, policy=policy)
    key = api_key if api_key is not None else new_api_key()
    if not key:
        raise ValueError("api_key: must be non-empty")
    return Tenant(new_id("t"), name, None if budget_usd is None else float(budget_usd), budget_tokens, window,
                  policy), key
