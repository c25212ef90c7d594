"""Proxy overhead: direct-to-backend vs through the gateway, side by side in one run.

Starts the instant backend (bench/instant_backend.py) and a gateway in front of
it as separate processes, then drives both with the same aiohttp load
generator: non-stream and stream, concurrency 1, 32 and 128.

    python bench/proxy_overhead.py [--requests-c1 400] [--requests 2000] [--json]

With ``--json`` the last line is one JSON object with ``added_p50_ms_c1``,
``added_p99_ms_c1``, ``throughput_ratio_c128`` (non-stream) and the same keys
suffixed ``_stream``, plus ``gateway_cpu_us_per_req``,
``backend_cpu_us_per_req`` and ``client_cpu_us_per_req`` (the load generator):
process CPU time per non-stream request through the gateway, which depends far
less on what else the machine is running than wall-clock figures do; and
``load_avg_1m_start``/``load_avg_1m_end`` (the machine's load around the run,
to be quoted next to the figures).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parents[1]
BODY = {"model": "instant", "messages": [{"role": "user", "content": "What is 2 + 2?"}], "max_tokens": 16}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


async def one(session: aiohttp.ClientSession, url: str, stream: bool) -> float:
    body = dict(BODY, stream=stream)
    t = time.perf_counter()
    async with session.post(url, json=body) as r:
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}: {await r.text()}")
        await r.read()
    return time.perf_counter() - t


async def run_load(url: str, n: int, conc: int, stream: bool) -> tuple[list[float], float]:
    conn = aiohttp.TCPConnector(limit=conc, force_close=False)
    async with aiohttp.ClientSession(connector=conn) as session:
        for _ in range(min(20, n)):  # warm connections and code paths
            await one(session, url, stream)
        lat: list[float] = []
        todo = iter(range(n))

        async def worker() -> None:
            for _ in todo:
                lat.append(await one(session, url, stream))

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conc)))
        return lat, n / (time.perf_counter() - t0)


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description="Gateway overhead vs direct, side by side.")
    ap.add_argument("--requests-c1", type=int, default=400)
    ap.add_argument("--requests", type=int, default=2000, help="requests per run at concurrency 32 and 128")
    ap.add_argument("--rounds", type=int, default=2, help="alternate direct/gateway this many times, keep best")
    ap.add_argument("--gateway-workers", type=int, default=1, help="thinkgate serve --workers")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    bport, gport = free_port(), free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cfg = Path(tempfile.mkdtemp()) / "bench.toml"
    cfg.write_text(
        f'[gateway]\nport = {gport}\nhealth_interval_s = 30\n[router]\ndefault_thinking_budget = 64\n'
        f'[[backends]]\nname = "instant"\nurl = "http://127.0.0.1:{bport}"\nmodel = "instant"\n'
        'price_input_per_m = 0.1\nprice_output_per_m = 0.4\n'
    )
    procs = [
        subprocess.Popen([sys.executable, "-m", "bench.instant_backend", "--port", str(bport)], env=env, cwd=ROOT),
        subprocess.Popen([sys.executable, "-m", "thinkgate.cli", "serve", "--config", str(cfg),
                          "--workers", str(args.gateway_workers)], env=env, cwd=ROOT),
    ]
    try:
        wait_http(f"http://127.0.0.1:{bport}/health")
        wait_http(f"http://127.0.0.1:{gport}/readyz")
        direct = f"http://127.0.0.1:{bport}/v1/chat/completions"
        gateway = f"http://127.0.0.1:{gport}/v1/chat/completions"
        rows = []
        result: dict[str, float] = {}
        gw_proc, be_proc = psutil.Process(procs[1].pid), psutil.Process(procs[0].pid)

        def cpu(p: psutil.Process) -> float:
            # The gateway's workers are children of the serve process: count them all.
            total = 0.0
            for q in [p, *p.children(recursive=True)]:
                t = q.cpu_times()
                total += t.user + t.system
            return total

        def own_cpu(p: psutil.Process) -> float:
            t = p.cpu_times()  # this process alone: the backend and the gateway are its children
            return t.user + t.system

        cpu_n = 0
        cpu_gw = cpu_be = cpu_cl = 0.0
        me = psutil.Process()
        load_start = os.getloadavg()[0]
        for stream in (False, True):
            sfx = "_stream" if stream else ""
            for conc in (1, 32, 128):
                n = args.requests_c1 if conc == 1 else args.requests
                best: dict[str, tuple[list[float], float]] = {}
                for _ in range(args.rounds):
                    for name, url in (("direct", direct), ("gateway", gateway)):
                        g0, b0, c0 = cpu(gw_proc), cpu(be_proc), own_cpu(me)
                        lat, rps = asyncio.run(run_load(url, n, conc, stream))
                        if name == "gateway" and not stream:
                            cpu_gw += cpu(gw_proc) - g0
                            cpu_be += cpu(be_proc) - b0
                            cpu_cl += own_cpu(me) - c0
                            cpu_n += n + min(20, n)
                        if name not in best or rps > best[name][1]:
                            best[name] = (lat, rps)
                d, g = best["direct"], best["gateway"]
                row = {"stream": stream, "conc": conc, "direct_p50_ms": pct(d[0], .5), "gw_p50_ms": pct(g[0], .5),
                       "direct_p99_ms": pct(d[0], .99), "gw_p99_ms": pct(g[0], .99),
                       "direct_rps": d[1], "gw_rps": g[1], "ratio": g[1] / d[1]}
                rows.append(row)
                if conc == 1:
                    result[f"added_p50_ms_c1{sfx}"] = round(row["gw_p50_ms"] - row["direct_p50_ms"], 3)
                    result[f"added_p99_ms_c1{sfx}"] = round(row["gw_p99_ms"] - row["direct_p99_ms"], 3)
                result[f"throughput_ratio_c{conc}{sfx}"] = round(row["ratio"], 3)
        result["gateway_cpu_us_per_req"] = round(cpu_gw / cpu_n * 1e6, 1)
        result["backend_cpu_us_per_req"] = round(cpu_be / cpu_n * 1e6, 1)
        result["client_cpu_us_per_req"] = round(cpu_cl / cpu_n * 1e6, 1)  # the load generator itself
        result["gateway_workers"] = args.gateway_workers
        result["load_avg_1m_start"] = round(load_start, 2)
        result["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
        print(f"{'mode':<7}{'conc':>5}{'direct p50':>12}{'gw p50':>9}{'direct p99':>12}{'gw p99':>9}"
              f"{'direct rps':>12}{'gw rps':>9}{'ratio':>7}")
        for r in rows:
            print(f"{'stream' if r['stream'] else 'plain':<7}{r['conc']:>5}{r['direct_p50_ms']:>12.2f}"
                  f"{r['gw_p50_ms']:>9.2f}{r['direct_p99_ms']:>12.2f}{r['gw_p99_ms']:>9.2f}"
                  f"{r['direct_rps']:>12.0f}{r['gw_rps']:>9.0f}{r['ratio']:>7.2f}")
        print(f"CPU per non-stream request through the gateway: gateway {result['gateway_cpu_us_per_req']} us, "
              f"backend {result['backend_cpu_us_per_req']} us; load average (1 min) "
              f"{result['load_avg_1m_start']} -> {result['load_avg_1m_end']}")
        if args.json:
            print(json.dumps(result))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)


if __name__ == "__main__":
    main()
