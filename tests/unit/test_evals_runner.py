"""Live runner against a tiny in-process OpenAI-compatible server (aiohttp on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

aiohttp_web = pytest.importorskip("aiohttp.web", reason="aiohttp (dev extra) is needed for the fake server")
pytest.importorskip("openai", reason="the runner needs the openai package")

from evals.datasets import EvalItem  # noqa: E402
from evals.runner import RunConfig, build_request, run  # noqa: E402
from evals.sweep import grid, parse_guidance, sweep  # noqa: E402
from predictors.records import load_outcome_records, load_outcome_table  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


class FakeServer:
    """Canned chat completions: answers "What is A + B?" right when A is even, wrong when odd."""

    def __init__(self, delay_s: float = 0.02) -> None:
        self.delay_s = delay_s
        self.bodies: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner = None

    async def _handle(self, request):
        body = await request.json()
        self.bodies.append(body)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            self.in_flight -= 1
        text = body["messages"][-1]["content"]
        a, b = map(int, re.search(r"What is (\d+) \+ (\d+)", text).groups())
        answer = a + b if a % 2 == 0 else a + b + 1
        budget = body.get("thinking_token_budget")
        gateway = (body.get("thinkgate") or {}).get("max_thinking_tokens")
        thinking = min(7, budget if budget is not None else gateway if gateway is not None else 7)
        resp = {
            "id": "cmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": f"The answer is \\boxed{{{answer}}}.",
                                     "reasoning_content": "think " * thinking}}],
            "usage": {"prompt_tokens": 11, "completion_tokens": thinking + 6, "total_tokens": thinking + 17,
                      "completion_tokens_details": {"reasoning_tokens": thinking}},
        }
        if body.get("omit_details"):
            del resp["usage"]["completion_tokens_details"]
        if body.get("zero_details"):  # what vLLM 0.32 reports for non-streamed replies
            resp["usage"]["completion_tokens_details"]["reasoning_tokens"] = 0
        if body.get("reasoning_key"):  # vLLM >= 0.11 names the field "reasoning"
            msg = resp["choices"][0]["message"]
            msg["reasoning"] = msg.pop("reasoning_content")
        if gateway is not None:
            resp["thinkgate"] = {"model": "routed-model", "thinking_budget": gateway,
                                 "usage": {"thinking_tokens": thinking, "answer_tokens": 6},
                                 "cost": {"actual_usd": 0.001}}
        return aiohttp_web.json_response(resp)

    def start(self) -> FakeServer:
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            app = aiohttp_web.Application()
            app.router.add_post("/v1/chat/completions", self._handle)
            self._runner = aiohttp_web.AppRunner(app)
            self._loop.run_until_complete(self._runner.setup())
            site = aiohttp_web.TCPSite(self._runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            port = site._server.sockets[0].getsockname()[1]
            self.url = f"http://127.0.0.1:{port}/v1"
            ready.set()
            self._loop.run_forever()

        threading.Thread(target=serve, daemon=True).start()
        assert ready.wait(10), "fake server did not start"
        return self

    def stop(self) -> None:
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)


@pytest.fixture()
def server():
    s = FakeServer().start()
    yield s
    s.stop()


def _items(n: int) -> list[EvalItem]:
    return [EvalItem(f"q{i}", [{"role": "user", "content": f"What is {i} + {i + 1}?"}], str(2 * i + 1), "math",
                     {"dataset": "toy", "difficulty": "easy" if i < n // 2 else "hard"}) for i in range(n)]


def test_build_request_modes():
    item = _items(1)[0]
    vllm = build_request(item, RunConfig("http://x/v1", "m", thinking_budget=64, extra_body={"vllm_xargs": {"k": 1}}))
    assert vllm["extra_body"] == {"thinking_token_budget": 64, "vllm_xargs": {"k": 1}}
    gw = build_request(item, RunConfig("http://x/v1", "auto", mode="gateway", thinking_budget=64,
                                       extra_body={"thinkgate": {"effort": 0.5}}))
    assert gw["extra_body"] == {"thinkgate": {"max_thinking_tokens": 64, "effort": 0.5}}
    assert "extra_body" not in build_request(item, RunConfig("http://x/v1", "m"))
    with pytest.raises(ValueError, match="--mode"):
        RunConfig("http://x/v1", "m", mode="grpc")


def test_run_scores_records_and_concurrency(server, tmp_path):
    items = _items(12)
    out = tmp_path / "records.jsonl"
    cfg = RunConfig(server.url, "toy-model", thinking_budget=4, concurrency=3, price_in_per_m=1.0,
                    price_out_per_m=2.0)
    summary = run(items, cfg, cache_dir=tmp_path / "cache", out_path=out, progress=False)
    assert summary.n_requested == 12 and summary.n_failed == 0
    assert summary.mean_score == pytest.approx(0.5)  # even i answered right
    assert 1 < server.max_in_flight <= 3
    assert all(b["thinking_token_budget"] == 4 for b in server.bodies)
    recs = load_outcome_records(out)
    assert [r.meta["item_id"] for r in recs] == [it.id for it in items]
    r0 = recs[0]
    assert (r0.thinking_tokens, r0.answer_tokens, r0.prompt_tokens) == (4, 6, 11)
    assert r0.thinking_budget == 4 and r0.score == 1.0 and recs[1].score == 0.0
    assert r0.cost_usd == pytest.approx((11 * 1.0 + 10 * 2.0) / 1e6)
    assert r0.latency_s is not None and r0.latency_s > 0 and r0.finish_reason == "stop"
    # A second run is served entirely from the cache.
    again = run(items, cfg, cache_dir=tmp_path / "cache", progress=False)
    assert again.n_cached == 12 and again.n_requested == 0 and len(server.bodies) == 12


def test_gateway_mode_uses_thinkgate_usage_and_cost(server, tmp_path):
    cfg = RunConfig(server.url, "auto", mode="gateway", thinking_budget=3)
    summary = run(_items(2), cfg, progress=False)
    rec = summary.records[0]
    assert server.bodies[0]["thinkgate"] == {"max_thinking_tokens": 3}
    assert rec.model == "routed-model" and rec.thinking_tokens == 3 and rec.cost_usd == pytest.approx(0.001)


@pytest.mark.parametrize("key, details", [("reasoning_content", "omit_details"), ("reasoning", "omit_details"),
                                          ("reasoning", "zero_details")])
def test_thinking_tokens_counted_from_reasoning_text_when_usage_lacks_them(server, key, details):
    extra = {details: True, "reasoning_key": key == "reasoning"}
    cfg = RunConfig(server.url, "m", thinking_budget=3, extra_body=extra)
    rec = run(_items(1), cfg, progress=False, count_tokens=lambda text: len(text.split())).records[0]
    assert rec.thinking_tokens == 3  # "think think think" from message.<key>
    assert rec.answer_tokens == 9 - 3  # completion_tokens minus thinking


def test_unseeded_sampling_is_not_cached(server, tmp_path):
    cfg = RunConfig(server.url, "m", temperature=0.7)
    run(_items(3), cfg, cache_dir=tmp_path / "c", progress=False)
    second = run(_items(3), cfg, cache_dir=tmp_path / "c", progress=False)
    assert second.n_cached == 0 and len(server.bodies) == 6
    seeded = RunConfig(server.url, "m", temperature=0.7, seed=1)
    run(_items(3), seeded, cache_dir=tmp_path / "c", progress=False)
    assert run(_items(3), seeded, cache_dir=tmp_path / "c", progress=False).n_cached == 3


def test_sampling_seed_is_per_item_and_reproducible():
    items = _items(4)
    cfg = RunConfig("http://x", "m", temperature=1.0, seed=7)
    seeds = [build_request(it, cfg)["seed"] for it in items]
    assert len(set(seeds)) == 4  # independent draws across items, not one shared stream
    assert seeds == [build_request(it, cfg)["seed"] for it in items]
    assert seeds != [build_request(it, RunConfig("http://x", "m", temperature=1.0, seed=8))["seed"] for it in items]
    assert all(0 <= s < 2**31 for s in seeds)
    assert "seed" not in build_request(items[0], RunConfig("http://x", "m"))


def test_killed_run_resumes_without_redoing_items(tmp_path):
    server = FakeServer(delay_s=0.15).start()
    try:
        script = textwrap.dedent(f"""
            import sys
            sys.path.insert(0, {str(REPO)!r})
            sys.path.insert(0, {str(Path(__file__).parent)!r})
            from test_evals_runner import _items
            from evals.runner import RunConfig, run
            run(_items(20), RunConfig({server.url!r}, "m", concurrency=2), cache_dir={str(tmp_path / 'c')!r},
                progress=False)
        """)
        proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO,
                                env={**os.environ, "PYTHONPATH": str(REPO)})
        deadline = time.time() + 60
        while len(server.bodies) < 8 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        lines = (tmp_path / "c" / "responses.jsonl").read_text().splitlines()
        done = {json.loads(line)["key"] for line in lines if line.strip()}
        assert 4 <= len(done) < 20, f"kill landed at an unexpected point ({len(done)} cached)"
        before = len(server.bodies)
        summary = run(_items(20), RunConfig(server.url, "m", concurrency=2), cache_dir=tmp_path / "c",
                      progress=False)
        assert summary.n_cached == len(done)
        assert summary.n_requested == 20 - len(done) == len(server.bodies) - before
        assert len(summary.records) == 20
    finally:
        server.stop()


def test_sweep_writes_records_and_wide_table(server, tmp_path):
    base = RunConfig(server.url, "x", concurrency=4)
    cells = grid(base, ["m1", "m2"], [None, 2], [parse_guidance("none"), parse_guidance('g={"vllm_xargs": {"a": 1}}')])
    assert len(cells) == 8 and cells[-1].label == "m2+g" and cells[-1].extra_body == {"vllm_xargs": {"a": 1}}
    res = sweep(_items(4), cells, tmp_path / "sw", progress=False)
    rows = load_outcome_table(res.table_path)
    assert len(rows) == 4
    assert set(rows[0].scores) == {"m1", "m1@2", "m1+g", "m1+g@2", "m2", "m2@2", "m2+g", "m2+g@2"}
    assert rows[0].thinking_tokens["m1@2"] == 2 and rows[0].thinking_tokens["m1"] == 7
    assert [r.meta["difficulty"] for r in rows] == ["easy", "easy", "hard", "hard"]  # item metadata kept
    assert len(load_outcome_records(res.records_path)) == 32
    with pytest.raises(ValueError, match="--guidance"):
        parse_guidance("oops")


def test_cli_run_and_sweep(server, tmp_path, capsys):
    from thinkgate.cli import main

    data = tmp_path / "toy.jsonl"
    data.write_text("".join(json.dumps({"q": f"What is {i} + 1?", "a": i + 1}) + "\n" for i in range(6)))
    common = ["--jsonl", str(data), "--prompt-field", "q", "--answer-field", "a", "--grader", "number",
              "--base-url", server.url, "--no-progress"]
    assert main(["eval", "run", *common, "--model", "m", "--budget", "2", "--out", str(tmp_path / "r.jsonl")]) == 0
    assert "requested 6" in capsys.readouterr().out
    assert [r.score for r in load_outcome_records(tmp_path / "r.jsonl")] == [1.0, 0.0] * 3
    assert main(["eval", "sweep", *common, "--models", "a,b", "--budgets", "none,1", "--out-dir",
                 str(tmp_path / "sw")]) == 0
    assert set(load_outcome_table(tmp_path / "sw" / "table.json")[0].scores) == {"a", "a@1", "b", "b@1"}
    with pytest.raises(SystemExit) as exc:  # argparse rejects the type
        main(["eval", "run", *common, "--model", "m", "--budget", "-3"])
    assert exc.value.code == 2 and "--budget" in capsys.readouterr().err
    assert main(["eval", "run", *common, "--model", "m", "--extra-body", "[1]"]) == 2
    assert "--extra-body" in capsys.readouterr().err


def test_cache_skips_a_torn_last_line(tmp_path):
    from evals.cache import ResponseCache

    c = ResponseCache(tmp_path)
    c.put("a", {"x": 1})
    c.close()
    with (tmp_path / "responses.jsonl").open("a") as f:
        f.write('{"key": "b", "val')  # a write cut off by a kill
    c2 = ResponseCache(tmp_path)
    assert c2.get("a") == {"x": 1} and "b" not in c2 and c2.skipped_lines == 1
    c2.put("c", 3)
    c2.close()
    c3 = ResponseCache(tmp_path)
    assert c3.get("c") == 3 and len(c3) == 2
