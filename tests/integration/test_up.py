"""``thinkgate up`` on the shipped testbed models: starts, answers, stops with no orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import psutil
import pytest

from testbed.models import list_models
from tests.helpers import ROOT, free_port

pytestmark = pytest.mark.integration


@pytest.mark.skipif(not list_models(), reason="no testbed models under testbed/models")
def test_up_serves_then_stops_cleanly_on_sigterm_even_when_signalled_again(tmp_path):
    model = list_models()[0]
    gport, vport = free_port(), free_port()
    log = tmp_path / "up.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "thinkgate.cli", "up", "--models", model, "--port", str(gport),
         "--vllm-base-port", str(vport), "--run-dir", str(tmp_path / "run")],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    try:
        deadline = time.monotonic() + float(os.environ.get("THINKGATE_TEST_VLLM_TIMEOUT", "900"))
        while time.monotonic() < deadline and "serving; Ctrl-C to stop" not in log.read_text():
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(2)
        assert "serving; Ctrl-C to stop" in log.read_text(), log.read_text()[-3000:]
        descendants = psutil.Process(proc.pid).children(recursive=True)
        assert len(descendants) >= 2  # the vLLM server (+ its engine) and the gateway
        r = httpx.post(f"http://127.0.0.1:{gport}/v1/chat/completions", timeout=120,
                       json={"model": "auto", "messages": [{"role": "user", "content": "sum a3 b4"}],
                             "max_tokens": 64, "temperature": 0})
        assert r.status_code == 200 and r.json()["thinkgate"]["model"] == model
        assert (tmp_path / "run" / "thinkgate.toml").exists() and (tmp_path / "run" / f"vllm-{model}.log").exists()
        proc.send_signal(signal.SIGTERM)
        # A second signal while it cleans up (Ctrl-C pressed twice) must not orphan the servers.
        deadline = time.monotonic() + 30
        while "stopping ..." not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
        assert "stopped: gateway and vLLM servers" in log.read_text()
        time.sleep(1)
        alive = [p for p in descendants if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert alive == [], f"orphans left: {[p.cmdline()[:4] for p in alive]}"
    finally:
        if proc.poll() is None:
            proc.kill()
