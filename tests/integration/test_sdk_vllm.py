"""The Python SDK against the real gateway in front of a vLLM CPU server."""

from __future__ import annotations

import time

import httpx
import pytest

import thinkgate

pytestmark = pytest.mark.integration

MSG = [{"role": "user", "content": "What is 7 + 5?"}]


@pytest.fixture(scope="module")
def tenant_key(gateway_stack):
    counter = iter(range(1000))

    def make(**budget) -> str:
        r = httpx.post(f"{gateway_stack['gw']}/admin/tenants", json={"name": f"sdk-{next(counter)}", **budget},
                       headers={"authorization": f"Bearer {gateway_stack['admin_key']}"}, timeout=30)
        assert r.status_code == 201, r.text
        return r.json()["api_key"]

    return make


def test_sync_chat_stream_and_completions(gateway_stack, tenant_key):
    key = tenant_key(budget_usd=1.0, window="day")
    client = thinkgate.Client(base_url=gateway_stack["gw"], api_key=key)
    reply = client.chat(MSG, model="tiny", max_thinking_tokens=4, max_tokens=12)
    d = reply.thinkgate
    assert d.model == "tiny" and d.backend == "tiny-0" and d.thinking_budget == 4 and d.mode == "hard"
    assert d.usage.thinking_tokens is not None and d.usage.thinking_tokens <= 5
    assert d.cost.actual_usd > 0 and d.cost.reserved_usd >= d.cost.actual_usd
    stream = client.chat(MSG, model="auto", max_thinking_tokens=3, max_tokens=10, stream=True)
    chunks = list(stream)
    assert chunks and stream.decision is not None and stream.decision.thinking_budget == 3
    comp = client.completions("2+2=", model="tiny", max_tokens=6)
    assert comp.thinkgate is not None and comp.thinkgate.model == "tiny"
    status = client.budget()
    assert status.limit_usd == 1.0 and status.spent_usd == pytest.approx(
        d.cost.actual_usd + stream.decision.cost.actual_usd + comp.thinkgate.cost.actual_usd, rel=1e-6)


async def test_async_chat(gateway_stack, tenant_key):
    key = tenant_key(budget_usd=1.0, window="day")
    async with thinkgate.AsyncClient(base_url=gateway_stack["gw"], api_key=key) as client:
        reply = await client.chat(MSG, model="tiny", max_thinking_tokens=2, max_tokens=8)
        assert reply.thinkgate.thinking_budget == 2


def test_exhausted_budget_raises_budget_exceeded_with_retry_after(gateway_stack, tenant_key):
    key = tenant_key(budget_tokens=400, window="minute")
    client = thinkgate.Client(base_url=gateway_stack["gw"], api_key=key, max_retries=0)
    with pytest.raises(thinkgate.BudgetExceeded) as info:
        for _ in range(20):
            client.chat(MSG, model="tiny", max_tokens=64)
    err = info.value
    left = 60 - time.time() % 60
    assert err.retry_after is not None and abs(err.retry_after - left) <= 3
    assert "tokens budget per minute" in str(err)


def test_invalid_field_and_unknown_model_errors(gateway_stack, tenant_key):
    client = thinkgate.Client(base_url=gateway_stack["gw"], api_key=tenant_key(budget_usd=1.0, window="day"))
    with pytest.raises(thinkgate.InvalidRequest) as info:
        client.chat(MSG, model="tiny", max_tokens=-3)
    assert info.value.param == "max_tokens"
    with pytest.raises(thinkgate.NotFound) as missing:
        client.chat(MSG, model="no-such-model")
    assert missing.value.param == "model"


def test_feedback_is_accepted_once_and_unknown_ids_are_404(gateway_stack, tenant_key):
    client = thinkgate.Client(base_url=gateway_stack["gw"], api_key=tenant_key(budget_usd=1.0, window="day"))
    reply = client.chat(MSG, model="tiny", max_tokens=6)
    first = client.feedback(reply.thinkgate, score=1.0)
    again = client.feedback(reply.thinkgate.decision_id, score=1.0)
    assert first.accepted and not first.duplicate and again.duplicate
    with pytest.raises(thinkgate.NotFound):
        client.feedback("no-such-decision", score=0.5)
