"""The gateway in-process (httpx.ASGITransport): validation, error mapping, pass-through.

Upstreams are instant OpenAI-compatible fixtures on loopback (bench/instant_backend.py),
one answering 200 and one answering 500; a closed port stands for a dead backend.
"""

from __future__ import annotations

import httpx
import orjson
import pytest

from server import create_app
from tests.helpers import free_port, instant_backend, stop
from thinkgate.config import Settings

CHAT = {"model": "instant", "messages": [{"role": "user", "content": "2+2?"}]}


@pytest.fixture(scope="module")
def backends(tmp_path_factory):
    d = tmp_path_factory.mktemp("instant")
    ok_port, bad_port = free_port(), free_port()
    ok = instant_backend(ok_port, d / "ok.log")
    bad = instant_backend(bad_port, d / "bad.log", status=500)
    yield {"ok": f"http://127.0.0.1:{ok_port}", "bad": f"http://127.0.0.1:{bad_port}",
           "dead": f"http://127.0.0.1:{free_port()}"}
    stop(ok)
    stop(bad)


def settings_for(*backends: tuple[str, str, str], **gateway) -> Settings:
    return Settings(
        gateway={"health_interval_s": 60, **gateway},
        router={"default_thinking_budget": 64},
        backends=[{"name": n, "url": u, "model": m, "price_input_per_m": 1.0, "price_output_per_m": 2.0}
                  for n, u, m in backends],
        ledger_url="sqlite:///:memory:",
    )


@pytest.fixture
async def client(backends):
    app = create_app(settings_for(("a", backends["ok"], "instant"), max_body_bytes=1024 * 1024))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
            yield c


def assert_openai_error(r: httpx.Response, status: int, param: str | None = None) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["message"]
    if param is not None:
        assert err["param"] == param
    assert r.headers["x-request-id"]
    return err


async def test_non_stream_carries_thinkgate_object_and_headers(client):
    r = await client.post("/v1/chat/completions", json=CHAT, headers={"x-request-id": "req-1"})
    assert r.status_code == 200, r.text
    body = r.json()
    tg = body["thinkgate"]
    assert tg["model"] == "instant" and tg["backend"] == "a"
    assert tg["thinking_budget"] == 64 and tg["mode"] == "hard"
    assert tg["usage"] == {"thinking_tokens": 5, "answer_tokens": 5}
    usage = body["usage"]
    expected = (usage["prompt_tokens"] * 1.0 + usage["completion_tokens"] * 2.0) / 1e6
    assert tg["cost"]["actual_usd"] == pytest.approx(expected)
    assert r.headers["x-request-id"] == "req-1"
    assert r.headers["x-thinkgate-decision-id"] == tg["decision_id"]
    assert r.headers["x-thinkgate-thinking-budget"] == "64"


