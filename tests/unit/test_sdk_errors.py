"""SDK error mapping: gateway statuses -> typed thinkgate errors that are still openai errors."""

from __future__ import annotations

import email.utils

import httpx2
import openai
import pytest

import thinkgate
from thinkgate.errors import parse_retry_after

MSG = [{"role": "user", "content": "2+2?"}]


def failing_client(status: int, error: dict, headers: dict | None = None) -> thinkgate.Client:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            status, headers={"x-request-id": "req-1", **(headers or {})}, json={"error": error}
        )

    # max_retries=0: these tests are about mapping, not retrying.
    return thinkgate.Client(
        base_url="http://gw.test",
        api_key="k",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )


def err(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict:
    return {"message": message, "type": type_, "param": param, "code": code}


@pytest.mark.parametrize(
    ("status", "body", "cls", "openai_cls"),
    [
        (400, err("bad", "invalid_request_error"), thinkgate.InvalidRequest, openai.BadRequestError),
        (
            401,
            err("no key", "authentication_error"),
            thinkgate.AuthenticationError,
            openai.AuthenticationError,
        ),
        (
            404,
            err("no model", "invalid_request_error", "model_not_found"),
            thinkgate.NotFound,
            openai.NotFoundError,
        ),
        (413, err("too big", "invalid_request_error"), thinkgate.APIStatusError, openai.APIStatusError),
        (429, err("slow down", "rate_limit_error"), thinkgate.RateLimited, openai.RateLimitError),
        (
            429,
            err("spent", "rate_limit_error", "budget_exceeded"),
            thinkgate.BudgetExceeded,
            openai.RateLimitError,
        ),
        (500, err("oops", "server_error"), thinkgate.ServerError, openai.InternalServerError),
        (502, err("down", "backend_unavailable"), thinkgate.BackendUnavailable, openai.InternalServerError),
        (503, err("down", "backend_unavailable"), thinkgate.BackendUnavailable, openai.InternalServerError),
        (504, err("slow", "backend_unavailable"), thinkgate.BackendUnavailable, openai.InternalServerError),
    ],
)
def test_status_maps_to_typed_error_that_is_also_the_openai_error(
    status: int, body: dict, cls: type, openai_cls: type
) -> None:
    client = failing_client(status, body)
    with pytest.raises(cls) as info:
        client.chat(MSG)
    exc = info.value
    assert type(exc) is cls  # exact class, not a broader parent
    assert isinstance(exc, openai_cls)
    assert isinstance(exc, thinkgate.ThinkgateError)
    assert exc.status_code == status
    assert exc.request_id == "req-1"
    assert body["message"] in str(exc)
    # The original openai exception is chained for debugging.
    assert isinstance(exc.__cause__, openai_cls)
    assert not isinstance(exc.__cause__, thinkgate.ThinkgateError)


def test_invalid_request_names_the_field() -> None:
    client = failing_client(
        400, err("must be >= 0", "invalid_request_error", param="thinkgate.max_thinking_tokens")
    )
    with pytest.raises(thinkgate.InvalidRequest) as info:
        client.chat(MSG)
    assert info.value.param == "thinkgate.max_thinking_tokens"
    assert "thinkgate.max_thinking_tokens" in str(info.value)


def test_budget_exceeded_carries_retry_after_and_is_caught_as_openai_rate_limit() -> None:
    client = failing_client(
        429, err("tenant budget spent", "rate_limit_error", "budget_exceeded"), {"retry-after": "3600"}
    )
    try:
        client.chat(MSG)
    except openai.RateLimitError as exc:  # existing openai code keeps working
        assert isinstance(exc, thinkgate.BudgetExceeded)
        assert exc.retry_after == 3600.0
        assert exc.code == "budget_exceeded"
    else:  # pragma: no cover - the call must fail
        pytest.fail("no error raised")


def test_budget_exceeded_without_retry_after_has_none() -> None:
    client = failing_client(429, err("spent", "rate_limit_error", "budget_exceeded"))
    with pytest.raises(thinkgate.BudgetExceeded) as info:
        client.budget()
    assert info.value.retry_after is None


def test_unknown_feedback_decision_is_not_found() -> None:
    client = failing_client(
        404, err("unknown or expired decision_id", "invalid_request_error", param="decision_id")
    )
    with pytest.raises(thinkgate.NotFound, match="decision_id"):
        client.feedback("nope", 0.5)


def test_connection_error_maps_after_retries_are_spent() -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    client = thinkgate.Client(
        base_url="http://gw.test",
        api_key="k",
        max_retries=1,
        http_client=httpx2.Client(transport=httpx2.MockTransport(refuse)),
    )
    client._sleep = lambda seconds: None
    with pytest.raises(thinkgate.APIConnectionError) as info:
        client.chat(MSG)
    assert isinstance(info.value, openai.APIConnectionError)
    assert info.value.retries_taken == 1


def test_timeout_maps_to_timeout_error() -> None:
    def slow(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ReadTimeout("timed out", request=request)

    client = thinkgate.Client(
        base_url="http://gw.test",
        api_key="k",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(slow)),
    )
    with pytest.raises(thinkgate.APITimeoutError) as info:
        client.chat(MSG)
    assert isinstance(info.value, openai.APITimeoutError)


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after": "7"}) == 7.0
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "-3"}) is None
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None
    assert parse_retry_after(None) is None
    now = 1_800_000_000.0
    date = email.utils.formatdate(now + 90, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=now) == pytest.approx(90.0)
    past = email.utils.formatdate(now - 90, usegmt=True)
    assert parse_retry_after({"retry-after": past}, now=now) == 0.0
