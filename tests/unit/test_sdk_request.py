"""SDK request construction: client-side validation, the wire body, configuration."""

from __future__ import annotations

import json

import httpx2
import pytest

import thinkgate
from thinkgate._request import build_call_kwargs, resolve_base_url, thinkgate_extension, validate_feedback

CHAT = {
    "id": "c1",
    "object": "chat.completion",
    "created": 1,
    "model": "qwen",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "4"}, "finish_reason": "stop"}],
}
COMPLETION = {
    "id": "t1",
    "object": "text_completion",
    "created": 1,
    "model": "qwen",
    "choices": [{"index": 0, "text": "4", "finish_reason": "stop", "logprobs": None}],
}


class Recorder:
    """A fake gateway that records every request and answers 200 with a fixed body."""

    def __init__(self) -> None:
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        body = COMPLETION if request.url.path.endswith("/v1/completions") else CHAT
        return httpx2.Response(200, json=body)

    def body(self, i: int = -1) -> dict:
        return json.loads(self.requests[i].content)


def make_client(recorder: Recorder, **kwargs) -> thinkgate.Client:
    kwargs.setdefault("base_url", "http://gateway.test")
    kwargs.setdefault("api_key", "tenant-key")
    return thinkgate.Client(http_client=httpx2.Client(transport=httpx2.MockTransport(recorder)), **kwargs)


MSG = [{"role": "user", "content": "2+2?"}]


def test_chat_body_carries_thinkgate_extension_and_auth() -> None:
    rec = Recorder()
    client = make_client(rec)
    client.chat(
        MSG,
        max_thinking_tokens=512,
        effort=0.25,
        max_cost_usd=0.002,
        min_quality=0.8,
        allow_skip=False,
        temperature=0.3,
    )
    req = rec.requests[0]
    assert req.url == "http://gateway.test/v1/chat/completions"
    assert req.headers["authorization"] == "Bearer tenant-key"
    body = rec.body()
    assert body["model"] == "auto"
    assert body["messages"] == MSG
    assert body["temperature"] == 0.3
    assert body["thinkgate"] == {
        "max_thinking_tokens": 512,
        "effort": 0.25,
        "max_cost_usd": 0.002,
        "min_quality": 0.8,
        "allow_skip": False,
    }
    assert "stream" not in body


def test_no_controls_means_no_extension_object() -> None:
    rec = Recorder()
    make_client(rec).chat(MSG, model="qwen3-0.6b")
    body = rec.body()
    assert "thinkgate" not in body
    assert body["model"] == "qwen3-0.6b"


def test_extra_body_thinkgate_is_merged_and_explicit_args_win() -> None:
    rec = Recorder()
    make_client(rec).chat(
        MSG,
        max_thinking_tokens=64,
        extra_body={"thinkgate": {"max_thinking_tokens": 9999, "min_quality": 0.5}, "top_k": 5},
    )
    body = rec.body()
    assert body["thinkgate"] == {"max_thinking_tokens": 64, "min_quality": 0.5}
    assert body["top_k"] == 5


def test_completions_twin_sends_prompt_to_completions_endpoint() -> None:
    rec = Recorder()
    result = make_client(rec).completions("2+2=", effort="auto", max_tokens=8)
    assert rec.requests[0].url.path == "/v1/completions"
    body = rec.body()
    assert body["prompt"] == "2+2="
    assert body["thinkgate"] == {"effort": "auto"}
    assert body["max_tokens"] == 8
    assert result.choices[0].text == "4"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_thinking_tokens": -1}, "thinkgate.max_thinking_tokens"),
        ({"max_thinking_tokens": 1.5}, "thinkgate.max_thinking_tokens"),
        ({"max_thinking_tokens": True}, "thinkgate.max_thinking_tokens"),
        ({"effort": 1.5}, "thinkgate.effort"),
        ({"effort": "high"}, "thinkgate.effort"),
        ({"effort": float("nan")}, "thinkgate.effort"),
        ({"max_cost_usd": 0}, "thinkgate.max_cost_usd"),
        ({"max_cost_usd": float("inf")}, "thinkgate.max_cost_usd"),
        ({"min_quality": -0.1}, "thinkgate.min_quality"),
        ({"allow_skip": "yes"}, "thinkgate.allow_skip"),
    ],
)
def test_bad_controls_raise_value_error_naming_field_before_sending(kwargs: dict, field: str) -> None:
    rec = Recorder()
    client = make_client(rec)
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        client.chat(MSG, **kwargs)
    assert rec.requests == []


def test_boundary_values_are_accepted() -> None:
    ext = thinkgate_extension(max_thinking_tokens=0, effort=0, min_quality=1, max_cost_usd=1e-9)
    assert ext == {"max_thinking_tokens": 0, "effort": 0, "min_quality": 1.0, "max_cost_usd": 1e-9}


def test_messages_and_model_are_checked() -> None:
    client = make_client(Recorder())
    with pytest.raises(ValueError, match="messages"):
        client.chat([])
    with pytest.raises(ValueError, match="messages"):
        client.chat("2+2?")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="model"):
        client.chat(MSG, model="")
    with pytest.raises(TypeError, match="stream"):
        build_call_kwargs(model="auto", extension={}, stream=False, openai_kwargs={"stream": True})


def test_feedback_body_validation() -> None:
    assert validate_feedback("d-1", 1) == {"decision_id": "d-1", "score": 1.0}
    with pytest.raises(ValueError, match="score"):
        validate_feedback("d-1", 1.01)
    with pytest.raises(ValueError, match="score"):
        validate_feedback("d-1", True)
    with pytest.raises(ValueError, match="decision_id"):
        validate_feedback("", 0.5)


def test_config_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THINKGATE_BASE_URL", "https://gw.example:9000")
    monkeypatch.setenv("THINKGATE_API_KEY", "env-key")
    rec = Recorder()
    client = thinkgate.Client(http_client=httpx2.Client(transport=httpx2.MockTransport(rec)))
    assert client.base_url == "https://gw.example:9000/v1/"
    client.chat(MSG)
    assert rec.requests[0].headers["authorization"] == "Bearer env-key"
    # Explicit arguments beat the environment.
    other = thinkgate.Client(base_url="http://other:1/v1", api_key="arg-key")
    assert other.base_url == "http://other:1/v1/"


def test_missing_api_key_and_bad_url_are_clear_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("THINKGATE_API_KEY", raising=False)
    monkeypatch.delenv("THINKGATE_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="THINKGATE_API_KEY"):
        thinkgate.Client()
    with pytest.raises(ValueError, match="base_url"):
        thinkgate.Client(base_url="gateway:8000", api_key="k")
    assert resolve_base_url(None) == "http://127.0.0.1:8080/v1"
    assert resolve_base_url("http://h/proxy/") == "http://h/proxy/v1"


def test_openai_surface_passes_through() -> None:
    rec = Recorder()
    client = make_client(rec, max_retries=5)
    # Plain openai calls on the same object reach the gateway unchanged.
    out = client.chat.completions.create(model="m", messages=MSG, extra_body={"thinkgate": {"effort": 0.1}})
    assert out.choices[0].message.content == "4"
    assert rec.body()["thinkgate"] == {"effort": 0.1}
    assert client.models is client.openai.models
    assert client.openai.max_retries == 5
