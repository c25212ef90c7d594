"""``thinkgate predictors train|evaluate`` (standard library only at import time)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["register"]

_DEFAULT_FEATURIZER = "hashed+structural"


def register(subparsers: Any) -> None:
    """Add the ``predictors`` command group to the ``thinkgate`` parser."""
    p = subparsers.add_parser("predictors", help="train and evaluate outcome predictors")
    sub = p.add_subparsers(dest="predictors_command", metavar="ACTION")

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--featurizer", default=_DEFAULT_FEATURIZER, help="featurizer spec, e.g. minilm+hashed+structural (default: %(default)s)")
        sp.add_argument("--alphas", default="0.3,1,3,10", help="ridge strengths to choose from by leave-one-out error (default: %(default)s)")
        sp.add_argument("--kernel", default="linear", choices=["linear", "rbf", "linear+rbf"],
                        help="ridge kernel; linear+rbf averages one model of each (default: %(default)s)")
        sp.add_argument("--gamma", type=float, default=2.0, help="rbf kernel width (default: %(default)s)")
        sp.add_argument("--weights", default=None, help="comma-separated weight per featurizer block, e.g. 1,1,0.05")
        sp.add_argument("--folds", type=int, default=5, help="cross-fitting folds for calibration (default: %(default)s)")
        sp.add_argument("--calibration", default="auto", choices=["auto", "isotonic", "platt", "none"])
        sp.add_argument("--costs", default=None, help="JSON {option: cost per query} or a default_llm.json-style price file")
        sp.add_argument("--seed", type=int, default=0)

    t = sub.add_parser("train", help="train a predictor artifact from an outcome table or outcome records")
    t.add_argument("--data", required=True, help="outcome table (wide) or outcome records, JSON list or JSONL")
    t.add_argument("--out", required=True, help="artifact path to write")
    common(t)
    t.set_defaults(func=_train)

    e = sub.add_parser("evaluate", help="train on TRAIN, report calibration, ranking and routing on TEST")
    e.add_argument("--train", required=True, help="training outcome table or records")
    e.add_argument("--test", required=True, help="held-out outcome table or records")
    e.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    common(e)
    e.set_defaults(func=_evaluate)

    d = sub.add_parser("difficulty", help="cross-validated macro-F1 of a difficulty-label classifier vs. baselines")
    d.add_argument("--data", required=True, help="JSON list or JSONL of labelled records")
    d.add_argument("--text", default="question,evidence", help="comma-separated text fields (default: %(default)s)")
    d.add_argument("--label", default="difficulty", help="label field (default: %(default)s)")
    d.add_argument("--featurizer", default=_DEFAULT_FEATURIZER)
    d.add_argument("--folds", type=int, default=5)
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=_difficulty)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _cli_error(msg: str) -> Exception:
    from thinkgate.cli import CliError

    return CliError(msg)


def _load(path: str, flag: str) -> Any:
    from predictors.records import RecordError
    from predictors.train import load_training_data

    try:
        return load_training_data(path)
    except FileNotFoundError as exc:
        raise _cli_error(f"{flag}: {path}: no such file") from exc
    except RecordError as exc:
        raise _cli_error(f"{flag}: {exc}") from exc


def _costs(args: argparse.Namespace) -> dict[str, float] | None:
    if not args.costs:
        return None
    from predictors.evaluate import load_costs

    try:
        return load_costs(args.costs)
    except FileNotFoundError as exc:
        raise _cli_error(f"--costs: {args.costs}: no such file") from exc
    except (ValueError, json.JSONDecodeError) as exc:
        raise _cli_error(str(exc) if str(exc).startswith("--costs") else f"--costs: {exc}") from exc


def _alphas(text: str, flag: str = "--alphas") -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise _cli_error(f"{flag}: expected comma-separated numbers, got {text!r}") from exc


def _fit(args: argparse.Namespace, data: Any, costs: dict[str, float] | None) -> Any:
    from predictors.train import train_predictor

    try:
        return train_predictor(
            data, args.featurizer, alphas=_alphas(args.alphas), kernel=args.kernel, gamma=args.gamma,
            featurizer_weights=_alphas(args.weights, "--weights") if args.weights else None, folds=args.folds, calibration=args.calibration, option_costs=costs, seed=args.seed
        )
    except ValueError as exc:
        msg = str(exc)
        flag = "--weights" if "weights" in msg else "--kernel" if msg.startswith("kernel") else "--featurizer" if "featurizer" in msg else "--alphas" if msg.startswith("alphas") else "--folds" if msg.startswith("folds") else "--data"
        raise _cli_error(f"{flag}: {msg}") from exc
    except RuntimeError as exc:  # e.g. the minilm package is missing
        raise _cli_error(f"--featurizer: {exc}") from exc


def _train(args: argparse.Namespace) -> int:
    from predictors.artifact import save_predictor

    costs = _costs(args)
    data = _load(args.data, "--data")
    pred = _fit(args, data, costs)
    path = save_predictor(pred, args.out)
    m = pred.metadata
    print(f"wrote {path}: {len(pred.options)} options, {m['n_prompts']} prompts, featurizer {m['featurizer']}, "
          f"{m['train_seconds']} s, data sha256 {m['data_sha256'][:12]}")
    return 0


def _fmt(x: Any, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


def _evaluate(args: argparse.Namespace) -> int:
    from predictors.evaluate import evaluate_predictor

    costs = _costs(args)
    train = _load(args.train, "--train")
    test = _load(args.test, "--test")
    pred = _fit(args, train, costs)
    try:
        r = evaluate_predictor(pred, test, costs)
    except ValueError as exc:
        raise _cli_error(f"--test: {exc}") from exc
    out = sys.stdout
    print(f"featurizer {pred.featurizer_spec}; train {len(train.prompts)} prompts, test {r['n_test']} prompts", file=out)
    print(f"{'option':<40} {'n':>6} {'AUROC':>7} {'Brier':>7} {'ECE':>7} {'mean P':>7} {'mean y':>7}", file=out)
    for o, v in r["options"].items():
        print(f"{o:<40} {v['n']:>6} {_fmt(v['auroc']):>7} {v['brier']:>7.3f} {v['ece']:>7.3f} {v['mean_p']:>7.3f} {v['mean_score']:>7.3f}", file=out)
    print(f"{'mean':<40} {'':>6} {_fmt(r['mean_auroc']):>7} {r['mean_brier']:>7.3f} {r['mean_ece']:>7.3f}", file=out)
    for kind, table in r["lengths"].items():
        for o, v in table.items():
            cap = "" if "at_cap_share" not in v else (
                f" at cap={v['at_cap_share']:.3f} coverage below cap={_fmt(v['p90_coverage_below_cap'])}")
            print(f"{kind} tokens {o}: n={v['n']} MAE={v['mae']:.1f} p90 coverage={v['p90_coverage']:.3f}"
                  f" strict={v['p90_coverage_strict']:.3f} calibrated={'yes' if v['p90_calibrated'] else 'no'}"
                  f" pinball={v['p90_pinball']:.2f}{cap}", file=out)
    rt = r["routing"]
    if rt["sweep"] is None:
        print("routing: skipped (no cost for every option, or no test row scored on every option)", file=out)
    else:
        print(f"best single: {rt['best_single']} score {rt['best_single_score']:.3f} cost {rt['best_single_cost']:.3f}", file=out)
        print(f"oracle: score {rt['oracle_score']:.3f} cost {rt['oracle_cost']:.3f}", file=out)
        print(f"routed (lambda=0): score {rt['routed_score_at_lambda0']:.3f} cost {rt['routed_cost_at_lambda0']:.3f}", file=out)
        print(f"routed score at <=40% of best single cost: {_fmt(rt['routed_score_at_40pct_cost'])}", file=out)
        if "cheapest_head_score" in rt:
            print(f"cheapest-sufficient head: score {rt['cheapest_head_score']:.3f} cost {rt['cheapest_head_cost']:.3f}", file=out)
        print(f"{'lambda':>10} {'score':>7} {'cost':>7}", file=out)
        sweep = rt["sweep"]
        for point in sweep[:: max(1, len(sweep) // 12)]:
            print(f"{point['lambda']:>10.4g} {point['score']:>7.3f} {point['cost']:>7.3f}", file=out)
    if args.json:
        summary = {k: r[k] for k in ("mean_auroc", "mean_ece", "mean_brier", "best_single_score", "best_single_cost", "oracle_score", "routed_score_at_40pct_cost")}
        summary.update(
            featurizer=pred.featurizer_spec,
            n_train=len(train.prompts),
            n_test=r["n_test"],
            per_option={o: {k: v[k] for k in ("auroc", "brier", "ece")} for o, v in r["options"].items()},
            lengths=r["lengths"],
            routing={k: v for k, v in rt.items() if k != "sweep"},
            sweep=rt["sweep"],
        )
        print(json.dumps(summary), file=out)
    return 0


def _difficulty(args: argparse.Namespace) -> int:
    from predictors.difficulty import run_cli

    if args.folds < 2:
        raise _cli_error(f"--folds: must be >= 2, got {args.folds}")
    fields = [f.strip() for f in args.text.split(",") if f.strip()]
    if not fields:
        raise _cli_error("--text: give at least one field name")
    try:
        run_cli(args.data, fields, args.label, args.featurizer, args.folds, args.json)
    except FileNotFoundError as exc:
        raise _cli_error(f"--data: {args.data}: no such file") from exc
    except ValueError as exc:
        msg = str(exc)
        raise _cli_error(f"--featurizer: {msg}" if "featurizer" in msg else f"--data: {msg}") from exc
    except RuntimeError as exc:  # e.g. the minilm package is missing
        raise _cli_error(f"--featurizer: {exc}") from exc
    return 0
