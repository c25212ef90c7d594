"""Implementation of ``thinkgate up`` (imported by the CLI handler only).

Starts every server in its own process group, waits with progress, writes the
logs and the generated config to a run folder, and on Ctrl-C or SIGTERM stops
the gateway first, then the vLLM servers, killing whole process groups so that
no engine child survives.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from testbed.models import list_models
from testbed.serve import VllmServer
from testbed.stack import GATEWAY_PORT, VLLM_BASE_PORT, default_gateway_config

ROOT = Path(__file__).resolve().parents[1]


class _Stop(Exception):
    """Raised in the main thread by the SIGTERM handler."""


def _toml(cfg: dict[str, Any]) -> str:
    out = [f"{k} = {json.dumps(v)}\n" for k, v in cfg.items() if not isinstance(v, (dict, list))]
    out += [f"[gateway]\nport = {cfg['gateway']['port']}\n", "[router]\n"]
    for k, v in cfg["router"].items():
        if v is not None:
            out.append(f"{k} = {json.dumps(v)}\n")
    for b in cfg["backends"]:
        out.append("[[backends]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in b.items()))
    return "".join(out)


def _wait_gateway(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited with {proc.returncode}; log tail:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"gateway not ready after {timeout:.0f}s (log: {log})")


def _start_all(servers: list[VllmServer], timeout: float) -> None:
    """Start the vLLM servers concurrently, printing progress every few seconds."""
    errors: dict[str, BaseException] = {}

    def start(s: VllmServer) -> None:
        try:
            s.start(timeout_s=timeout)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors[s.name] = exc

    threads = [threading.Thread(target=start, args=(s,), daemon=True) for s in servers]
    for t in threads:
        t.start()
    t0 = time.monotonic()
    while any(t.is_alive() for t in threads):
        time.sleep(5)
        state = ", ".join(f"{s.name}: {'ready' if s.ready() else 'starting'}" for s in servers)
        print(f"  [{time.monotonic() - t0:5.0f}s] {state}", flush=True)
    if errors:
        name, exc = next(iter(errors.items()))
        raise RuntimeError(f"vLLM server {name} failed: {exc}")


def _demo(base: str) -> None:
    """Send one hard problem twice: thinking capped at 8 tokens, then unlimited."""
    from testbed.tasks import DIFFICULTIES, grade, sample_problems

    problem = sample_problems(1, "test", seed=7, difficulties=[DIFFICULTIES[-1]])[0]
    print(f"\ndemo: {problem.text!r} (answer {problem.answer})")
    for budget in (8, None):
        body: dict[str, Any] = {"model": "auto", "messages": [{"role": "user", "content": problem.text}],
                                "temperature": 0, "max_tokens": 900}
        if budget is not None:
            body["thinkgate"] = {"max_thinking_tokens": budget}
        req = urllib.request.Request(base + "/v1/chat/completions", data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=300) as r:
            resp = json.loads(r.read())
        msg = resp["choices"][0]["message"]
        tg = resp["thinkgate"]
        ok = grade(problem, msg.get("content") or "")
        print(f"\n  max_thinking_tokens={budget if budget is not None else 'unlimited'}: "
              f"answer {(msg.get('content') or '').strip()!r} -> {'correct' if ok else 'wrong'}")
        print(f"  thinking tokens {tg['usage']['thinking_tokens']}, answer tokens {tg['usage']['answer_tokens']}")
        print("  decision: " + json.dumps({k: tg[k] for k in ("model", "backend", "thinking_budget", "mode",
                                                                "strategy", "reason", "cost")}))


def run_up(args: argparse.Namespace) -> int:
    from thinkgate.cli import CliError

    available = list_models()
    models = [m.strip() for m in args.models.split(",")] if args.models else available
    unknown = [m for m in models if m not in available]
    if unknown or not models:
        raise CliError(f"--models: unknown {unknown or '(none)'}, available: {', '.join(available) or '(none)'}")
    gport = args.port or GATEWAY_PORT
    vbase = args.vllm_base_port or VLLM_BASE_PORT
    run_dir = Path(args.run_dir or ROOT / "runs" / time.strftime("up-%Y%m%d-%H%M%S"))
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = default_gateway_config(models, gport, vbase)
    cfg_path = run_dir / "thinkgate.toml"
    cfg_path.write_text(_toml(cfg))
    servers = [VllmServer(m, port=vbase + i, log_path=run_dir / f"vllm-{m}.log") for i, m in enumerate(models)]
    gateway: subprocess.Popen[bytes] | None = None

    def on_term(signum: int, frame: Any) -> None:
        raise _Stop

    old = signal.signal(signal.SIGTERM, on_term)
    print(f"thinkgate up: {len(models)} model(s) {', '.join(models)}; logs and config in {run_dir}", flush=True)
    try:
        _start_all(servers, args.timeout)
        glog = run_dir / "gateway.log"
        gateway = subprocess.Popen([sys.executable, "-m", "thinkgate.cli", "serve", "--config", str(cfg_path)],
                                   stdout=glog.open("wb"), stderr=subprocess.STDOUT, cwd=ROOT,
                                   env=dict(os.environ, PYTHONPATH=str(ROOT)), start_new_session=True)
        base = f"http://127.0.0.1:{gport}"
        _wait_gateway(base, gateway, glog, 60)
        print(f"\nready: gateway {base}/v1 (OpenAI-compatible), models: {', '.join(models)} + alias auto")
        print(f"  curl -s {base}/v1/chat/completions -H 'content-type: application/json' "
              f"-d '{{\"model\":\"auto\",\"messages\":[{{\"role\":\"user\",\"content\":\"sum a3 b8 c5\"}}]}}'")
        if args.demo:
            _demo(base)
        if not args.exit:
            print("\nserving; Ctrl-C to stop", flush=True)
            while gateway.poll() is None:
                time.sleep(1)
            print(f"gateway exited with {gateway.returncode} (log: {glog})", file=sys.stderr)
            return 1
        return 0
    except (KeyboardInterrupt, _Stop):
        print("\nstopping ...", flush=True)
        return 0
    finally:
        # A second Ctrl-C or SIGTERM (a user pressing Ctrl-C twice, a supervisor repeating its
        # signal) must not cut the cleanup short and orphan the servers: ignore both until done.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            if gateway is not None and gateway.poll() is None:
                try:
                    os.killpg(gateway.pid, signal.SIGTERM)
                    gateway.wait(15)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    os.killpg(gateway.pid, signal.SIGKILL)
            for s in servers:
                s.stop()
            print("stopped: gateway and vLLM servers", flush=True)
        finally:
            signal.signal(signal.SIGTERM, old)
            signal.signal(signal.SIGINT, old_int)
