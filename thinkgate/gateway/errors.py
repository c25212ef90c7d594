"""One small exception tree, mapped to OpenAI-shaped error bodies in one handler."""

from __future__ import annotations

from typing import Any

import orjson


class GatewayError(Exception):
    """Base of every error the gateway turns into an HTTP response."""

    status: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The OpenAI error object: ``{"error": {message, type, param, code}}``."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_value"


class AuthenticationFailed(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    type = "permission_error"
    code = "forbidden"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class BodyTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class BudgetExhausted(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "budget_exceeded"


class BadGateway(GatewayError):
    status = 502
    type = "backend_unavailable"
    code = "backend_error"


class NoBackend(GatewayError):
    status = 503
    type = "backend_unavailable"
    code = "no_healthy_backend"


class BackendTimeout(GatewayError):
    status = 504
    type = "backend_unavailable"
    code = "backend_timeout"


def error_bytes(exc: GatewayError) -> bytes:
    return orjson.dumps(exc.body())
