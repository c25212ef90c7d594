"""Session-scoped real servers for integration tests: one vLLM CPU server per model, one gateway.

vLLM takes a minute or more to start on 2 cores, so each server starts once
per test session and every integration test shares it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, free_port, instant_backend, spawn, stop, wait_http

VLLM_START_TIMEOUT = float(os.environ.get("THINKGATE_TEST_VLLM_TIMEOUT", "900"))


def _need_vllm() -> None:
    try:
        import vllm  # noqa: F401
    except ImportError:
        pytest.skip("vllm is not installed (pip install -e '.[vllm]')")


def start_vllm(model_dir: Path, name: str, log: Path, extra: list[str] | None = None) -> tuple[str, object]:
    """Start ``python -m vllm.entrypoints.openai.api_server`` on a free port; return (url, process)."""
    port = free_port()
    args = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
            "--served-model-name", name, "--port", str(port), "--host", "127.0.0.1",
            "--reasoning-parser", "deepseek_r1", "--max-model-len", "2048", "--dtype", "float32",
            "--max-num-seqs", "16", "--enforce-eager", *(extra or [])]
    # nobind: several servers share 2 cores; vLLM's default binds each one to core 0.
    env = {"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "nobind",
           "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = spawn(args, log, env)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", VLLM_START_TIMEOUT, proc, log)
    except BaseException:
        stop(proc)
        raise
    return f"http://127.0.0.1:{port}", proc


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from tests.integration.tiny_model import build_tiny_model

    cache = ROOT / ".thinkgate" / "test-models" / "tiny"
    try:
        return build_tiny_model(cache)
    except OSError:
        return build_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def vllm_tiny(tiny_model_dir, tmp_path_factory):
    """A vLLM CPU server for the tiny random model, served as ``tiny``.

    ``THINKGATE_TEST_VLLM_TINY_URL`` points the tests at an already running
    server instead (development loop; CI always starts its own).
    """
    external = os.environ.get("THINKGATE_TEST_VLLM_TINY_URL")
    if external:
        yield external.rstrip("/")
        return
    _need_vllm()
    log = tmp_path_factory.mktemp("vllm") / "vllm-tiny.log"
    url, proc = start_vllm(tiny_model_dir, "tiny", log)
    yield url
    stop(proc)


def write_config(path: Path, port: int, backends: list[tuple[str, str, str]], ledger: Path | None = None,
                 admin_key: str | None = None, **router) -> Path:
    lines = [f"ledger_url = \"sqlite:///{ledger or path.with_suffix('.db')}\"\n",
             f"[gateway]\nport = {port}\nhealth_interval_s = 3600\n"]
    if admin_key:
        lines.append(f'admin_key = "{admin_key}"\n')
    lines.append("[router]\n")
    lines += [f"{k} = {v!r}\n".replace("'", '"') for k, v in router.items()]
    for name, url, model in backends:
        lines.append(f'[[backends]]\nname = "{name}"\nurl = "{url}"\nmodel = "{model}"\n'
                     'price_input_per_m = 0.5\nprice_output_per_m = 2.0\n')
    path.write_text("".join(lines))
    return path


def start_gateway(cfg: Path, port: int, log: Path) -> object:
    proc = spawn([sys.executable, "-m", "thinkgate.cli", "serve", "--config", str(cfg)], log)
    wait_http(f"http://127.0.0.1:{port}/healthz", 60, proc, log)
    return proc


ADMIN_KEY = "test-admin-key"


@pytest.fixture(scope="session")
def gateway_stack(vllm_tiny, tmp_path_factory):
    """Gateway (``thinkgate serve``) in front of vLLM plus a second replica that dies before the tests.

    The second replica passes the gateway's start-up health check and is then
    killed, so only the request path can find out (the health loop runs hourly
    in this config): the failover test relies on that. Budgets live in a
    SQLite ledger; the admin API is enabled with ``ADMIN_KEY``.
    """
    d = tmp_path_factory.mktemp("gw")
    doomed_port = free_port()
    doomed = instant_backend(doomed_port, d / "doomed.log", model="tiny")
    port = free_port()
    cfg = write_config(d / "tg.toml", port, [("tiny-0", vllm_tiny, "tiny"),
                                            ("tiny-doomed", f"http://127.0.0.1:{doomed_port}", "tiny")],
                       ledger=d / "ledger.db", admin_key=ADMIN_KEY, default_thinking_budget=16)
    gw = start_gateway(cfg, port, d / "gw.log")
    stop(doomed)
    yield {"gw": f"http://127.0.0.1:{port}", "vllm": vllm_tiny, "cfg": cfg, "dir": d, "admin_key": ADMIN_KEY}
    stop(gw)
