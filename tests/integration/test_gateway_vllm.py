"""The gateway in front of a real vLLM CPU server (tiny random Qwen2 with <think> tokens).

Covers non-stream and stream pass-through, usage and the reasoning split, the
native ``thinking_token_budget`` reaching vLLM, client disconnect aborting the
generation, failover when a replica dies, and 503 when every replica is down.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time

import aiohttp
import httpx
import pytest

from tests.helpers import ROOT, free_port, stop, wait_http
from tests.integration.conftest import start_gateway, write_config

pytestmark = pytest.mark.integration

MSG = [{"role": "user", "content": "What is 12 + 30?"}]


@pytest.fixture(scope="module")
def stack(gateway_stack):
    return gateway_stack


def chat(base: str, timeout: float = 120, **body) -> httpx.Response:
    return httpx.post(f"{base}/v1/chat/completions", json={"model": "tiny", "messages": MSG, **body}, timeout=timeout)


@pytest.fixture(scope="module")
def end_id(tiny_model_dir) -> int:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model_dir)).convert_tokens_to_ids("</think>")


def no_natural_end(end_id: int) -> dict:
    """A random model may close its thinking at any step; forbid it so only the budget can.

    vLLM applies the forced end marker after logit biases, so the cap still wins.
    """
    return {"logit_bias": {str(end_id): -100}, "ignore_eos": True}


def vllm_metric(base: str, name: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    total = 0.0
    for m in re.finditer(rf"^{re.escape(name)}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.M):
        total += float(m.group(1))
    return total


def test_failover_when_a_replica_dies_then_all_requests_served(stack):
    served = []
    for _ in range(4):
        r = chat(stack["gw"], max_tokens=8)
        assert r.status_code == 200, r.text
        served.append(r.json()["thinkgate"]["backend"])
    assert set(served) == {"tiny-0"}
    ready = httpx.get(f"{stack['gw']}/readyz").json()
    doomed = ready["backends"]["tiny-doomed"]
    assert doomed["healthy"] is False and "Connect" in (doomed["error"] or "")


def test_non_stream_usage_and_reasoning_split_with_native_budget(stack, end_id):
    budget = 8
    r = chat(stack["gw"], max_tokens=48, temperature=0, thinkgate={"max_thinking_tokens": budget},
             return_token_ids=True, skip_special_tokens=False, **no_natural_end(end_id))
    assert r.status_code == 200, r.text
    body = r.json()
    tg, usage = body["thinkgate"], body["usage"]
    assert tg["thinking_budget"] == budget and tg["mode"] == "hard"
    assert tg["usage"]["thinking_tokens"] + tg["usage"]["answer_tokens"] == usage["completion_tokens"] == 48
    # vLLM forced </think> right after the budget: the thinking stops there.
    assert budget <= tg["usage"]["thinking_tokens"] <= budget + 1
    assert tg["usage"]["answer_tokens"] == 48 - tg["usage"]["thinking_tokens"] > 0
    assert body["choices"][0]["message"].get("reasoning")  # the parser split the thinking off
    ids = body["choices"][0]["token_ids"]
    assert ids.index(end_id) + 1 == tg["usage"]["thinking_tokens"]
    assert "token_ids" in body["choices"][0]  # asked for by the client: kept
    assert tg["cost"]["actual_usd"] == pytest.approx((usage["prompt_tokens"] * 0.5 + 48 * 2.0) / 1e6)


def test_request_budget_overrides_the_configured_default(stack, end_id):
    r = chat(stack["gw"], max_tokens=40, temperature=0, thinkgate={"max_thinking_tokens": 4}, **no_natural_end(end_id))
    capped = r.json()["thinkgate"]["usage"]["thinking_tokens"]
    r = chat(stack["gw"], max_tokens=40, temperature=0, **no_natural_end(end_id))
    default = r.json()["thinkgate"]  # default budget 16 from the config
    assert default["thinking_budget"] == 16
    assert 4 <= capped <= 5 and 16 <= default["usage"]["thinking_tokens"] <= 17
    r = httpx.post(f"{stack['vllm']}/v1/chat/completions", json={"model": "tiny", "messages": MSG, "max_tokens": 40,
                   "temperature": 0, "return_token_ids": True, **no_natural_end(end_id)}, timeout=60)
    # The same request straight to vLLM, no cap: it never stops thinking.
    assert end_id not in r.json()["choices"][0]["token_ids"]
    # ... and vLLM's own usage says 0 reasoning tokens (thinking opened in the prompt),
    # which is why the gateway counts from token ids.
    assert r.json()["usage"]["completion_tokens_details"]["reasoning_tokens"] == 0


def test_stream_pass_through_with_final_thinkgate_chunk(stack, end_id):
    body = {"model": "tiny", "messages": MSG, "max_tokens": 32, "stream": True, **no_natural_end(end_id),
            "thinkgate": {"max_thinking_tokens": 6}}
    events = []
    with httpx.stream("POST", f"{stack['gw']}/v1/chat/completions", json=body, timeout=120) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-thinkgate-thinking-budget"] == "6"
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(line[6:])
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert not any(c.get("usage") for c in chunks)  # client did not ask for usage
    assert not any("token_ids" in c["choices"][0] for c in chunks if c["choices"])  # nor for token ids
    # A random model's answer bytes may not decode (empty content strings): classify by key.
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"] and "role" not in c["choices"][0]["delta"]]
    kinds = ["reasoning" if "reasoning" in d else "content" if "content" in d else None for d in deltas]
    kinds = [k for k in kinds if k]
    first_content = kinds.index("content")
    assert "reasoning" in kinds[:first_content] and "reasoning" not in kinds[first_content:]
    tg = chunks[-1]["thinkgate"]
    assert chunks[-1]["choices"] == []
    assert 6 <= tg["usage"]["thinking_tokens"] <= 7
    assert tg["usage"]["thinking_tokens"] + tg["usage"]["answer_tokens"] == 32


def test_client_disconnect_aborts_the_upstream_generation(stack):
    async def run() -> None:
        body = {"model": "tiny", "messages": MSG, "max_tokens": 1900, "stream": True, "ignore_eos": True,
                "thinkgate": {"max_thinking_tokens": 0}}
        before = vllm_metric(stack["vllm"], "vllm:generation_tokens_total")
        async with aiohttp.ClientSession() as s:
            resp = await s.post(f"{stack['gw']}/v1/chat/completions", json=body)
            assert resp.status == 200
            seen = 0
            async for _ in resp.content.iter_any():
                seen += 1
                if seen >= 3:
                    break
            resp.close()  # the client goes away mid-stream
        t0 = time.monotonic()
        while time.monotonic() - t0 < 30:
            if vllm_metric(stack["vllm"], "vllm:num_requests_running") == 0:
                break
            await asyncio.sleep(0.2)
        assert vllm_metric(stack["vllm"], "vllm:num_requests_running") == 0
        generated = vllm_metric(stack["vllm"], "vllm:generation_tokens_total") - before
        assert generated < 1500, f"vLLM kept generating after the disconnect ({generated} tokens)"
        gw_metrics = httpx.get(f"{stack['gw']}/metrics").text
        assert 'thinkgate_inflight_requests{backend="tiny-0"} 0.0' in gw_metrics

    asyncio.run(run())


def test_vllm_400_passes_through_unchanged(stack):
    r = chat(stack["gw"], max_tokens=0 + 4, logprobs=True, top_logprobs=10_000)
    direct = httpx.post(f"{stack['vllm']}/v1/chat/completions",
                        json={"model": "tiny", "messages": MSG, "max_tokens": 4, "logprobs": True,
                              "top_logprobs": 10_000}, timeout=60)
    assert r.status_code == direct.status_code == 400
    assert r.json()["error"]["message"] == direct.json()["error"]["message"]
    assert r.headers["x-request-id"]


def test_all_replicas_down_is_503(stack, tmp_path):
    port = free_port()
    cfg = write_config(tmp_path / "down.toml", port, [("gone", f"http://127.0.0.1:{free_port()}", "tiny")])
    gw = start_gateway(cfg, port, tmp_path / "gw.log")
    try:
        r = chat(f"http://127.0.0.1:{port}", max_tokens=4)
        assert r.status_code == 503 and r.json()["error"]["type"] == "backend_unavailable"
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 503
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    finally:
        stop(gw)


def test_openai_sdk_stream_and_non_stream(stack):
    from openai import OpenAI

    client = OpenAI(base_url=f"{stack['gw']}/v1", api_key="none")
    resp = client.chat.completions.create(model="auto", messages=MSG, max_tokens=12,
                                          extra_body={"thinkgate": {"max_thinking_tokens": 4}})
    assert resp.model_extra["thinkgate"]["thinking_budget"] == 4
    final = None
    for chunk in client.chat.completions.create(model="tiny", messages=MSG, max_tokens=12, stream=True):
        final = chunk
    assert final is not None and final.model_extra["thinkgate"]["model"] == "tiny"


def test_backends_check_cli_reports_cap_enforced(stack):
    out = subprocess.run([sys.executable, "-m", "thinkgate.cli", "backends", "check", "--config", str(stack["cfg"]),
                          "--json"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    result = {b["name"]: b for b in json.loads(out.stdout.strip().splitlines()[-1])["backends"]}
    assert out.returncode == 1  # the doomed replica is down
    assert result["tiny-0"]["reachable"] and result["tiny-0"]["model_served"]
    assert result["tiny-0"]["thinking_cap"] is True
    assert result["tiny-doomed"]["reachable"] is False


def test_metrics_after_traffic(stack):
    text = httpx.get(f"{stack['gw']}/metrics").text
    assert re.search(r'thinkgate_tokens_total\{backend="tiny-0",kind="thinking"\} [1-9]', text)
    assert re.search(r'thinkgate_time_to_first_token_seconds_count\{backend="tiny-0",route="/v1/chat/completions"\} [1-9]',
                     text)
    wait_http(f"{stack['gw']}/healthz", 5)
