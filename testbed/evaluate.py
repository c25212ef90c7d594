"""Evaluate testbed models: accuracy by difficulty third x thinking budget, thinking lengths, decode speed.

For each model: one greedy pass with unlimited thinking over a seeded sample of
the test split gives the median full thinking length ``M``; then one pass per
budget ``round(f * M)`` for ``f`` in ``--fractions`` (default 0, 25, 50, 75,
100%), each budget sent as vLLM's native ``thinking_token_budget`` through the
chat API (``skip_special_tokens: false``, ``temperature: 0``). Answers are
graded by :func:`testbed.tasks.grade`.

Backends: ``vllm`` starts one CPU server per model (one at a time, killed when
done) unless ``--base-url`` points at a running one; ``hf`` decodes in
transformers with the same budget semantics (no server; for quick checks).

    python -m testbed.evaluate --model tg-small --model tg-large --limit 240 --write-stats
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

from testbed import tasks
from testbed.hf_backend import PROMPT_THINKING_TOKENS, Generation
from testbed.models import STATS_FILE, model_path

__all__ = ["DEFAULT_FRACTIONS", "VllmSampler", "aggregate", "evaluate_model", "main", "run_pass"]

DEFAULT_FRACTIONS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
BINS = ("easy", "medium", "hard")
MAX_TOKENS = 768


class VllmSampler:
    """Chat-completions client for one model on a vLLM OpenAI server (greedy, native thinking budget)."""

    def __init__(self, base_url: str, name: str, tokenizer_file: Path, concurrency: int = 16, seed: int = 0) -> None:
        import httpx
        from tokenizers import Tokenizer

        self.url = base_url.rstrip("/") + "/chat/completions"
        self.name = name
        self.concurrency = concurrency
        self.seed = seed
        self.client = httpx.Client(timeout=600.0)
        # Thinking tokens are counted by re-tokenising the reasoning text: the
        # tokenizer is character level, so this is exact.
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))

    def _one(self, question: str, budget: int | None) -> Generation:
        body: dict[str, Any] = {
            "model": self.name,
            "messages": [{"role": "user", "content": question}],
            "max_tokens": MAX_TOKENS,
            "temperature": 0.0,
            "seed": self.seed,
            "skip_special_tokens": False,
        }
        if budget is not None:
            body["thinking_token_budget"] = budget
        resp = self.client.post(self.url, json=body)
        resp.raise_for_status()
        data = resp.json()
        msg = data["choices"][0]["message"]
        reasoning = msg.get("reasoning") or msg.get("reasoning_content") or ""
        content = msg.get("content") or ""
        n_think = len(self.tokenizer.encode(reasoning, add_special_tokens=False).ids)
        return Generation(
            reasoning=reasoning, content=content, thinking_tokens=n_think,
            completion_tokens=int(data["usage"]["completion_tokens"]),
            forced=budget is not None and n_think + PROMPT_THINKING_TOKENS >= budget,
        )

    def generate(self, questions: list[str], budget: int | None) -> list[Generation]:
        """Greedy completions, ``concurrency`` requests in flight."""
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(lambda q: self._one(q, budget), questions))

    def close(self) -> None:
        """Release the HTTP connection pool."""
        self.client.close()


def run_pass(sampler: Any, problems: list[tasks.Problem], budget: int | None) -> dict[str, Any]:
    """One graded pass at one budget; returns per-problem rows plus wall time and token totals."""
    t0 = time.perf_counter()
    gens = sampler.generate([p.text for p in problems], budget)
    wall = time.perf_counter() - t0
    rows = [
        {"difficulty": p.difficulty, "correct": tasks.grade(p, g.content), "thinking_tokens": g.thinking_tokens,
         "completion_tokens": g.completion_tokens}
        for p, g in zip(problems, gens, strict=True)
    ]
    return {"budget": budget, "rows": rows, "wall_s": wall, "completion_tokens": sum(r["completion_tokens"] for r in rows)}


def aggregate(passes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Pure summary of graded passes keyed by budget label: accuracy per difficulty third and thinking lengths."""
    acc: dict[str, dict[str, float]] = {b: {} for b in BINS}
    mean_think: dict[str, float] = {}
    for label, p in passes.items():
        for b in BINS:
            sel = [r["correct"] for r in p["rows"] if tasks.difficulty_bin(r["difficulty"]) == b]
            acc[b][label] = round(sum(sel) / len(sel), 4) if sel else float("nan")
        mean_think[label] = round(statistics.mean(r["thinking_tokens"] for r in p["rows"]), 1)
    out: dict[str, Any] = {"accuracy": acc, "mean_thinking_tokens": mean_think}
    if "unlimited" in passes:
        rows = passes["unlimited"]["rows"]
        by_d: dict[int, list[int]] = {}
        for r in rows:
            by_d.setdefault(r["difficulty"], []).append(r["thinking_tokens"])
        out["median_thinking_by_difficulty"] = {str(d): statistics.median(v) for d, v in sorted(by_d.items())}
        out["accuracy_by_difficulty"] = {
            str(d): round(statistics.mean(r["correct"] for r in rows if r["difficulty"] == d), 4) for d in sorted(by_d)
        }
    return out


