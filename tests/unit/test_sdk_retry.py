"""SDK retries against a mocked httpx2 transport: which statuses, how long, how often."""

from __future__ import annotations

import json
import random

import httpx2
import pytest

import thinkgate
from thinkgate._retry import RetryPolicy

MSG = [{"role": "user", "content": "2+2?"}]
OK = {
    "id": "c1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "4"}, "finish_reason": "stop"}],
    "thinkgate": {"decision_id": "d1", "model": "m"},
}


class Script:
    """A transport handler that plays a list of responses (or exceptions) in order."""

    def __init__(self, *steps: httpx2.Response | type[Exception]) -> None:
        self.steps = list(steps)
        self.calls = 0

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        step = self.steps[min(self.calls, len(self.steps) - 1)]
        self.calls += 1
        if isinstance(step, type):
            raise step("scripted failure", request=request)
        return step


def status(code: int, headers: dict | None = None, err_code: str | None = None) -> httpx2.Response:
    body = {"error": {"message": f"status {code}", "type": "x", "param": None, "code": err_code}}
    return httpx2.Response(code, headers=headers or {}, content=json.dumps(body).encode())


def ok() -> httpx2.Response:
    return httpx2.Response(200, json=OK)


def client_for(script: Script, sleeps: list[float], **kwargs) -> thinkgate.Client:
    client = thinkgate.Client(
        base_url="http://gw.test",
        api_key="k",
        http_client=httpx2.Client(transport=httpx2.MockTransport(script)),
        **kwargs,
    )
    client._sleep = sleeps.append  # record instead of sleeping
    return client


@pytest.mark.parametrize("code", [408, 409, 429, 500, 502, 503, 504])
def test_retryable_statuses_are_retried_then_succeed(code: int) -> None:
    script = Script(status(code), ok())
    sleeps: list[float] = []
    result = client_for(script, sleeps).chat(MSG)
    assert result.thinkgate is not None and result.thinkgate.decision_id == "d1"
    assert script.calls == 2
    assert len(sleeps) == 1


@pytest.mark.parametrize("code", [400, 401, 404, 413, 422])
def test_client_errors_are_not_retried(code: int) -> None:
    script = Script(status(code), ok())
    sleeps: list[float] = []
    with pytest.raises(thinkgate.APIStatusError) as info:
        client_for(script, sleeps).chat(MSG)
    assert info.value.status_code == code
    assert info.value.retries_taken == 0
    assert script.calls == 1
    assert sleeps == []


def test_default_is_two_retries_then_the_error() -> None:
    script = Script(status(503))
    sleeps: list[float] = []
    with pytest.raises(thinkgate.BackendUnavailable) as info:
        client_for(script, sleeps).chat(MSG)
    assert script.calls == 3
    assert len(sleeps) == 2
    assert info.value.retries_taken == 2


@pytest.mark.parametrize("max_retries", [0, 1, 4])
def test_max_retries_is_configurable(max_retries: int) -> None:
    script = Script(status(500))
    sleeps: list[float] = []
    with pytest.raises(thinkgate.ServerError):
        client_for(script, sleeps, max_retries=max_retries).budget()
    assert script.calls == max_retries + 1
    assert len(sleeps) == max_retries


def test_retry_after_is_honoured_exactly() -> None:
    script = Script(
        status(429, {"retry-after": "7"}, "budget_exceeded"), status(503, {"retry-after-ms": "1500"}), ok()
    )
    sleeps: list[float] = []
    client_for(script, sleeps).chat(MSG)
    assert sleeps == [7.0, 1.5]


def test_retry_after_beyond_cap_raises_at_once_with_retry_after() -> None:
    script = Script(status(429, {"retry-after": "3600"}, "budget_exceeded"), ok())
    sleeps: list[float] = []
    with pytest.raises(thinkgate.BudgetExceeded) as info:
        client_for(script, sleeps).chat(MSG)
    assert info.value.retry_after == 3600.0
    assert script.calls == 1
    assert sleeps == []


