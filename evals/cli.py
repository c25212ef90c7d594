"""``thinkgate eval run | sweep | replay | report`` (standard library only at import time)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]

_RUN_EPILOG = """examples:
  thinkgate eval run --dataset gsm8k --limit 50 --model qwen3-0.6b --base-url http://127.0.0.1:8000/v1
  thinkgate eval run --dataset math500 --limit 100 --seed 1 --model auto --mode gateway --budget 1024
  thinkgate eval run --jsonl my.jsonl --prompt-field q --answer-field a --grader number --model m --out runs/my.jsonl
"""
_SWEEP_EPILOG = """examples:
  thinkgate eval sweep --dataset testbed --limit 300 --models tb-small,tb-large --budgets none,0,16,64 --out-dir runs/tb
  thinkgate eval sweep --dataset gsm8k --limit 200 --models qwen3-0.6b --budgets 256,1024 \\
      --guidance none --guidance 'guided={"vllm_xargs": {"think_strength": 4.0}}'
  (a --guidance body is merged into every request; its vllm_xargs keys are the guidance plugin's)
"""
_REPLAY_EPILOG = """examples:
  thinkgate eval replay --table ../shared/data/llmrouter/dcrouter_test.json \\
      --prices ../shared/data/llmrouter/default_llm.json --train-table ../shared/data/llmrouter/dcrouter_train.json
  thinkgate eval replay --table runs/tb/table.json --predictor artifacts/tb.predictor --json
"""
_REPORT_EPILOG = """examples:
  thinkgate eval report --table runs/tb/table.json --out-dir reports/tb
  thinkgate eval report --replay-json replay.json --out-dir reports/llmrouter --title "LLMRouter test"
  thinkgate eval report --records runs/gsm8k-qwen3.jsonl --out-dir reports/gsm8k
"""


def _cli_error(msg: str) -> Exception:
    from thinkgate.cli import CliError

    return CliError(msg)


def _budget(s: str) -> int | None:
    if s.lower() in ("none", "unlimited"):
        return None
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'none', got {s!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


def _floats(s: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in s.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {s!r}") from None


def _add_items(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("items")
    g.add_argument("--dataset", help="gsm8k, math500, aime24, aime25, amc23, bird or testbed")
    g.add_argument("--data", help="file for --dataset (default: ../shared/data or $THINKGATE_SHARED_DATA)")
    g.add_argument("--jsonl", help="generic JSON/JSONL file instead of --dataset")
    g.add_argument("--prompt-field", default="question", help="--jsonl: prompt field (dotted path)")
    g.add_argument("--answer-field", default="answer", help="--jsonl: gold answer field")
    g.add_argument("--id-field", help="--jsonl: id field")
    g.add_argument("--grader", default="normalized", help="--jsonl: grader (number, math, exact, normalized)")
    g.add_argument("--instruction", help="--jsonl: text appended to every prompt")
    g.add_argument("--limit", type=int, help="number of items")
    g.add_argument("--seed", type=int, help="seeded random sample of --limit items")


def _add_endpoint(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("endpoint")
    g.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1"))
    g.add_argument("--api-key", default=os.environ.get("THINKGATE_API_KEY") or os.environ.get("OPENAI_API_KEY")
                   or "EMPTY")
    g.add_argument("--mode", choices=("vllm", "gateway"), default="vllm",
                   help="how the budget travels: vLLM thinking_token_budget, or the gateway's thinkgate object")
    g.add_argument("--max-tokens", type=int)
    g.add_argument("--temperature", type=float, default=0.0)
    g.add_argument("--sample-seed", type=int, help="request seed (makes sampled runs cacheable)")
    g.add_argument("--concurrency", type=int, default=8)
    g.add_argument("--timeout", type=float, default=600.0, help="per-request timeout in seconds")
    g.add_argument("--extra-body", help="JSON object merged into every request body "
                   "(--dataset testbed adds skip_special_tokens=false)")
    g.add_argument("--price-in", type=float, help="$ per million prompt tokens (cost when not reported)")
    g.add_argument("--price-out", type=float, help="$ per million completion tokens")
    g.add_argument("--tokenizer", help="tokenizer.json to count thinking tokens when usage lacks them "
                   "(default for shipped testbed models: their own)")
    g.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _add_replay(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("replay")
    g.add_argument("--prices", help="default_llm.json-style prices (cost per query = input + output price)")
    g.add_argument("--strategies", default=None, help="comma-separated strategy names (default: all built-in)")
    g.add_argument("--budgets", type=_floats, default=(0.25, 0.5, 0.75, 1.0),
                   help="global budgets as fractions of the best single option's spend")
    g.add_argument("--lambdas", type=_floats, default=(0.0, 0.02, 0.05, 0.1, 0.2), help="prices for argmax(p - l*c)")
    g.add_argument("--predictor", help="predictor artifact (predictors.load_predictor)")
    g.add_argument("--train-table", help="train a predictor on this wide table first (e.g. a train split)")
    g.add_argument("--strong", help="strong option for APGR/CPT (default: best single)")
    g.add_argument("--weak", help="weak option for APGR/CPT (default: cheapest)")


def _items(args: argparse.Namespace) -> list[Any]:
    from evals.datasets import DatasetError, load_dataset, load_jsonl, sample

    try:
        if args.jsonl:
            items = load_jsonl(args.jsonl, args.prompt_field, args.answer_field, args.grader, args.id_field,
                               instruction=args.instruction)
            return sample(items, args.limit, args.seed)
        if not args.dataset:
            raise _cli_error("--dataset: required (or give --jsonl)")
        return load_dataset(args.dataset, args.data, args.limit, args.seed)
    except DatasetError as exc:
        raise _cli_error(str(exc)) from exc


def _config(args: argparse.Namespace, model: str, budget: int | None, dataset: str | None) -> Any:
    from evals.runner import RunConfig

    # The testbed models mark <think> as a special token: vLLM must keep it for the reasoning parser.
    extra: dict[str, Any] = {"skip_special_tokens": False} if args.dataset == "testbed" else {}
    if args.extra_body:
        try:
            user_extra = json.loads(args.extra_body)
        except json.JSONDecodeError as exc:
            raise _cli_error(f"--extra-body: invalid JSON: {exc}") from exc
        if not isinstance(user_extra, dict):
            raise _cli_error("--extra-body: must be a JSON object")
        extra.update(user_extra)
    try:
        return RunConfig(args.base_url, model, api_key=args.api_key, mode=args.mode, thinking_budget=budget,
                         max_tokens=args.max_tokens, temperature=args.temperature, seed=args.sample_seed,
                         concurrency=args.concurrency, timeout_s=args.timeout, extra_body=extra,
                         price_in_per_m=args.price_in, price_out_per_m=args.price_out, dataset=dataset)
    except ValueError as exc:
        raise _cli_error(str(exc)) from exc


def _counter(args: argparse.Namespace, models: list[str]) -> Any:
    """Token counter for thinking text: ``--tokenizer``, else a shipped testbed model's own tokenizer."""
    path = args.tokenizer
    if not path:
        try:
            from testbed.models import list_models, model_path
        except ImportError:
            return None
        shipped = set(list_models())
        if not models or not all(m in shipped for m in models):
            return None
        path = str(model_path(models[0]) / "tokenizer.json")  # the testbed models share one tokenizer
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(path)
    return lambda text: len(tok.encode(text, add_special_tokens=False).ids)


def _cmd_run(args: argparse.Namespace) -> int:
    from evals.runner import run

    items = _items(args)
    name = args.dataset or Path(args.jsonl).stem
    cfg = _config(args, args.model, args.budget, name)
    out = args.out or f"runs/{name}-{args.model.replace('/', '_')}.jsonl"
    cache = args.cache_dir or str(Path(out).parent / "cache")
    s = run(items, cfg, cache_dir=cache, out_path=out, progress=not args.no_progress,
            count_tokens=_counter(args, [args.model]))
    print(f"items {s.n_items}  cached {s.n_cached}  requested {s.n_requested}  failed {s.n_failed}  "
          f"mean score {s.mean_score if s.mean_score is None else round(s.mean_score, 4)}  records -> {out}")
    for e in s.errors[:5]:
        print(f"  error: {e}", file=sys.stderr)
    return 1 if s.n_failed and not s.records else 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from evals.sweep import grid, parse_guidance, sweep

    items = _items(args)
    name = args.dataset or Path(args.jsonl).stem
    models = [m for m in args.models.split(",") if m]
    try:
        budgets = [_budget(b) for b in args.budgets.split(",") if b]
        guidance = [parse_guidance(g) for g in (args.guidance or ["none"])]
    except (argparse.ArgumentTypeError, ValueError) as exc:
        raise _cli_error(f"--budgets/--guidance: {exc}") from exc
    try:
        cells = grid(_config(args, models[0] if models else "", None, name), models, budgets, guidance)
    except ValueError as exc:
        raise _cli_error(str(exc)) from exc
    res = sweep(items, cells, args.out_dir, progress=not args.no_progress, count_tokens=_counter(args, models))
    print(f"{'option':40s} {'n':>5s} {'score':>7s} {'cached':>7s} {'failed':>7s}")
    for c in res.cells:
        score = "-" if c["mean_score"] is None else f"{c['mean_score']:.4f}"
        print(f"{c['option']:40s} {c['n']:5d} {score:>7s} {c['cached']:7d} {c['failed']:7d}")
    print(f"records -> {res.records_path}\ntable   -> {res.table_path}")
    return 0


def _replay(args: argparse.Namespace, table_path: str | None, records_path: str | None = None) -> dict[str, Any]:
    from evals.replay import DEFAULT_STRATEGIES, run_replay
    from evals.replay_table import load_prices, load_replay_table, pivot_records, table_from_rows
    from evals.strategies import ReplayContext

    try:
        if records_path:
            from predictors.records import load_outcome_records

            prices = load_prices(args.prices) if args.prices else None
            table = table_from_rows(pivot_records(load_outcome_records(records_path)), prices)
        else:
            table = load_replay_table(table_path, args.prices)
    except (ValueError, FileNotFoundError) as exc:
        raise _cli_error(f"--table/--records: {exc}") from exc
    predictor, pname = None, "predictor"
    if args.predictor and args.train_table:
        raise _cli_error("--predictor: give either --predictor or --train-table, not both")
    try:
        if args.predictor:
            from evals.predict import load_predictor_fn

            predictor, pname = load_predictor_fn(args.predictor), Path(args.predictor).stem
        elif args.train_table:
            from evals.predict import train_predictor_fn

            predictor, pname = train_predictor_fn(args.train_table), "predictor"
    except (ValueError, FileNotFoundError) as exc:
        raise _cli_error(f"--predictor/--train-table: {exc}") from exc
    names = tuple(s for s in args.strategies.split(",") if s) if args.strategies else DEFAULT_STRATEGIES
    ctx = ReplayContext(budget_fractions=args.budgets, lambdas=args.lambdas, predictor=predictor, predictor_name=pname)
    try:
        return run_replay(table, names, ctx, strong=args.strong, weak=args.weak)
    except (KeyError, ValueError) as exc:
        raise _cli_error(f"--strategies/--strong/--weak: {exc.args[0] if exc.args else exc}") from exc


def _print_table(report: dict[str, Any]) -> None:
    print(f"{report['n']} queries, cost unit {report['cost_unit']}")
    print(f"{'strategy':52s} {'score':>7s} {'cost':>9s} {'tokens':>9s} {'regret':>8s}")
    for n, r in report["strategies"].items():
        tok = "-" if r.get("tokens") is None else f"{r['tokens']:.1f}"
        reg = "-" if r.get("regret") is None else f"{r['regret']:.4f}"
        print(f"{n:52s} {r['score']:7.4f} {r['cost']:9.4g} {tok:>9s} {reg:>8s}")
    for fam, v in (report.get("aiq") or {}).items():
        print(f"AIQ {fam}: {v:.4f}")
    pair = report.get("pair")
    if pair:
        for name, m in pair["routers"].items():
            print(f"APGR/CPT50/CPT80 [{pair['strong']} vs {pair['weak']}] {name}: {m['apgr']:.4f} "
                  f"{m['cpt50'] if m['cpt50'] is None else round(m['cpt50'], 4)} "
                  f"{m['cpt80'] if m['cpt80'] is None else round(m['cpt80'], 4)}")


def _cmd_replay(args: argparse.Namespace) -> int:
    report = _replay(args, args.table)
    _print_table(report)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1), encoding="utf-8")
    if args.json:
        print(json.dumps(report, separators=(",", ":")))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from evals.report import write_report

    sources = [x for x in (args.replay_json, args.table, args.records) if x]
    if len(sources) != 1:
        raise _cli_error("--replay-json/--table/--records: give exactly one")
    if args.replay_json:
        try:
            report = json.loads(Path(args.replay_json).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise _cli_error(f"--replay-json: {exc}") from exc
    else:
        report = _replay(args, args.table, args.records)
    command = "thinkgate " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["eval"] else None
    md = write_report(report, args.out_dir, args.title, command=args.command or command,
                      predictor_name=Path(args.predictor).stem if args.predictor else "predictor")
    (Path(args.out_dir) / "replay.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    print(f"report -> {md}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``eval`` with its ``run``, ``sweep``, ``replay`` and ``report`` sub-commands."""
    fmt = argparse.RawDescriptionHelpFormatter
    ev = subparsers.add_parser("eval", help="offline evaluation: live runs, sweeps, replay, reports")
    sub = ev.add_subparsers(dest="eval_command", metavar="EVAL_COMMAND")
    ev.set_defaults(func=lambda a: (ev.print_help(), 2)[1])

    p = sub.add_parser("run", help="run a dataset against an OpenAI-compatible endpoint", epilog=_RUN_EPILOG,
                       formatter_class=fmt)
    _add_items(p)
    _add_endpoint(p)
    p.add_argument("--model", required=True, help="model name (or 'auto' for the gateway)")
    p.add_argument("--budget", type=_budget, default=None, help="thinking-token budget (default: none)")
    p.add_argument("--out", help="outcome records JSONL (default runs/<dataset>-<model>.jsonl)")
    p.add_argument("--cache-dir", help="response cache (default: <out dir>/cache)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("sweep", help="grid of models x thinking budgets (x guidance modes)", epilog=_SWEEP_EPILOG,
                       formatter_class=fmt)
    _add_items(p)
    _add_endpoint(p)
    p.add_argument("--models", required=True, help="comma-separated model names")
    p.add_argument("--budgets", default="none", help="comma-separated thinking budgets; 'none' = unlimited")
    p.add_argument("--guidance", action="append", help="'none' or NAME=JSON extra body (repeatable)")
    p.add_argument("--out-dir", required=True, help="writes records.jsonl, table.json and cache/")
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("replay", help="evaluate strategies on a logged outcome table (no model calls)",
                       epilog=_REPLAY_EPILOG, formatter_class=fmt)
    p.add_argument("--table", required=True, help="wide outcome table (JSON list or JSONL)")
    _add_replay(p)
    p.add_argument("--out", help="also write the full result as JSON here")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=_cmd_replay)

    p = sub.add_parser("report", help="markdown + PNG plots from a replay", epilog=_REPORT_EPILOG,
                       formatter_class=fmt)
    p.add_argument("--replay-json", help="result of 'eval replay --out'")
    p.add_argument("--table", help="wide outcome table to replay first")
    p.add_argument("--records", help="outcome records (a run or sweep) to pivot and replay first")
    _add_replay(p)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--title", default="thinkgate eval report")
    p.add_argument("--command", help="the command line shown in the report (default: this one)")
    p.set_defaults(func=_cmd_report)
