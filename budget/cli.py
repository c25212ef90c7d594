"""``thinkgate tenants add|list|set-budget|status``: manage tenants in the ledger.

Only the standard library is imported at top level; the ledger stores load
inside the handlers. The ledger URL comes from ``--ledger``, else
``$THINKGATE_LEDGER_URL``, else ``sqlite:///.thinkgate/ledger.db``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
from typing import Any

DEFAULT_LEDGER_URL = "sqlite:///.thinkgate/ledger.db"
_WINDOWS = ("minute", "hour", "day", "month", "total")
_POLICIES = ("reject", "degrade")


def _cli_error(msg: str) -> Exception:
    from thinkgate.cli import CliError

    return CliError(msg)


def ledger_url(flag: str | None) -> str:
    """The ledger URL from the flag, the environment, or the default."""
    return flag or os.environ.get("THINKGATE_LEDGER_URL") or DEFAULT_LEDGER_URL


def _usd(flag: str, text: str | None, *, allow_none: bool) -> Any:
    """Parse a dollar amount; 'none'/'unlimited' -> None (when allowed); absent -> Ellipsis."""
    if text is None:
        return ...
    if allow_none and text.lower() in ("none", "unlimited"):
        return None
    try:
        x = float(text)
    except ValueError:
        x = math.nan
    if not math.isfinite(x) or x < 0:
        raise _cli_error(f"{flag}: must be a number >= 0{' or none' if allow_none else ''}, got {text!r}")
    return x


def _tokens(flag: str, text: str | None, *, allow_none: bool) -> Any:
    """Parse a token count; 'none'/'unlimited' -> None (when allowed); absent -> Ellipsis."""
    if text is None:
        return ...
    if allow_none and text.lower() in ("none", "unlimited"):
        return None
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise _cli_error(f"{flag}: must be an integer >= 0{' or none' if allow_none else ''}, got {text!r}")
    return n


def _tenant_dict(t: Any) -> dict[str, Any]:
    return {"id": t.id, "name": t.name, "budget_usd": t.budget_usd, "budget_tokens": t.budget_tokens,
            "window": t.window, "policy": t.policy}


def _fmt(x: Any) -> str:
    return "unlimited" if x is None else str(x)


async def _resolve(store: Any, ref: str) -> Any:
    t = await store.get_tenant(ref)
    if t is None:
        t = next((x for x in await store.list_tenants() if x.name == ref), None)
    if t is None:
        raise _cli_error(f"TENANT: no tenant with id or name {ref!r}")
    return t


async def _run(args: argparse.Namespace) -> int:
    from budget.ledger import open_ledger

    try:
        store = open_ledger(ledger_url(args.ledger))
    except ValueError as exc:
        raise _cli_error(f"--ledger: {exc}") from exc
    try:
        if args.tenants_cmd == "add":
            usd = _usd("--budget-usd", args.budget_usd, allow_none=False)
            tok = _tokens("--budget-tokens", args.budget_tokens, allow_none=False)
            try:
                t, key = await store.add_tenant(
                    args.name, budget_usd=None if usd is ... else usd, budget_tokens=None if tok is ... else tok,
                    window=args.window, policy=args.policy, api_key=args.api_key,
                )
            except ValueError as exc:
                raise _cli_error(str(exc).replace("name:", "NAME:", 1)) from exc
            if args.json:
                print(json.dumps({**_tenant_dict(t), "api_key": key}))
            else:
                print(f"tenant {t.id} ({t.name}): budget ${_fmt(t.budget_usd)} / {_fmt(t.budget_tokens)} tokens "
                      f"per {t.window}, policy {t.policy}")
                print(f"api key (shown once, store it now): {key}")
        elif args.tenants_cmd == "list":
            ts = await store.list_tenants()
            if args.json:
                print(json.dumps([_tenant_dict(t) for t in ts]))
            else:
                print(f"{'id':<24} {'name':<20} {'budget_usd':>12} {'budget_tokens':>14} {'window':<7} policy")
                for t in ts:
                    print(f"{t.id:<24} {t.name:<20} {_fmt(t.budget_usd):>12} {_fmt(t.budget_tokens):>14} "
                          f"{t.window:<7} {t.policy}")
        elif args.tenants_cmd == "set-budget":
            t = await _resolve(store, args.tenant)
            usd = _usd("--budget-usd", args.budget_usd, allow_none=True)
            tok = _tokens("--budget-tokens", args.budget_tokens, allow_none=True)
            if usd is ... and tok is ... and args.window is None and args.policy is None:
                raise _cli_error("set-budget: give at least one of --budget-usd, --budget-tokens, --window, --policy")
            t = await store.set_budget(t.id, budget_usd=usd, budget_tokens=tok, window=args.window, policy=args.policy)
            print(json.dumps(_tenant_dict(t)) if args.json else
                  f"tenant {t.id} ({t.name}): budget ${_fmt(t.budget_usd)} / {_fmt(t.budget_tokens)} tokens "
                  f"per {t.window}, policy {t.policy}")
        elif args.tenants_cmd == "status":
            t = await _resolve(store, args.tenant)
            st = await store.status(t.id)
            d = {"tenant_id": st.tenant_id, "window": st.window, "window_start": st.window_start,
                 "window_reset_at": st.window_reset_at, "limit_usd": st.limit_usd, "limit_tokens": st.limit_tokens,
                 "spent_usd": st.spent_usd, "spent_tokens": st.spent_tokens, "reserved_usd": st.reserved_usd,
                 "reserved_tokens": st.reserved_tokens, "remaining_usd": st.remaining_usd,
                 "remaining_tokens": st.remaining_tokens}
            print(json.dumps(d) if args.json else "\n".join(f"{k}: {_fmt(v)}" for k, v in d.items()))
        return 0
    finally:
        await store.close()


def _handle(args: argparse.Namespace) -> int:
    if not getattr(args, "tenants_cmd", None):
        raise _cli_error("tenants: choose one of add, list, set-budget, status")
    return asyncio.run(_run(args))


def register(subparsers: Any) -> None:
    """Add the ``tenants`` command to the ``thinkgate`` parser."""
    p = subparsers.add_parser("tenants", help="manage tenants, API keys and budgets in the ledger")
    sub = p.add_subparsers(dest="tenants_cmd", metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--ledger", metavar="URL", default=None,
                        help=f"ledger URL (default: $THINKGATE_LEDGER_URL or {DEFAULT_LEDGER_URL})")
    common.add_argument("--json", action="store_true", help="print JSON")

    a = sub.add_parser("add", parents=[common], help="create a tenant and print its API key once")
    a.add_argument("name", metavar="NAME")
    a.add_argument("--budget-usd", metavar="X", help="dollars per window (default: unlimited)")
    a.add_argument("--budget-tokens", metavar="N", help="tokens per window (default: unlimited)")
    a.add_argument("--window", choices=_WINDOWS, default="day", help="budget window, UTC calendar (default: day)")
    a.add_argument("--policy", choices=_POLICIES, default="reject",
                   help="when the budget cannot cover a request: reject (429) or degrade to a cheaper option")
    a.add_argument("--api-key", default=None, help="use this key instead of generating one")

    sub.add_parser("list", parents=[common], help="list tenants")

    s = sub.add_parser("set-budget", parents=[common], help="change a tenant's budgets, window or policy")
    s.add_argument("tenant", metavar="TENANT", help="tenant id or name")
    s.add_argument("--budget-usd", metavar="X", help="dollars per window, or 'none' for unlimited")
    s.add_argument("--budget-tokens", metavar="N", help="tokens per window, or 'none' for unlimited")
    s.add_argument("--window", choices=_WINDOWS, default=None)
    s.add_argument("--policy", choices=_POLICIES, default=None)

    st = sub.add_parser("status", parents=[common], help="spent, reserved and remaining in the current window")
    st.add_argument("tenant", metavar="TENANT", help="tenant id or name")
    p.set_defaults(func=_handle)
