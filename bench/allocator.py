"""Allocator and ledger speed: MCKP DP and LP-greedy, one online decision, ledger ops/s.

Usage: python bench/allocator.py [--json] [--concurrency 32] [--pairs 3000]

Targets (issue 5): DP 1,000 classes x 8 options at 10,000 cost units <= 1 s;
LP-greedy 10,000 x 16 <= 30 ms; one online decision <= 50 us; reserve+settle
pairs per second from one process >= 2,000 on SQLite and >= 5,000 on Redis.
Timings are medians of repeated runs, in wall time and in CPU time of this
process (``*_cpu_*``: what an idle core would take; they differ on a loaded box). The ledger figures are measured with
``--concurrency`` requests in flight (as a gateway process has), also with one
request at a time (``*_serial``), and per CPU-second of the client process
(``*_per_client_cpu_s``: what it sustains on a core of its own, which matters on
a loaded machine); for Redis also redis-server's CPU per pair
(``redis_server_cpu_us_per_pair``, from /proc: the two processes share the
cores). A throwaway redis-server is started for the Redis figures (they are
null when the binary is missing).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from budget.ledger import Cost  # noqa: E402
from budget.mckp import solve_exact, solve_greedy  # noqa: E402
from budget.online import DualPacer  # noqa: E402


def median_time(fn, repeat):
    """Median wall time and median CPU time of this process (the latter is what an idle core would take)."""
    walls, cpus = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus)


def bench_dp(repeat):
    rng = np.random.default_rng(0)
    v = rng.random((1000, 8))
    c = rng.integers(1, 21, (1000, 8)).astype(float)
    cap = 10_000.0  # 10,000 cost units of 1
    return median_time(lambda: solve_exact(v, c, cap, unit=1.0), repeat)


def bench_greedy(repeat):
    rng = np.random.default_rng(1)
    v = rng.random((10_000, 16))
    c = rng.random((10_000, 16)) * 10
    cap = float(c.min(axis=1).sum() * 2)
    solve_greedy(v, c, cap)  # warm caches
    wall, cpu = median_time(lambda: solve_greedy(v, c, cap), repeat)
    return wall * 1e3, cpu * 1e3


def bench_online(n=20_000):
    rng = np.random.default_rng(2)
    opts = [(rng.random(8).tolist(), (rng.random(8) * 2).tolist()) for _ in range(256)]
    pacer = DualPacer(budget=1000.0, horizon=n, eta=0.01, lam0=0.3, floor_cost=0.01)
    state = pacer.initial()
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(n):
        vals, costs = opts[i & 255]
        d = pacer.decide(state, vals, costs)
        state = pacer.update(state, d.cost)
    return (time.perf_counter() - t0) / n * 1e6, (time.process_time() - c0) / n * 1e6


def proc_cpu_s(pid):
    """User+system CPU seconds of process ``pid`` (Linux /proc), or None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def ledger_pairs(store, pairs, concurrency, server_pid=None):
    t, _ = await store.add_tenant(f"bench{time.time_ns()}", budget_usd=1e6, budget_tokens=None, window="day")
    cost = Cost(usd=0.001, tokens=100)

    async def worker(n):
        for _ in range(n):
            r = await store.reserve(t.id, cost)
            await store.settle(r.id, cost)

    await worker(20)  # warm up connections and scripts
    per = pairs // concurrency
    s0 = None if server_pid is None else proc_cpu_s(server_pid)
    t0, c0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(per) for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    s1 = None if s0 is None else proc_cpu_s(server_pid)
    n = per * concurrency
    # Also per CPU-second of this (client) process: what a core of its own would
    # sustain; and the server's CPU per pair (clock ticks: coarse, 10 ms).
    server_us = None if s0 is None or s1 is None else (s1 - s0) / n * 1e6
    return n / wall, n / max(cpu, 1e-9), server_us


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def bench_sqlite(pairs, concurrency):
    from budget.sqlite_store import SQLiteLedger

    with tempfile.TemporaryDirectory() as d:
        store = SQLiteLedger(str(Path(d) / "bench.db"))
        try:
            par = await ledger_pairs(store, pairs, concurrency)
            ser = await ledger_pairs(store, pairs // 2, 1)
        finally:
            await store.close()
    return par, ser


async def bench_redis(pairs, concurrency):
    from budget.redis_store import RedisLedger

    exe = shutil.which("redis-server")
    if exe is None:
        return None, None
    with tempfile.TemporaryDirectory() as d:
        port = free_port()
        proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", d, "--save", "",
                                 "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                    break
                except OSError:
                    time.sleep(0.05)
            store = RedisLedger(f"redis://127.0.0.1:{port}/0")
            try:
                par = await ledger_pairs(store, pairs, concurrency, server_pid=proc.pid)
                ser = await ledger_pairs(store, pairs // 2, 1)
            finally:
                await store.close()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    return par, ser


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    ap.add_argument("--pairs", type=int, default=3000, help="reserve+settle pairs per ledger measurement")
    ap.add_argument("--concurrency", type=int, default=32, help="requests in flight for the ledger figures")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    if args.pairs < args.concurrency or args.concurrency < 1:
        ap.error("--pairs: must be >= --concurrency >= 1")
    res = {}
    res["dp_1000x8_s"], res["dp_1000x8_cpu_s"] = bench_dp(max(1, args.repeat // 2))
    res["greedy_10000x16_ms"], res["greedy_10000x16_cpu_ms"] = bench_greedy(args.repeat * 2)
    res["online_decision_us"], res["online_decision_cpu_us"] = bench_online()
    for name, fn in (("sqlite", bench_sqlite), ("redis", bench_redis)):
        par, ser = asyncio.run(fn(args.pairs, args.concurrency))
        res[f"{name}_ops_per_s"] = None if par is None else par[0]
        res[f"{name}_ops_per_s_serial"] = None if ser is None else ser[0]
        res[f"{name}_ops_per_client_cpu_s"] = None if par is None else par[1]
        if name == "redis":
            res["redis_server_cpu_us_per_pair"] = None if par is None else par[2]
    targets = {"dp_1000x8_s": ("<=", 1.0), "greedy_10000x16_ms": ("<=", 30.0), "online_decision_us": ("<=", 50.0),
               "sqlite_ops_per_s": (">=", 2000.0), "redis_ops_per_s": (">=", 5000.0)}
    print(f"{'metric':<28}{'value':>12}  target")
    for k, v in res.items():
        op, goal = targets.get(k, ("", None))
        met = "" if goal is None or v is None else ("ok" if (v <= goal if op == "<=" else v >= goal) else "MISSED")
        shown = "skipped" if v is None else f"{v:.4g}"
        print(f"{k:<28}{shown:>12}  {op} {goal if goal is not None else ''} {met}")
    res["concurrency"] = args.concurrency
    if args.json:
        print(json.dumps(res))


if __name__ == "__main__":
    main()
