"""Admin API for tenants, guarded by the configured admin key (``gateway.admin_key``).

``GET /admin/tenants``, ``POST /admin/tenants`` (returns the API key once),
``PATCH /admin/tenants/{id}``, ``GET /admin/tenants/{id}/budget``. Without an
admin key in the config the admin API answers 404.
"""

from __future__ import annotations

import dataclasses
import hmac
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from thinkgate.gateway import errors as E

if TYPE_CHECKING:
    from server import Gateway

_FIELDS = ("budget_usd", "budget_tokens", "window", "policy")


def install_admin(app: FastAPI, gw: Gateway) -> None:
    """Register the admin routes on ``app``."""

    def ledger(request: Request) -> Any:
        key = gw.settings.gateway.admin_key
        if not key:
            raise E.NotFound("the admin API is disabled (set gateway.admin_key)")
        auth = request.headers.get("authorization", "")
        given = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if not hmac.compare_digest(given.encode(), key.encode()):
            raise E.PermissionDenied("admin key required (Authorization: Bearer <admin key>)")
        led = getattr(gw.admission, "ledger", None)
        if led is None:
            raise E.NotFound("budgets are not enabled on this gateway")
        return led

    async def body(request: Request) -> dict[str, Any]:
        try:
            data = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise E.InvalidRequest("request body is not valid JSON", code="invalid_json") from None
        if not isinstance(data, dict):
            raise E.InvalidRequest("request body must be a JSON object", code="invalid_json")
        unknown = set(data) - {"name", "api_key", *_FIELDS}
        if unknown:
            field = sorted(unknown)[0]
            raise E.InvalidRequest(f"{field} is not a tenant field", param=field)
        return data

    def ok(obj: Any, status: int = 200) -> Response:
        return Response(orjson.dumps(obj), status_code=status, media_type="application/json")

    @app.get("/admin/tenants")
    async def list_tenants(request: Request) -> Response:
        return ok({"data": [dataclasses.asdict(t) for t in await ledger(request).list_tenants()]})

    @app.post("/admin/tenants")
    async def add_tenant(request: Request) -> Response:
        led = ledger(request)
        data = await body(request)
        try:
            tenant, key = await led.add_tenant(
                data.get("name", ""), budget_usd=data.get("budget_usd"), budget_tokens=data.get("budget_tokens"),
                window=data.get("window", "day"), policy=data.get("policy", "reject"), api_key=data.get("api_key"))
        except ValueError as exc:
            raise E.InvalidRequest(str(exc), param=str(exc).split(":", 1)[0]) from None
        return ok({"tenant": dataclasses.asdict(tenant), "api_key": key}, 201)

    @app.patch("/admin/tenants/{tenant_id}")
    async def set_budget(tenant_id: str, request: Request) -> Response:
        led = ledger(request)
        data = await body(request)
        kwargs = {k: data[k] for k in _FIELDS if k in data}
        if await led.get_tenant(tenant_id) is None:
            raise E.NotFound(f"unknown tenant {tenant_id!r}")
        try:
            tenant = await led.set_budget(tenant_id, **kwargs)
        except ValueError as exc:
            raise E.InvalidRequest(str(exc), param=str(exc).split(":", 1)[0]) from None
        return ok({"tenant": dataclasses.asdict(tenant)})

    @app.get("/admin/tenants/{tenant_id}/budget")
    async def tenant_budget(tenant_id: str, request: Request) -> Response:
        led = ledger(request)
        if await led.get_tenant(tenant_id) is None:
            raise E.NotFound(f"unknown tenant {tenant_id!r}")
        s = await led.status(tenant_id)
        return ok({**dataclasses.asdict(s), "remaining_usd": s.remaining_usd, "remaining_tokens": s.remaining_tokens})
