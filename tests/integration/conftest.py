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


def write_config(path: Path, port: int, backends: list[tuple], ledger: Path | None = None,
                 admin_key: str | None = None, predictor_path: Path | None = None,
                 router_options: dict | None = None, **router) -> Path:
    """A gateway TOML: ``backends`` are ``(name, url, model)`` at $0.5/$2 per M tokens, or
    ``(name, url, model, price_in, price_out)``; ``router`` keys go to ``[router]`` and
    ``router_options`` to ``[router.options]`` (the strategy's constructor arguments)."""
    lines = [f"ledger_url = \"sqlite:///{ledger or path.with_suffix('.db')}\"\n"]
    if predictor_path is not None:
        lines.append(f'predictor_path = "{predictor_path}"\n')
    lines.append(f"[gateway]\nport = {port}\nhealth_interval_s = 3600\n")
    if admin_key:
        lines.append(f'admin_key = "{admin_key}"\n')
    lines.append("[router]\n")
    lines += [f"{k} = {v!r}\n".replace("'", '"') for k, v in router.items()]
    if router_options:
        lines.append("[router.options]\n")
        lines += [f"{k} = {v!r}\n".replace("'", '"') for k, v in router_options.items()]
    for name, url, model, *prices in backends:
        pin, pout = prices or (0.5, 2.0)
        lines.append(f'[[backends]]\nname = "{name}"\nurl = "{url}"\nmodel = "{model}"\n'
                     f'price_input_per_m = {pin}\nprice_output_per_m = {pout}\n')
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


@pytest.fixture(scope="session")
def testbed_servers(tmp_path_factory):
    """Every testbed model (``testbed/models``) on its own vLLM CPU server, started once per session.

    Yields ``{name: testbed.serve.VllmServer}`` (``.base_url`` ends in ``/v1``,
    ``.port`` for a gateway backend URL). The servers start in parallel (each
    waits on its own start-up) and stay up together: the two tiny models fit
    in memory side by side, and test_testbed_vllm.py and test_routing_vllm.py
    share them instead of paying vLLM's start-up once per file.
    """
    from concurrent.futures import ThreadPoolExecutor

    from testbed.models import list_models
    from testbed.serve import VllmServer

    _need_vllm()
    names = list_models()
    if not names:
        pytest.skip("no testbed models under testbed/models")
    d = tmp_path_factory.mktemp("vllm-testbed")
    servers = {n: VllmServer(n, log_path=d / f"{n}.log") for n in names}
    try:
        with ThreadPoolExecutor(len(servers)) as ex:
            for f in [ex.submit(s.start, VLLM_START_TIMEOUT) for s in servers.values()]:
                f.result()
        yield servers
    finally:
        for s in servers.values():
            s.stop()


TESTBED_PREDICTOR = ROOT / "artifacts" / "testbed-structural.pkl"


@pytest.fixture(scope="session")
def testbed_gateway(testbed_servers, tmp_path_factory):
    """``thinkgate serve`` in front of tg-small and tg-large, strategy ``tiers`` escalating to the top tier.

    Prices are the testbed stack's (``testbed.stack.PRICES``: tg-large 5x
    tg-small); the predictor is the shipped artifact trained on the committed
    headline train table. Yields ``{"gw": url, "dir": folder, "log": path}``.
    See tests/integration/test_routing_vllm.py for why this strategy.
    """
    from testbed.stack import PRICES

    need = ("tg-small", "tg-large")
    if any(n not in testbed_servers for n in need):
        pytest.skip(f"needs testbed models {need}, found {sorted(testbed_servers)}")
    if not TESTBED_PREDICTOR.is_file():
        pytest.skip(f"predictor artifact {TESTBED_PREDICTOR} is missing")
    d = tmp_path_factory.mktemp("gw-testbed")
    port = free_port()
    backends = [(f"{n}-0", f"http://127.0.0.1:{testbed_servers[n].port}", n, *PRICES[n]) for n in need]
    cfg = write_config(d / "tg.toml", port, backends, ledger=d / "ledger.db", predictor_path=TESTBED_PREDICTOR,
                       router_options={"escalate": "top", "target_share": 0.5}, strategy="tiers")
    gw = start_gateway(cfg, port, d / "gw.log")
    yield {"gw": f"http://127.0.0.1:{port}", "dir": d, "log": d / "gw.log"}
    stop(gw)