def evaluate_model(
    sampler: Any, problems: list[tasks.Problem], fractions: tuple[float, ...] = DEFAULT_FRACTIONS
) -> dict[str, Any]:
    """Unlimited pass, then one pass per budget fraction of the median full thinking length."""
    passes: dict[str, dict[str, Any]] = {"unlimited": run_pass(sampler, problems, None)}
    median = statistics.median(r["thinking_tokens"] for r in passes["unlimited"]["rows"])
    budgets = {}
    for f in fractions:
        label = f"{round(f * 100)}%"
        budgets[label] = round(f * median)
        passes[label] = run_pass(sampler, problems, budgets[label])
    ordered = {k: passes[k] for k in [*budgets, "unlimited"]}
    summary = aggregate(ordered)
    unl = passes["unlimited"]
    summary.update({
        "n": len(problems),
        "median_thinking_tokens": median,
        "budgets": budgets,
        "batch_decode_tokens_per_s": round(unl["completion_tokens"] / unl["wall_s"], 1),
    })
    # Single-stream decode speed: one long (hardest) problem at a time.
    hard = [p for p in problems if p.difficulty == max(q.difficulty for q in problems)][:3]
    t0 = time.perf_counter()
    toks = sum(g.completion_tokens for p in hard for g in sampler.generate([p.text], None))
    summary["single_stream_tokens_per_s"] = round(toks / (time.perf_counter() - t0), 1)
    return summary


def format_tables(name: str, s: dict[str, Any]) -> str:
    """Markdown tables for the model card."""
    labels = list(s["accuracy"]["easy"])
    head = [f"{lab} ({s['budgets'][lab]})" if lab in s["budgets"] else lab for lab in labels]
    lines = [f"### {name} (n={s['n']}, median full thinking = {s['median_thinking_tokens']} tokens)", "",
             "| difficulty third | " + " | ".join(head) + " |", "|---" * (len(labels) + 1) + "|"]
    for b in BINS:
        lines.append(f"| {b} | " + " | ".join(f"{s['accuracy'][b][lab]:.2f}" for lab in labels) + " |")
    lines.append("| mean thinking tokens | " + " | ".join(f"{s['mean_thinking_tokens'][lab]:.0f}" for lab in labels) + " |")
    lines += ["", "| difficulty | " + " | ".join(s["median_thinking_by_difficulty"]) + " |",
              "|---" * (len(s["median_thinking_by_difficulty"]) + 1) + "|",
              "| median thinking tokens | " + " | ".join(f"{v:g}" for v in s["median_thinking_by_difficulty"].values()) + " |",
              "| accuracy (unlimited) | " + " | ".join(f"{v:.2f}" for v in s["accuracy_by_difficulty"].values()) + " |",
              "", f"decode: {s['single_stream_tokens_per_s']} tokens/s single stream, "
              f"{s['batch_decode_tokens_per_s']} tokens/s batched ({s['n']} requests)", ""]
    return "\n".join(lines)


def _parse_fractions(text: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--fractions: not a comma-separated list of numbers: {text!r}") from None
    if any(v < 0 for v in vals):
        raise argparse.ArgumentTypeError("--fractions: values must be >= 0")
    return vals


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m testbed.evaluate --model NAME [--model NAME] [--limit N] [--json]``."""
    ap = argparse.ArgumentParser(prog="python -m testbed.evaluate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", required=True, help="testbed model name (repeatable)")
    ap.add_argument("--model-dir", type=Path, help="model folder to use instead of the shipped one (one --model)")
    ap.add_argument("--backend", choices=("vllm", "hf"), default="vllm")
    ap.add_argument("--base-url", help="a running vLLM server's /v1 URL serving --model (one model only)")
    ap.add_argument("--limit", type=int, default=240, help="number of test problems (difficulties cycled)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split", choices=("test", "val"), default="test")
    ap.add_argument("--fractions", type=_parse_fractions, default=DEFAULT_FRACTIONS)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for the server / HF backend")
    ap.add_argument("--write-stats", action="store_true", help=f"write {STATS_FILE} into each model folder")
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = ap.parse_args(argv)
    if args.limit < 1:
        ap.error("--limit: must be >= 1")
    if (args.base_url or args.model_dir) and len(args.model) != 1:
        ap.error("--base-url/--model-dir: take exactly one --model")
    problems = tasks.sample_problems(args.limit, args.split, args.seed)
    results: dict[str, Any] = {}
    for name in args.model:
        mdir = args.model_dir or model_path(name)
        summary = _evaluate_one(name, mdir, args, problems)
        summary.update({"backend": args.backend, "split": args.split, "seed": args.seed,
                        "command": "python -m testbed.evaluate " + " ".join(sys.argv[1:] if argv is None else argv)})
        results[name] = summary
        print(format_tables(name, summary), flush=True)
        if args.write_stats:
            stats = {k: summary[k] for k in ("median_thinking_tokens", "median_thinking_by_difficulty", "budgets",
                                              "accuracy", "n", "backend", "split", "seed", "command")}
            (mdir / STATS_FILE).write_text(json.dumps(stats, indent=2) + "\n")
    if args.json:
        print(json.dumps(results))
    return 0


def _evaluate_one(name: str, mdir: Path, args: argparse.Namespace, problems: list[tasks.Problem]) -> dict[str, Any]:
    if args.backend == "hf":
        from testbed.hf_backend import HFGenerator

        gen = HFGenerator(mdir, threads=args.threads)
        return evaluate_model(gen, problems, args.fractions)
    if args.base_url:
        sampler = VllmSampler(args.base_url, name, mdir / "tokenizer.json", args.concurrency, args.seed)
        try:
            return evaluate_model(sampler, problems, args.fractions)
        finally:
            sampler.close()
    from testbed.serve import VllmServer

    with VllmServer(name, model_dir=args.model_dir, threads=args.threads) as srv:
        sampler = VllmSampler(srv.base_url, name, mdir / "tokenizer.json", args.concurrency, args.seed)
        try:
            return evaluate_model(sampler, problems, args.fractions)
        finally:
            sampler.close()


if __name__ == "__main__":
    raise SystemExit(main())