def test_retry_after_cap_is_configurable() -> None:
    script = Script(status(429, {"retry-after": "90"}), ok())
    sleeps: list[float] = []
    client_for(script, sleeps, retry_policy=RetryPolicy(max_retry_after=120)).chat(MSG)
    assert sleeps == [90.0]


def test_x_should_retry_header_overrides_status() -> None:
    sleeps: list[float] = []
    script = Script(status(400, {"x-should-retry": "true"}), ok())
    client_for(script, sleeps).chat(MSG)
    assert script.calls == 2
    script = Script(status(503, {"x-should-retry": "false"}), ok())
    with pytest.raises(thinkgate.BackendUnavailable):
        client_for(script, sleeps).chat(MSG)
    assert script.calls == 1


def test_connection_errors_and_timeouts_are_retried() -> None:
    script = Script(httpx2.ConnectError, httpx2.ReadTimeout, ok())
    sleeps: list[float] = []
    client_for(script, sleeps).chat(MSG)
    assert script.calls == 3
    assert len(sleeps) == 2


def test_backoff_without_retry_after_is_exponential_with_bounded_jitter() -> None:
    script = Script(status(500), status(500), status(500), status(500), ok())
    sleeps: list[float] = []
    client = client_for(script, sleeps, max_retries=4)
    client._rng = lambda: 0.0  # no jitter: the pure exponential schedule
    client.chat(MSG)
    assert sleeps == [0.5, 1.0, 2.0, 4.0]


def test_jitter_stays_within_a_quarter_below_the_base() -> None:
    policy = RetryPolicy(max_retries=10)
    rng = random.Random(1234)
    for attempt in range(8):
        base = min(0.5 * 2**attempt, 8.0)
        draws = [policy.backoff(attempt, rng.random()) for _ in range(200)]
        assert all(0.75 * base <= d <= base for d in draws)
        # jitter really varies the wait (not a constant schedule)
        assert max(draws) - min(draws) > 0.1 * base
    assert policy.backoff(50, 0.0) == 8.0  # capped at max_delay


def test_policy_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=2)
    with pytest.raises(ValueError, match="max_retry_after"):
        RetryPolicy(max_retry_after=float("nan"))


def test_stream_request_is_retried_before_the_stream_starts() -> None:
    chunk = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [],
        "thinkgate": {"decision_id": "d9", "model": "m"},
    }
    stream_ok = httpx2.Response(
        200,
        headers={"content-type": "text/event-stream"},
        content=f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode(),
    )
    script = Script(status(502), stream_ok)
    sleeps: list[float] = []
    stream = client_for(script, sleeps).chat(MSG, stream=True)
    assert stream.until_done() is not None
    assert stream.decision is not None and stream.decision.decision_id == "d9"
    assert script.calls == 2


async def test_async_client_retries_with_the_same_policy() -> None:
    script = Script(status(429, {"retry-after": "2"}), httpx2.ConnectError, ok())
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    client = thinkgate.AsyncClient(
        base_url="http://gw.test",
        api_key="k",
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(script)),
    )
    client._sleep = fake_sleep
    client._rng = lambda: 0.0
    result = await client.chat(MSG)
    assert result.thinkgate is not None
    assert sleeps == [2.0, 1.0]  # Retry-After, then backoff for attempt index 1
    script = Script(status(400))
    client2 = thinkgate.AsyncClient(
        base_url="http://gw.test",
        api_key="k",
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(script)),
    )
    with pytest.raises(thinkgate.InvalidRequest):
        await client2.chat(MSG)
    assert script.calls == 1


def test_with_options_copies_client_with_new_retry_count() -> None:
    script = Script(status(500))
    sleeps: list[float] = []
    base = client_for(script, sleeps)
    quick = base.with_options(max_retries=0, timeout=3.0)
    assert quick.retry_policy.max_retries == 0
    assert base.retry_policy.max_retries == 2  # the original is unchanged
    assert quick.openai.timeout == 3.0
    assert quick.openai._client is base.openai._client  # same connection pool
    with pytest.raises(thinkgate.ServerError):
        quick.chat(MSG)
    assert script.calls == 1
    assert sleeps == []
