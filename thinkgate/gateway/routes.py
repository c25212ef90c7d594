"""HTTP endpoints and the single error handler of the gateway app."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from thinkgate.gateway import errors as E
from thinkgate.gateway.metrics import CONTENT_TYPE

if TYPE_CHECKING:
    from server import Gateway

_JSON = "application/json"


def _rid(request: Request) -> str:
    rid = getattr(request.state, "request_id", None)
    if rid is None:
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex
        request.state.request_id = rid
    return rid


def install(app: FastAPI, gw: Gateway) -> None:
    """Register routes and error handlers on ``app``."""
    import orjson

    def err_response(request: Request, exc: E.GatewayError) -> Response:
        route = request.url.path
        gw.metrics.requests.labels(route, str(exc.status), "").inc()
        gw.metrics.errors.labels(route, str(exc.status), exc.type).inc()
        headers = {"x-request-id": _rid(request), **exc.headers}
        return Response(orjson.dumps(exc.body()), status_code=exc.status, media_type=_JSON, headers=headers)

    @app.exception_handler(E.GatewayError)
    async def _gateway_error(request: Request, exc: E.GatewayError) -> Response:
        return err_response(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        cls = E.NotFound if exc.status_code == 404 else E.InvalidRequest
        err = cls(str(exc.detail), code="not_found" if exc.status_code == 404 else "invalid_request")
        err.status = exc.status_code
        return err_response(request, err)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> Response:
        err = E.GatewayError(f"internal error: {type(exc).__name__}", code="internal_error")
        return err_response(request, err)

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        now = int(time.time())
        data = [{"id": m, "object": "model", "created": now, "owned_by": "thinkgate",
                 "backends": [r.name for r in gw.pool.by_model[m]]} for m in gw.pool.models()]
        data += [{"id": a, "object": "model", "created": now, "owned_by": "thinkgate", "alias": True}
                 for a in sorted(gw.pool.aliases)]
        return Response(orjson.dumps({"object": "list", "data": data}), media_type=_JSON,
                        headers={"x-request-id": _rid(request)})

    @app.get("/v1/budget")
    async def budget(request: Request) -> Response:
        status = getattr(gw.admission, "budget_status", None)
        if status is None:
            raise E.NotFound("budgets are not enabled on this gateway")
        body = await status(request.headers.get("authorization"))
        return Response(orjson.dumps(body), media_type=_JSON, headers={"x-request-id": _rid(request)})

    from thinkgate.gateway.admin import install_admin

    install_admin(app, gw)

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type=_JSON)

    @app.get("/readyz")
    async def readyz() -> Response:
        reps = {r.name: {"healthy": r.healthy, "outstanding": r.outstanding, "error": r.last_error}
                for r in gw.pool.replicas.values()}
        ready = any(r["healthy"] for r in reps.values())
        return Response(orjson.dumps({"ready": ready, "backends": reps}), status_code=200 if ready else 503,
                        media_type=_JSON)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(gw.metrics.render(), media_type=CONTENT_TYPE)
