"""SDK response parsing: decisions (body, final stream chunk, headers), budget, feedback."""

from __future__ import annotations

import json

import httpx2
import pytest

import thinkgate

DECISION = {
    "decision_id": "dec-42",
    "model": "qwen3-1.7b",
    "backend": "cpu-0",
    "thinking_budget": 1024,
    "mode": "soft+hard",
    "predicted": {"p_correct": 0.83, "thinking_tokens": 610.5},
    "cost": {"reserved_usd": 0.0031, "actual_usd": 0.0012},
    "usage": {"thinking_tokens": 587, "answer_tokens": 41},
    "strategy": "knapsack",
    "reason": "largest marginal gain per dollar",
}
HEADERS = {
    "x-thinkgate-decision-id": "dec-42",
    "x-thinkgate-model": "qwen3-1.7b",
    "x-thinkgate-backend": "cpu-0",
    "x-thinkgate-thinking-budget": "1024",
    "x-thinkgate-mode": "hard",
}
MSG = [{"role": "user", "content": "2+2?"}]


def chat_body(with_decision: bool = True) -> dict:
    body = {
        "id": "c1",
        "object": "chat.completion",
        "created": 1,
        "model": "qwen3-1.7b",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "4"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 628, "total_tokens": 633},
    }
    if with_decision:
        body["thinkgate"] = DECISION
    return body


def chunk(content: str | None, *, final: bool = False, obj: str = "chat.completion.chunk") -> dict:
    out: dict = {"id": "c1", "object": obj, "created": 1, "model": "qwen3-1.7b"}
    if final:
        out["choices"] = []
        out["thinkgate"] = DECISION
    elif obj == "text_completion":
        out["choices"] = [{"index": 0, "text": content, "finish_reason": None, "logprobs": None}]
    else:
        out["choices"] = [{"index": 0, "delta": {"content": content}, "finish_reason": None}]
    return out


def sse(events: list[dict]) -> bytes:
    return ("".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n").encode()


def gateway(request: httpx2.Request) -> httpx2.Response:
    """A fake gateway speaking the documented protocol."""
    path = request.url.path
    body = json.loads(request.content) if request.content else {}
    if path == "/v1/chat/completions":
        if body.get("stream"):
            events = [chunk("2+2"), chunk("=4"), chunk(None, final=True)]
            return httpx2.Response(
                200, headers={"content-type": "text/event-stream", **HEADERS}, content=sse(events)
            )
        # model "bare": the body has no thinkgate object; "partial": a minimal one.
        out = chat_body(with_decision=body["model"] != "bare")
        if body["model"] == "partial":
            out["thinkgate"] = {"decision_id": "dec-7", "model": "m", "usage": None}
        return httpx2.Response(200, headers=HEADERS, json=out)
    if path == "/v1/completions":
        obj = "text_completion"
        events = [chunk("4", obj=obj), {**chunk(None, final=True), "object": obj}]
        return httpx2.Response(
            200, headers={"content-type": "text/event-stream", **HEADERS}, content=sse(events)
        )
    if path == "/v1/feedback":
        return httpx2.Response(
            200, json={"decision_id": body["decision_id"], "accepted": True, "duplicate": False}
        )
    if path == "/v1/budget":
        return httpx2.Response(
            200,
            json={
                "tenant": "acme",
                "window": "day",
                "window_reset_at": 1795000000.0,
                "limit_usd": 5.0,
                "limit_tokens": None,
                "spent_usd": 1.25,
                "spent_tokens": 40000,
                "reserved_usd": 0.5,
                "reserved_tokens": 2048,
                "remaining_usd": 3.25,
                "remaining_tokens": None,
            },
        )
    return httpx2.Response(404, json={"error": {"message": "not found", "type": "not_found", "param": None}})


def sync_client() -> thinkgate.Client:
    return thinkgate.Client(
        base_url="http://gw.test",
        api_key="k",
        http_client=httpx2.Client(transport=httpx2.MockTransport(gateway)),
    )


def async_client() -> thinkgate.AsyncClient:
    return thinkgate.AsyncClient(
        base_url="http://gw.test",
        api_key="k",
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(gateway)),
    )


def assert_full_decision(decision: thinkgate.Decision | None) -> None:
    assert isinstance(decision, thinkgate.Decision)
    assert decision.decision_id == "dec-42"
    assert decision.model == "qwen3-1.7b"
    assert decision.backend == "cpu-0"
    assert decision.thinking_budget == 1024
    assert decision.mode == "soft+hard"
    assert decision.predicted.p_correct == pytest.approx(0.83)
    assert decision.predicted.thinking_tokens == pytest.approx(610.5)
    assert decision.cost.reserved_usd == pytest.approx(0.0031)
    assert decision.cost.actual_usd == pytest.approx(0.0012)
    assert decision.usage.thinking_tokens == 587
    assert decision.usage.answer_tokens == 41
    assert decision.strategy == "knapsack"
    # The typed model is valid under strict pydantic validation too.
    assert thinkgate.Decision.model_validate(decision.model_dump()) == decision


