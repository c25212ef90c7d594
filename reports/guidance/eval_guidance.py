"""Evaluate decode-time budget guidance on the testbed models (vLLM CPU, greedy) and write the report data.

Per model: one vLLM server with the plugin loaded; an unlimited pass over a
seeded sample of the test split gives the median thinking length ``M``; then,
for budgets ``round(f * M)`` (``--fractions``, default 25/50/75%), one pass per
mode:

* ``hard``: vLLM's native ``thinking_token_budget`` only (forced ``</think>``);
* ``soft``: guidance only (``vllm_xargs`` ``think_mode=1``);
* ``soft+hard``: guidance plus the native cap (``think_mode=2``).

Thinking tokens are counted from ``return_token_ids``: generated tokens up to
and including ``</think>`` (the gateway's count; the prompt's ``\\n`` after
``<think>`` is not included, so a native budget ``B`` yields exactly ``B``).
The prior each request sends (``--prior``): ``model`` (default) is a Gamma
moment-matched per difficulty to ``log(thinking + 1)`` of the model's own
unlimited runs on a separate validation sample (what the predictors' length
model learns from this model's outcome records); ``traces`` is the
per-difficulty Gamma ``predictors/remaining_length.py`` fitted on worked solutions.

    python reports/guidance/eval_guidance.py --model tg-small --limit 120 --out reports/guidance/results.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

MODES = ("hard", "soft", "soft+hard")


HORIZON = 0  # set from --horizon in main(); 1 = next-line horizon for the soft modes


def body_for(question: str, mode: str | None, budget: int | None, prior: tuple[float, float],
             strength: float, max_tokens: int, prefill: str = "") -> dict[str, Any]:
    """The chat body for one request (``mode=None``: unlimited, no guidance).

    ``prefill``: text the assistant's thinking starts with (after ``<think>\n``),
    sent as a continued assistant message, identical for every mode.
    """
    from guidance.xargs import uses_native_cap, vllm_xargs_for

    messages = [{"role": "user", "content": question}]
    body: dict[str, Any] = {"max_tokens": max_tokens, "temperature": 0.0, "return_token_ids": True,
                            "skip_special_tokens": False}
    if prefill:
        messages.append({"role": "assistant", "content": "<think>\n" + prefill})
        body.update(add_generation_prompt=False, continue_final_message=True)
    body["messages"] = messages
    if mode is not None and budget is not None:
        if uses_native_cap(mode):
            body["thinking_token_budget"] = budget
        xargs = vllm_xargs_for(mode, budget, prior, strength, horizon=HORIZON)
        if xargs:
            body["vllm_xargs"] = xargs
    return body


def thinking_tokens(ids: list[int], end_id: int) -> int:
    """Generated tokens up to and including ``</think>`` (all of them if thinking never ended)."""
    return ids.index(end_id) + 1 if end_id in ids else len(ids)


def summarize(rows: list[dict[str, Any]], budget: int | None) -> dict[str, Any]:
    """Accuracy, mean/p95 thinking tokens, share over budget and within 1.1 x budget."""
    th = sorted(r["thinking"] for r in rows)
    p95 = th[min(len(th) - 1, int(round(0.95 * (len(th) - 1))))]
    out = {"n": len(rows), "accuracy": round(statistics.mean(r["correct"] for r in rows), 4),
           "mean_thinking": round(statistics.mean(th), 1), "p95_thinking": p95,
           "ended_thinking": round(statistics.mean(r["ended"] for r in rows), 4)}
    if budget is not None:
        out["over_budget"] = round(statistics.mean(r["thinking"] > budget for r in rows), 4)
        out["within_1.1x"] = round(statistics.mean(r["thinking"] <= 1.1 * budget for r in rows), 4)
    return out


def fit_priors(rows: list[dict[str, Any]], fallback: dict[int, tuple[float, float]]) -> dict[int, tuple[float, float]]:
    """Per-difficulty Gamma (shape, rate) moment-matched to ``log(thinking + 1)``; ``fallback`` where < 2 rows."""
    import math

    from guidance.xargs import gamma_prior_from_lognormal

    out = dict(fallback)
    by: dict[int, list[float]] = {}
    for r in rows:
        by.setdefault(r["difficulty"], []).append(math.log1p(r["thinking"]))
    for d, ys in by.items():
        if len(ys) >= 2:
            out[d] = gamma_prior_from_lognormal(statistics.mean(ys), max(statistics.pstdev(ys), 0.03))
    return out


def run(url: str, name: str, problems: list[Any], mode: str | None, budget: int | None,
        priors: dict[int, tuple[float, float]], strength: float, end_id: int, max_tokens: int,
        concurrency: int, prefill: str = "", prefill_tokens: int = 0) -> list[dict[str, Any]]:
    """One graded pass; one row per problem."""
    import httpx

    from testbed import tasks

    with httpx.Client(timeout=900) as client:
        def one(p: Any) -> dict[str, Any]:
            body = body_for(p.text, mode, budget, priors[p.difficulty], strength, max_tokens, prefill)
            body["model"] = name
            r = client.post(f"{url}/chat/completions", json=body)
            r.raise_for_status()
            ch = r.json()["choices"][0]
            ids = ch["token_ids"]
            text = (ch["message"].get("content") or "")
            return {"difficulty": p.difficulty, "correct": tasks.grade(p, text),
                    "thinking": prefill_tokens + thinking_tokens(ids, end_id), "ended": end_id in ids}

        with ThreadPoolExecutor(concurrency) as ex:
            return list(ex.map(one, problems))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", action="append", required=True, help="testbed model name (repeatable)")
    ap.add_argument("--model-dir", type=Path, default=None,
                    help="serve this folder instead of testbed/models/NAME (one --model only)")
    ap.add_argument("--limit", type=int, default=120)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split", choices=("test", "val"), default="test",
                    help="split of the evaluated problems; 'val' (seed --seed + 1000, minus the prior-fitting "
                         "sample) is for choosing settings such as the strength without touching the test split")
    ap.add_argument("--fractions", default="0.25,0.5,0.75")
    ap.add_argument("--strength", type=float, default=1.0)
    ap.add_argument("--max-tokens", type=int, default=700)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--prefill", default="",
                    help="thinking prefix for every request (e.g. 'a': skip the model's no-thinking shortcut)")
    ap.add_argument("--horizon", type=int, choices=(0, 1), default=0,
                    help="0: Budget Guidance's remaining-thinking horizon; 1: next line only")
    ap.add_argument("--prior", choices=("model", "traces"), default="model")
    ap.add_argument("--val-limit", type=int, default=48, help="validation problems for --prior model")
    ap.add_argument("--strengths", default=None, help="comma-separated strengths (overrides --strength)")
    ap.add_argument("--base-url", default=None, help="use a running server (with the plugin) instead")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    global HORIZON
    HORIZON = a.horizon
    from transformers import AutoTokenizer

    from testbed import tasks
    from testbed.models import model_path
    from testbed.serve import VllmServer

    fracs = [float(x) for x in a.fractions.split(",")]
    art = json.loads((ROOT / "guidance" / "remaining_length.json").read_text())
    trace_priors = {int(d): (p[0], p[1]) for d, p in art["source"]["priors_by_difficulty"].items()}
    strengths = [float(x) for x in a.strengths.split(",")] if a.strengths else [a.strength]
    if a.split == "test":
        problems = tasks.sample_problems(a.limit, "test", a.seed)
    else:  # disjoint from the validation problems the priors are fitted on
        held = {p.text for p in tasks.sample_problems(a.val_limit, "val", a.seed)}
        problems = [p for p in tasks.sample_problems(a.limit + a.val_limit, "val", a.seed + 1000)
                    if p.text not in held][:a.limit]
    results: dict[str, Any] = json.loads(a.out.read_text()) if a.out.exists() else {}
    if a.model_dir is not None and len(a.model) != 1:
        ap.error("--model-dir: needs exactly one --model")
    for name in a.model:
        folder = a.model_dir if a.model_dir is not None else model_path(name)
        tok = AutoTokenizer.from_pretrained(str(folder))
        end_id = tok.convert_tokens_to_ids("</think>")
        npre = len(tok.encode(a.prefill, add_special_tokens=False))
        srv = None
        if a.base_url:
            url = a.base_url.rstrip("/")
        else:
            from guidance import server_args

            srv = VllmServer(name, model_dir=a.model_dir, extra_args=["--enforce-eager", "--max-num-seqs", str(a.concurrency),
                                               *server_args()]).start(timeout_s=900)
            url = srv.base_url
        try:
            t0 = time.time()
            priors = trace_priors
            if a.prior == "model":
                val = tasks.sample_problems(a.val_limit, "val", a.seed)
                vrows = run(url, name, val, None, None, trace_priors, 1.0, end_id, a.max_tokens, a.concurrency,
                            a.prefill, npre)
                priors = fit_priors(vrows, trace_priors)
            unl = run(url, name, problems, None, None, priors, 1.0, end_id, a.max_tokens, a.concurrency,
                      a.prefill, npre)
            median = statistics.median(r["thinking"] for r in unl)
            for strength in strengths:
                res: dict[str, Any] = {"median_thinking": median, "n": len(problems), "strength": strength,
                                       "prior": a.prior, "prefill": a.prefill, "split": a.split,
                                       "unlimited": summarize(unl, None), "cells": []}
                print(f"{name}: unlimited {res['unlimited']} median {median}", flush=True)
                for f in fracs:
                    budget = max(1, round(f * median))
                    for mode in MODES:
                        if mode == "hard" and strength != strengths[0]:
                            res["cells"].append(next(c for c in results[f"{name}@s{strengths[0]:g}h{a.horizon}"]["cells"]
                                                     if c["mode"] == "hard" and c["budget"] == budget))
                            continue  # hard ignores the strength: run it once
                        rows = run(url, name, problems, mode, budget, priors, strength, end_id, a.max_tokens,
                                   a.concurrency, a.prefill, npre)
                        cell = {"fraction": f, "budget": budget, "mode": mode, **summarize(rows, budget)}
                        res["cells"].append(cell)
                        print(json.dumps(cell), flush=True)
                res["wall_s"] = round(time.time() - t0, 1)
                res["horizon"] = a.horizon
                results[f"{name}@s{strength:g}h{a.horizon}"] = res
        finally:
            if srv is not None:
                srv.stop()
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
