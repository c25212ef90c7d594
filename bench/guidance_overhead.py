"""Decode-time cost of the guidance plugin on a vLLM CPU server, at batch 1 and 16.

Starts one vLLM server with the plugin (``--logits-processors guidance.plugin:BudgetGuidance``)
and, in interleaved repetitions, sends a batch of B concurrent greedy chat
requests of exactly ``--tokens`` output tokens (``ignore_eos``, ``</think>``
biased away so every token is a thinking token the plugin tracks):

* ``off``: no ``vllm_xargs`` (the plugin's no-op path), or, with
  ``--baseline unloaded``, the same requests on a second server started
  without the plugin (the issue's definition; two server starts);
* ``on``: ``soft`` guidance with a budget far above the output length (the
  full per-step tracking and the Gamma-CDF reweighting at every line start
  run, but thinking is not cut short, so both sides decode the same count).

``slowdown_bB = throughput_off / throughput_on - 1`` (median over the
back-to-back off/on pairs); ``cpu_slowdown_bB``: the same for CPU seconds per
token of the server's process tree (less sensitive to other load on a shared
machine). The printed tok/s columns are plain medians.

    python bench/guidance_overhead.py [--model-dir testbed/models/NAME] [--reps 5] [--json]

Default model: the tiny random Qwen2 of the integration tests (decode steps are
very cheap, so the plugin's share is at its largest). With ``--json`` the last
line is one JSON object with ``slowdown_b1``, ``slowdown_b16`` and the raw figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import free_port, spawn, stop, wait_http  # noqa: E402

ENV = {"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "nobind",
       "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def start(model_dir: Path, plugin: bool, log: Path) -> tuple[str, object]:
    port = free_port()
    args = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
            "--served-model-name", "m", "--port", str(port), "--host", "127.0.0.1",
            "--reasoning-parser", "deepseek_r1", "--max-model-len", "1024", "--dtype", "float32",
            "--max-num-seqs", "16", "--enforce-eager"]
    from guidance import entry_point_installed, server_args

    if plugin:
        args += server_args()
    elif entry_point_installed():
        raise SystemExit("--baseline unloaded: the plugin's entry point is installed, so every server loads it")
    proc = spawn(args, log, ENV)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 900, proc, log)
    except BaseException:
        stop(proc)
        raise
    return f"http://127.0.0.1:{port}", proc


def tree_cpu(proc) -> float:
    """CPU seconds (user + system) of a server process and all its children so far."""
    import psutil

    try:
        root = psutil.Process(proc.pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def run_batch(client, url: str, batch: int, tokens: int, end_id: int, xargs: dict | None) -> tuple[float, int]:
    """(tokens per second, tokens) for ``batch`` concurrent requests of ``tokens`` output tokens each."""
    body = {"model": "m", "messages": [{"role": "user", "content": "sum a=3 b=8 c=5 d=9"}],
            "max_tokens": tokens, "min_tokens": tokens, "ignore_eos": True, "temperature": 0.0,
            "logit_bias": {str(end_id): -100}}
    if xargs:
        body["vllm_xargs"] = xargs

    def one(_: int) -> int:
        r = client.post(f"{url}/v1/chat/completions", json=body, timeout=600)
        r.raise_for_status()
        return r.json()["usage"]["completion_tokens"]

    t0 = time.perf_counter()
    with ThreadPoolExecutor(batch) as ex:
        done = sum(ex.map(one, range(batch)))
    return done / (time.perf_counter() - t0), done


def micro(model_dir: Path, steps: int = 2000) -> dict[str, float]:
    """In-process CPU microseconds per ``GuidanceV1.apply`` step, 16 tracked rows, 1 torch thread."""
    from types import SimpleNamespace

    import torch
    from transformers import AutoTokenizer

    from guidance.v1 import GuidanceV1
    from guidance.vocab import load_model, vocab_from_texts

    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    texts = [tok.decode([i]) for i in range(len(tok))]
    vocab = vocab_from_texts(texts, tok.convert_tokens_to_ids("<think>"), tok.convert_tokens_to_ids("</think>"))
    g = GuidanceV1(vocab, load_model(vocab, "cpu"), "cpu")
    nl, a = tok.encode("\n", add_special_tokens=False)[0], tok.encode("a", add_special_tokens=False)[0]
    outs: list[list[int]] = [[] for _ in range(16)]
    xargs = {"think_budget": 100000, "think_mode": 1}
    g.update_state(SimpleNamespace(removed=[], moved=[], added=[
        (i, SimpleNamespace(extra_args=xargs), [a, vocab.start_id, nl], outs[i]) for i in range(16)]))
    logits = torch.randn(16, len(texts))
    res = {}
    with torch.inference_mode():
        for token, name in ((a, "us_cpu_per_step_midline"), (nl, "us_cpu_per_step_all_line_starts")):
            c0 = time.process_time()
            for _ in range(steps):
                for o in outs:
                    o.append(token)
                g.apply(logits)
            res[name] = round((time.process_time() - c0) / steps * 1e6, 1)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model-dir", type=Path, default=None, help="model folder (default: tiny random model)")
    ap.add_argument("--tokens", type=int, default=128, help="output tokens per request")
    ap.add_argument("--reps", type=int, default=5, help="interleaved repetitions per batch size")
    ap.add_argument("--baseline", choices=("noxargs", "unloaded"), default="noxargs")
    ap.add_argument("--micro", action="store_true", help="only the in-process apply() cost (no server)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if a.tokens < 8 or a.reps < 1:
        print("--tokens: >= 8; --reps: >= 1", file=sys.stderr)
        return 2
    import httpx
    from transformers import AutoTokenizer

    model_dir = a.model_dir
    if model_dir is None:
        from tests.integration.tiny_model import build_tiny_model

        model_dir = build_tiny_model(ROOT / ".thinkgate" / "test-models" / "tiny")
    if a.micro:
        res = micro(model_dir)
        for k, v in res.items():
            print(f"{k:>34} {v:8.1f}")
        if a.json:
            print(json.dumps({"model": str(model_dir), **res}))
        return 0
    end_id = AutoTokenizer.from_pretrained(str(model_dir)).convert_tokens_to_ids("</think>")
    logdir = Path(tempfile.mkdtemp(prefix="guidance-bench-"))
    on_xargs = {"think_budget": 100 * a.tokens, "think_mode": 1, "think_strength": 1.0}
    servers = {"on": start(model_dir, True, logdir / "plugin.log")}
    servers["off"] = servers["on"] if a.baseline == "noxargs" else start(model_dir, False, logdir / "plain.log")
    res: dict[str, dict[str, list[float]]] = {}
    try:
        with httpx.Client() as client:
            for batch in (1, 16):
                run_batch(client, servers["on"][0], batch, 16, end_id, on_xargs)  # warm-up
                run_batch(client, servers["off"][0], batch, 16, end_id, None)
                runs: dict[str, list[float]] = {"off": [], "on": [], "cpu_ms_per_tok_off": [],
                                                "cpu_ms_per_tok_on": []}
                for _ in range(a.reps):
                    for side, xargs in (("off", None), ("on", on_xargs)):
                        url, proc = servers[side]
                        c0 = tree_cpu(proc)
                        tps, n = run_batch(client, url, batch, a.tokens, end_id, xargs)
                        runs[side].append(tps)
                        runs[f"cpu_ms_per_tok_{side}"].append(1000 * (tree_cpu(proc) - c0) / n)
                res[f"b{batch}"] = runs
    finally:
        for _, proc in {id(v[1]): v for v in servers.values()}.values():
            stop(proc)
    out: dict[str, object] = {"model": str(model_dir), "tokens": a.tokens, "reps": a.reps, "baseline": a.baseline}
    print(f"{'batch':>5} {'off tok/s':>10} {'on tok/s':>10} {'slowdown':>9} {'cpu slowdown':>13}")
    for key, runs in res.items():
        off, on = statistics.median(runs["off"]), statistics.median(runs["on"])
        # Median of the per-repetition ratios: each off/on pair ran back to back, so a burst of other
        # work on this shared machine spoils one pair instead of shifting one side's median.
        slow = statistics.median(f / o for f, o in zip(runs["off"], runs["on"], strict=True)) - 1
        # CPU time per token of the server's process tree: less sensitive than wall time to other load.
        cpu = statistics.median(o / f for f, o in zip(runs["cpu_ms_per_tok_off"], runs["cpu_ms_per_tok_on"],
                                                       strict=True)) - 1
        out[f"slowdown_{key}"] = round(slow, 4)
        out[f"cpu_slowdown_{key}"] = round(cpu, 4)
        out[f"tok_s_off_{key}"], out[f"tok_s_on_{key}"] = round(off, 1), round(on, 1)
        out[f"runs_{key}"] = {k: [round(x, 3) for x in v] for k, v in runs.items()}
        print(f"{key[1:]:>5} {off:10.1f} {on:10.1f} {slow:9.2%} {cpu:13.2%}")
    if a.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