def test_non_stream_decision_is_typed_and_openai_fields_intact() -> None:
    result = sync_client().chat(MSG, max_thinking_tokens=1024)
    assert isinstance(result, thinkgate.ChatCompletion)
    assert result.choices[0].message.content == "4"
    assert result.usage is not None and result.usage.completion_tokens == 628
    assert_full_decision(result.thinkgate)
    assert result.decision is result.thinkgate


def test_decision_falls_back_to_headers_when_body_has_none() -> None:
    result = sync_client().chat(MSG, model="bare")
    decision = result.thinkgate
    assert decision is not None
    assert (decision.decision_id, decision.model, decision.backend, decision.thinking_budget) == (
        "dec-42",
        "qwen3-1.7b",
        "cpu-0",
        1024,
    )
    assert decision.mode == "hard"
    assert decision.usage.thinking_tokens is None


def test_unlimited_budget_header_means_none() -> None:
    from thinkgate._streaming import decision_from_headers

    decision = decision_from_headers(
        httpx2.Headers(
            {
                "x-thinkgate-decision-id": "d",
                "x-thinkgate-model": "m",
                "x-thinkgate-thinking-budget": "unlimited",
            }
        )
    )
    assert decision is not None and decision.thinking_budget is None
    assert decision_from_headers(httpx2.Headers({"x-thinkgate-model": "m"})) is None


def test_minimal_decision_gets_empty_sub_objects() -> None:
    decision = sync_client().chat(MSG, model="partial").thinkgate
    assert decision is not None and decision.decision_id == "dec-7"
    assert decision.thinking_budget is None
    assert decision.usage.thinking_tokens is None
    assert decision.cost.actual_usd is None
    assert decision.predicted.p_correct is None


def test_stream_yields_all_chunks_and_exposes_decision_at_end() -> None:
    with sync_client().chat(MSG, stream=True) as stream:
        assert stream.decision is None
        assert stream.decision_id == "dec-42"  # known from the headers before any chunk
        chunks = list(stream)
    assert [c.choices[0].delta.content for c in chunks[:2]] == ["2+2", "=4"]
    assert chunks[-1].choices == []
    assert_full_decision(stream.decision)
    assert chunks[-1].thinkgate == stream.decision


def test_stream_until_done_returns_decision() -> None:
    stream = sync_client().completions("2+2=", stream=True)
    first = next(stream)
    assert first.choices[0].text == "4"
    assert_full_decision(stream.until_done())


def test_feedback_and_budget() -> None:
    client = sync_client()
    result = client.chat(MSG)
    fb = client.feedback(result.thinkgate, 0.9)  # a Decision works as well as its id
    assert isinstance(fb, thinkgate.FeedbackResult)
    assert (fb.decision_id, fb.accepted, fb.duplicate) == ("dec-42", True, False)
    status = client.budget()
    assert isinstance(status, thinkgate.BudgetStatus)
    assert status.tenant == "acme"
    assert status.remaining_usd == pytest.approx(3.25)
    assert status.limit_tokens is None
    assert status.reserved_tokens == 2048


async def test_async_client_parses_the_same() -> None:
    async with async_client() as client:
        result = await client.chat(MSG, effort=0.5)
        assert_full_decision(result.thinkgate)
        stream = await client.chat(MSG, stream=True)
        texts = [c.choices[0].delta.content async for c in stream if c.choices]
        assert texts == ["2+2", "=4"]
        assert_full_decision(stream.decision)
        cstream = await client.completions("2+2=", stream=True)
        assert_full_decision(await cstream.until_done())
        fb = await client.feedback("dec-42", 0.0)
        assert fb.accepted is True
        status = await client.budget()
        assert status.spent_tokens == 40000


def test_mid_stream_error_event_raises_thinkgate_error() -> None:
    def broken(request: httpx2.Request) -> httpx2.Response:
        events = [chunk("2"), {"error": {"message": "backend died", "type": "backend_unavailable"}}]
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=sse(events))

    client = thinkgate.Client(
        base_url="http://gw.test",
        api_key="k",
        http_client=httpx2.Client(transport=httpx2.MockTransport(broken)),
    )
    stream = client.chat(MSG, stream=True)
    assert next(stream).choices[0].delta.content == "2"
    with pytest.raises(thinkgate.APIError, match="backend died"):
        next(stream)