async def test_stream_strips_usage_unless_asked_and_ends_with_thinkgate_chunk(client):
    for include in (False, True):
        body = {**CHAT, "stream": True, "thinkgate": {"max_thinking_tokens": 7}}
        if include:
            body["stream_options"] = {"include_usage": True}
        r = await client.post("/v1/chat/completions", json=body)
        assert r.status_code == 200
        events = [e for e in r.text.split("\n\n") if e]
        assert events[-1] == "data: [DONE]"
        chunks = [orjson.loads(e[6:]) for e in events[:-1]]
        final = chunks[-1]
        assert final["choices"] == [] and final["thinkgate"]["thinking_budget"] == 7
        assert final["thinkgate"]["usage"]["thinking_tokens"] == 5
        usage_chunks = [c for c in chunks if c.get("usage")]
        assert bool(usage_chunks) is include
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
        assert text == "The answer is 4."


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (b"{not json", 400, None),
        (b"[1, 2]", 400, None),
        (orjson.dumps({"model": "instant"}), 400, "messages"),
        (orjson.dumps({**CHAT, "stream": "yes"}), 400, "stream"),
        (orjson.dumps({**CHAT, "max_tokens": -1}), 400, "max_tokens"),
        (orjson.dumps({**CHAT, "max_tokens": True}), 400, "max_tokens"),
        (orjson.dumps({**CHAT, "thinkgate": {"max_thinking_tokens": -5}}), 400, "thinkgate.max_thinking_tokens"),
        (orjson.dumps({**CHAT, "thinkgate": {"max_thinking_tokens": 1.5}}), 400, "thinkgate.max_thinking_tokens"),
        (orjson.dumps({**CHAT, "thinkgate": {"effort": 2}}), 400, "thinkgate.effort"),
        (orjson.dumps({**CHAT, "thinkgate": {"max_cost_usd": 0}}), 400, "thinkgate.max_cost_usd"),
        (orjson.dumps({**CHAT, "thinkgate": {"min_quality": "high"}}), 400, "thinkgate.min_quality"),
        (orjson.dumps({**CHAT, "thinkgate": {"allow_skip": 1}}), 400, "thinkgate.allow_skip"),
        (orjson.dumps({**CHAT, "thinkgate": {"budget": 3}}), 400, "thinkgate.budget"),
        (orjson.dumps({**CHAT, "thinkgate": [1]}), 400, "thinkgate"),
        (orjson.dumps({**CHAT, "thinking_token_budget": -2}), 400, "thinking_token_budget"),
        (orjson.dumps({**CHAT, "model": "gpt-9"}), 404, "model"),
    ],
)
async def test_bad_requests_get_openai_errors_naming_the_field(client, body, status, param):
    r = await client.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert_openai_error(r, status, param)
    # and the server keeps serving
    assert (await client.post("/v1/chat/completions", json=CHAT)).status_code == 200


async def test_oversized_body_is_413(client):
    big = b'{"model": "instant", "messages": [{"role": "user", "content": "' + b"x" * (2 * 1024 * 1024) + b'"}]}'
    assert_openai_error(await client.post("/v1/chat/completions", content=big), 413)
    assert (await client.get("/healthz")).status_code == 200


async def test_completions_endpoint_and_models_listing(client):
    r = await client.post("/v1/completions", json={"model": "auto", "prompt": "2+2="})
    assert r.status_code == 200 and r.json()["thinkgate"]["model"] == "instant"
    ids = [m["id"] for m in (await client.get("/v1/models")).json()["data"]]
    assert ids == ["instant", "auto"]
    assert_openai_error(await client.get("/v1/nope"), 404)


async def test_metrics_count_requests_tokens_and_errors(client):
    await client.post("/v1/chat/completions", json=CHAT)
    await client.post("/v1/chat/completions", content=b"{bad")
    text = (await client.get("/metrics")).text
    assert 'thinkgate_requests_total{backend="a",code="200",route="/v1/chat/completions"}' in text
    assert 'thinkgate_errors_total{code="400",route="/v1/chat/completions",type="invalid_request_error"}' in text
    assert 'thinkgate_tokens_total{backend="a",kind="thinking"}' in text
    assert "thinkgate_request_duration_seconds_bucket" in text
    assert 'thinkgate_inflight_requests{backend="a"} 0.0' in text


async def test_failover_on_5xx_and_503_when_all_down(backends):
    # The failing replica comes first in round-robin order half of the time: every
    # request must still succeed through the healthy one.
    s = settings_for(("bad", backends["bad"], "instant"), ("good", backends["ok"], "instant"))
    app = create_app(s)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
            served = {(await c.post("/v1/chat/completions", json=CHAT)).json()["thinkgate"]["backend"]
                      for _ in range(6)}
            assert served == {"good"}
    s = settings_for(("dead", backends["dead"], "instant"))
    app = create_app(s)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
            assert_openai_error(await c.post("/v1/chat/completions", json=CHAT), 503)
            assert (await c.get("/readyz")).status_code == 503
            assert (await c.get("/healthz")).status_code == 200


async def test_all_replicas_5xx_is_502(backends):
    app = create_app(settings_for(("bad", backends["bad"], "instant")))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
            err = assert_openai_error(await c.post("/v1/chat/completions", json=CHAT), 502)
            assert "500" in err["message"]
