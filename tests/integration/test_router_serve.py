"""``thinkgate serve`` with two backends and ``router.strategy = "linucb"``, as a user runs it (issue 6).

Real processes end to end: the gateway CLI, the shipped testbed predictor as
LinUCB's prior, a SQLite ledger for the bandit statistics, and two instant
OpenAI-compatible backends (``bench/instant_backend.py``) standing in for the
two models, so the test needs no vLLM and takes seconds. Routing to real
vLLM servers is covered by ``test_routing_vllm.py``.

What a user checks: requests route; feedback moves the routing; a backend
taken down mid-run stops receiving traffic (the model-level fallback says so
in the decision's reason) and receives traffic again once the health loop
sees it back.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.helpers import ROOT, free_port, instant_backend, stop, wait_http
from tests.integration.conftest import start_gateway

pytestmark = pytest.mark.integration

ARTIFACT = ROOT / "artifacts" / "testbed-structural.pkl"  # committed: a missing file must fail, not skip
HEALTH_S = 0.5
# A medium testbed question: the prior rates both models low, so bandit feedback dominates it fast.
QUESTION = "sum a3 b8 c5 d1 e7 f2 g9"


def _config(path: Path, port: int, small: int, large: int) -> Path:
    path.write_text(
        f'ledger_url = "sqlite:///{path.with_suffix(".db")}"\n'
        f'predictor_path = "{ARTIFACT}"\n'
        f"[gateway]\nport = {port}\nhealth_interval_s = {HEALTH_S}\n"
        '[router]\nstrategy = "linucb"\noptions = { alpha = 0.0, prior_weight = 1.0 }\n'
        f'[[backends]]\nname = "small-0"\nurl = "http://127.0.0.1:{small}"\nmodel = "tg-small"\n'
        "price_input_per_m = 0.05\nprice_output_per_m = 0.2\n"
        f'[[backends]]\nname = "large-0"\nurl = "http://127.0.0.1:{large}"\nmodel = "tg-large"\n'
        "price_input_per_m = 0.15\nprice_output_per_m = 0.6\n"
    )
    return path


def _ask(client: httpx.Client, n: int) -> list[dict]:
    out = []
    for _ in range(n):
        r = client.post("/v1/chat/completions", json={
            "model": "auto", "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 32})
        assert r.status_code == 200, r.text
        out.append(r.json()["thinkgate"])
    return out


def _wait_until(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return False


def test_linucb_serve_feedback_moves_routing_and_a_dead_backend_is_routed_around(tmp_path):
    small_port, large_port, gw_port = free_port(), free_port(), free_port()
    small = instant_backend(small_port, tmp_path / "small.log", model="tg-small")
    large = instant_backend(large_port, tmp_path / "large.log", model="tg-large")
    gw = start_gateway(_config(tmp_path / "tg.toml", gw_port, small_port, large_port), gw_port,
                       tmp_path / "gw.log")
    client = httpx.Client(base_url=f"http://127.0.0.1:{gw_port}", timeout=30)
    try:
        # 1. Requests route; every decision names the strategy and one of the two models.
        first = _ask(client, 6)
        assert {d["strategy"] for d in first} == {"linucb"}
        start = Counter(d["model"] for d in first).most_common(1)[0][0]
        other = "tg-large" if start == "tg-small" else "tg-small"

        # 2. Feedback moves the routing: the model chosen at first always fails, the other succeeds.
        moved = False
        for _ in range(40):
            d, = _ask(client, 1)
            score = 0.0 if d["model"] == start else 1.0
            r = client.post("/v1/feedback", json={"decision_id": d["decision_id"], "score": score})
            assert r.status_code == 200, r.text
            if d["model"] == other:
                moved = True
                break
        assert moved, f"40 failures of {start} never moved the routing to {other}\n" + \
            (tmp_path / "gw.log").read_text()[-2000:]
        assert Counter(d["model"] for d in _ask(client, 5))[other] == 5

        # 3. The preferred backend dies mid-run: traffic falls back to the other model, and the
        #    decision's reason says so; nothing fails.
        dead_port = large_port if other == "tg-large" else small_port
        stop(large if other == "tg-large" else small)
        assert _wait_until(lambda: all(d["model"] == start for d in _ask(client, 2)), 10 * HEALTH_S + 10)
        after = _ask(client, 4)
        assert all(d["model"] == start for d in after)
        assert all("is down" in d["reason"] and "fell back" in d["reason"]
                   for d in after), [d["reason"] for d in after]

        # 4. It comes back on the same port: the health loop notices and traffic returns to it.
        revived = instant_backend(dead_port, tmp_path / "revived.log", model=other)
        try:
            assert _wait_until(lambda: _ask(client, 1)[0]["model"] == other, 10 * HEALTH_S + 10), \
                "traffic never returned to the revived backend"
            assert Counter(d["model"] for d in _ask(client, 4))[other] == 4
            wait_http(f"http://127.0.0.1:{gw_port}/readyz", 5)
        finally:
            stop(revived)
    finally:
        client.close()
        stop(gw)
        stop(small)
        stop(large)


def test_serve_refuses_an_unknown_strategy_naming_it(tmp_path):
    """A config typo is a clear start-up error naming the strategy, not a traceback mid-request."""
    import subprocess

    cfg = tmp_path / "tg.toml"
    cfg.write_text('[router]\nstrategy = "linucbb"\n'
                   '[[backends]]\nname = "a"\nurl = "http://127.0.0.1:9"\nmodel = "m"\n')
    r = subprocess.run([sys.executable, "-m", "thinkgate.cli", "serve", "--config", str(cfg)],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode != 0
    assert "linucbb" in (r.stderr + r.stdout)
