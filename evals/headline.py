"""Headline demo on the embedded testbed: uniform thinking budgets vs predictor + knapsack.

Two steps, one command each (run from the repository root):

``sweep``
    For each testbed model, start ONE vLLM CPU server (``testbed.serve.VllmServer``),
    run the grid of thinking budgets {0, 25, 50, 75, 100 % of the model's median
    unlimited thinking length, unlimited} over a seeded set of distinct problems of
    one split (greedy, ``skip_special_tokens: false``, the model's own tokenizer
    for thinking-token counts) through :func:`evals.sweep.sweep`, stop the server,
    and merge every model's records into one wide table (``table.json``).
``compare``
    Train a predictor on the train-split table (or load an artifact), then on
    the test-split table compare, at equal total *thinking* tokens, every uniform
    per-query budget with predictor + multiple-choice knapsack (values =
    predicted P(correct), costs = predicted thinking tokens, so the allocator
    never sees a test query's realised length), plus the hindsight oracle.
    Writes ``headline.json`` and ``frontier.png``; ``--json`` prints one JSON
    object as the last line.

Example::

    python -m evals.headline sweep --split test --limit 300 --seed 1 --out-dir runs/headline/test
    python -m evals.headline sweep --split train --limit 400 --seed 2 --out-dir runs/headline/train \\
        --budgets-from runs/headline/test/budgets.json
    python -m evals.headline compare --train-table runs/headline/train/table.json \\
        --test-table runs/headline/test/table.json --out-dir reports/headline --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

__all__ = ["budgets_for", "compare", "distinct_items", "main", "sweep_split"]

#: Fractions of the median unlimited thinking length swept (None = unlimited).
FRACTIONS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)


def distinct_items(split: str, n: int, seed: int) -> list[Any]:
    """``n`` distinct testbed problems of ``split`` (seeded, difficulties cycled evenly).

    ``testbed.tasks.sample_problems`` may repeat a problem at low difficulty (only
    ~8 test-split problems have two terms); repeats would merge into one table
    row, so the sample is grown until ``n`` distinct prompts exist. Difficulty 1
    then has fewer than its even share. Raises ``ValueError`` when ``n < 1``.
    """
    from evals.datasets import load_testbed

    if n < 1:
        raise ValueError(f"--limit: must be >= 1, got {n}")
    size = n
    while True:
        seen: dict[str, Any] = {}
        for it in load_testbed(size, seed, split):
            seen.setdefault(it.prompt_text, it)
        if len(seen) >= n or size > 20 * n:
            return list(seen.values())[:n]
        size += max(n // 10, 1)


def budgets_for(model: str, median: int | None) -> list[int | None]:
    """Thinking budgets for ``model``: ``FRACTIONS`` of ``median`` (rounded) and unlimited (None).

    Raises ``ValueError`` naming the model when no median is known.
    """
    if median is None or median <= 0:
        raise ValueError(f"model {model}: no median thinking length (thinking_stats.json missing); "
                         "pass --budgets-from or run the test split first")
    out: list[int | None] = []
    for f in FRACTIONS:
        b = int(round(f * median))
        if b not in out:
            out.append(b)
    return [*out, None]


def stack_guidance_extra(model: str) -> Any:
    """``item_extra`` for :class:`evals.runner.RunConfig` that serves ``model`` as the embedded stack does.

    The mode, strength and horizon are read from the stack's own gateway config
    (``testbed.stack.default_gateway_config``: the backend's ``guidance_mode``,
    else the router's). Returns None when that mode is the hard cap alone;
    else a function adding the guidance plugin's ``vllm_xargs`` to every
    capped request (budget > 0). The prior on the total thinking
    length is the model's median unlimited thinking at the problem's difficulty
    (``thinking_stats.json``), a log-normal with the gateway's spread: what
    the structural predictor's length head reports for the model's unlimited
    option, which is the prior the gateway sends.
    """
    import math

    from guidance.xargs import gamma_prior_from_lognormal, vllm_xargs_for
    from testbed.models import thinking_stats
    from testbed.stack import default_gateway_config
    from thinkgate.gateway.pipeline import PRIOR_LOG_SIGMA

    cfg = default_gateway_config([model])
    router = cfg["router"]
    mode = cfg["backends"][0].get("guidance_mode") or router.get("guidance_mode", "hard")
    if mode == "hard":
        return None
    stats = thinking_stats(model)
    if stats is None:
        raise ValueError(f"model {model}: thinking_stats.json missing (testbed.evaluate --write-stats)")
    by_level = {int(k): float(v) for k, v in stats["median_thinking_by_difficulty"].items()}
    overall = float(stats["median_thinking_tokens"])

    def extra(item: Any, run: Any) -> dict[str, Any]:
        b = run.thinking_budget
        if b is None or b <= 0:
            return {}
        length = by_level.get(int(item.metadata.get("level", 0)), overall)
        prior = gamma_prior_from_lognormal(math.log1p(length), PRIOR_LOG_SIGMA)
        return {"vllm_xargs": vllm_xargs_for(mode, b, prior, router["guidance_strength"],
                                             horizon=router["guidance_horizon"])}

    return extra


def _median_unlimited(records: list[Any]) -> int:
    lengths = [r.thinking_tokens for r in records if r.thinking_tokens is not None]
    if not lengths:
        raise RuntimeError("unlimited run returned no thinking-token counts")
    return int(round(statistics.median(lengths)))


def sweep_split(split: str, limit: int, seed: int, models: list[str], out_dir: Path, concurrency: int,
                budgets_from: Path | None = None, progress: bool = True, temperature: float = 0.0,
                sample_seed: int | None = None, guidance: str = "none") -> Path:
    """Run the budget grid for every model (one server at a time) and write ``out_dir/table.json``.

    Budgets come from ``budgets_from`` (a ``budgets.json`` written by an earlier
    sweep, so train and test share option names), else from
    ``testbed.models.median_thinking_tokens``, else from the median of an
    unlimited run on these items. Returns the table path; records of model m go
    to ``out_dir/m/records.jsonl`` (with the response cache, so a killed sweep
    resumes). ``temperature > 0`` samples instead of decoding greedily; with
    ``sample_seed`` every request carries a seed derived from it and the item
    (:func:`evals.runner.request_seed`), so the sweep is reproducible and its
    responses are cached like greedy ones. ``guidance="stack"`` serves each
    model's capped budgets as the embedded stack does (:func:`stack_guidance_extra`:
    ``soft+hard`` guidance for ``tg-large``, the hard cap for ``tg-small``);
    option names stay ``model@budget``, since that is what the stack serves.
    """
    from tokenizers import Tokenizer

    from evals.replay_table import pivot_records
    from evals.runner import RunConfig
    from evals.sweep import grid, sweep
    from predictors.records import load_outcome_records, write_outcome_records, write_outcome_table
    from testbed.models import median_thinking_tokens, model_path
    from testbed.serve import VllmServer

    items = distinct_items(split, limit, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    fixed: dict[str, list[int | None]] = {}
    if budgets_from is not None:
        fixed = {m: list(b) for m, b in json.loads(budgets_from.read_text())["budgets"].items()}
    used: dict[str, Any] = {"split": split, "limit": limit, "seed": seed, "n_items": len(items), "budgets": {},
                            "median_source": {}, "temperature": temperature, "sample_seed": sample_seed,
                            "guidance": guidance}
    all_records: list[Any] = []
    for model in models:
        tok = Tokenizer.from_file(str(model_path(model) / "tokenizer.json"))

        def count(text: str, _tok: Any = tok) -> int:
            return len(_tok.encode(text, add_special_tokens=False).ids)

        mdir = out_dir / model
        with VllmServer(model, log_path=out_dir / f"vllm-{model}.log") as srv:
            base = RunConfig(srv.base_url, model, temperature=temperature, seed=sample_seed, concurrency=concurrency,
                             dataset="testbed",
                             extra_body={"skip_special_tokens": False},
                             item_extra=stack_guidance_extra(model) if guidance == "stack" else None)
            if model in fixed:
                budgets, src = fixed[model], str(budgets_from)
            elif (med := median_thinking_tokens(model)) is not None:
                budgets, src = budgets_for(model, med), "testbed.models.median_thinking_tokens"
            else:  # measure it: the unlimited cell is part of the grid anyway (cached)
                res = sweep(items, grid(base, [model], [None]), mdir, progress, count)
                med = _median_unlimited(load_outcome_records(res.records_path))
                budgets, src = budgets_for(model, med), f"median of the unlimited run on {split} ({med})"
            res = sweep(items, grid(base, [model], budgets), mdir, progress, count)
        for c in res.cells:
            print(f"{c['option']:24s} n={c['n']:4d} score={c['mean_score']} failed={c['failed']}", flush=True)
        used["budgets"][model], used["median_source"][model] = budgets, src
        all_records.extend(load_outcome_records(res.records_path))
    write_outcome_records(all_records, out_dir / "records.jsonl")
    table = out_dir / "table.json"
    write_outcome_table(pivot_records(all_records), table)
    (out_dir / "budgets.json").write_text(json.dumps(used, indent=1))
    return table


def _predict(pred: Any, table: Any) -> tuple[Any, Any]:
    """Predicted P(correct) and predicted thinking tokens ``[N, M]`` (option mean length as fallback)."""
    import numpy as np

    ests = pred.predict_batch(table.prompts, table.options)
    values = np.array([[e.p_correct for e in row] for row in ests], dtype=np.float64)
    costs = np.array([[np.nan if e.thinking_tokens_mean is None else e.thinking_tokens_mean for e in row]
                      for row in ests], dtype=np.float64)
    if np.isnan(costs).any():
        raise ValueError("predictor: no thinking-length estimate for some option; train on a table with "
                         "thinking_tokens")
    return values, costs


def compare(train_table: Path | None, test_table: Path, predictor: Path | None = None,
            featurizer: str = "hashed+structural", n_capacities: int = 80, seed: int = 0) -> dict[str, Any]:
    """Uniform budgets vs predictor + knapsack vs oracle on ``test_table``, in total thinking tokens.

    For every uniform option j: ``T_j`` (total realised thinking tokens) and
    ``A_j`` (accuracy). Knapsack at capacity ``T_j`` in *predicted* thinking
    tokens gives one operating point; since realised spend can differ from the
    prediction, the matched comparison takes the knapsack frontier (many
    capacities) and reports the best accuracy whose realised total is <= T_j,
    and the smallest realised total reaching A_j. Oracle: exact MCKP on the
    true scores and realised thinking tokens (hindsight, context only).
    """
    import numpy as np

    from evals.replay_table import load_replay_table
    from evals.strategies import knapsack_choice

    table = load_replay_table(test_table)
    if table.thinking is None:
        raise ValueError(f"--test-table: {test_table} has no thinking_tokens")
    think = np.nan_to_num(table.thinking, nan=0.0)
    if predictor is not None:
        from predictors import load_predictor

        pred = load_predictor(predictor)
    elif train_table is not None:
        from predictors.records import load_outcome_table
        from predictors.train import train_predictor, training_set_from_table

        pred = train_predictor(training_set_from_table(load_outcome_table(train_table)), featurizer, seed=seed)
    else:
        raise ValueError("--train-table/--predictor: give one")
    values, pcost = _predict(pred, table)
    n, m = table.scores.shape
    rows = np.arange(n)

    def point(choice: Any) -> tuple[float, float]:
        return float(think[rows, choice].sum()), float(table.scores[rows, choice].mean())

    uniform = [{"option": o, "thinking_total": float(think[:, j].sum()), "accuracy": float(table.scores[:, j].mean())}
               for j, o in enumerate(table.options)]
    lo, hi = float(pcost.min(axis=1).sum()), float(pcost.max(axis=1).sum())
    frontier = []
    for cap in np.linspace(lo, hi, n_capacities):
        ch = knapsack_choice(values, pcost, float(cap))
        t, a = point(ch)
        frontier.append({"capacity": float(cap), "thinking_total": t, "accuracy": a,
                         "predicted_accuracy": float(values[rows, ch].mean())})
    oracle_vals = table.scores - 1e-7 * think / max(float(think.max()), 1.0)  # cheapest among equal scores
    per_query = np.array([np.lexsort((think[i], -table.scores[i]))[0] for i in range(n)])
    o_t, o_a = point(per_query)
    comparisons = []
    for u in uniform:
        t_b, a_b = u["thinking_total"], u["accuracy"]
        k_t, k_a = point(knapsack_choice(values, pcost, t_b))
        under = [f["accuracy"] for f in frontier if f["thinking_total"] <= t_b]
        reach = [f["thinking_total"] for f in frontier if f["accuracy"] >= a_b]
        orc_t, orc_a = point(knapsack_choice(oracle_vals, think, t_b, exact=True))
        # Label-free operating point: the cheapest capacity whose *predicted* accuracy reaches the
        # uniform option's predicted accuracy (no test outcome is used to pick it).
        j = table.options.index(u["option"])
        target = float(values[:, j].mean())
        fits = [f for f in frontier if f["predicted_accuracy"] >= target - 1e-12]
        pm = min(fits, key=lambda f: f["capacity"]) if fits else None
        comparisons.append({
            **u, "knapsack_at_T": {"thinking_total": k_t, "accuracy": k_a},
            "knapsack_best_within_T": max(under) if under else None,
            "knapsack_tokens_to_match": min(reach) if reach else None,
            "token_saving": (1 - min(reach) / t_b) if reach and t_b > 0 else None,
            "oracle_knapsack_at_T": {"thinking_total": orc_t, "accuracy": orc_a},
            "knapsack_predicted_match": None if pm is None else {
                "capacity": pm["capacity"], "thinking_total": pm["thinking_total"], "accuracy": pm["accuracy"],
                "token_saving": (1 - pm["thinking_total"] / t_b) if t_b > 0 else None},
        })
    best = max(uniform, key=lambda u: (round(u["accuracy"], 12), -u["thinking_total"]))
    head = next(c for c in comparisons if c["option"] == best["option"])
    gain = None if head["knapsack_best_within_T"] is None else head["knapsack_best_within_T"] - best["accuracy"]
    saving = head["token_saving"]
    pmh = head["knapsack_predicted_match"]
    return {
        "headline_predicted_match": pmh,
        "n": n, "options": list(table.options), "test_table": str(test_table),
        "train_table": None if train_table is None else str(train_table),
        "predictor": str(predictor) if predictor else f"trained on the fly ({featurizer}, seed {seed})",
        "uniform": uniform, "knapsack_frontier": frontier, "comparisons": comparisons,
        "oracle_per_query": {"thinking_total": o_t, "accuracy": o_a},
        "best_uniform": best["option"], "headline_accuracy_gain": gain, "headline_token_saving": saving,
        "target_met": bool((gain is not None and gain >= 0.05) or (saving is not None and saving >= 0.30)),
        # The same target at operating points chosen without test labels: pred-match (same accuracy,
        # >= 30% fewer tokens) or capacity = T_b (>= 5 points more accuracy).
        "target_met_label_free": bool(
            (pmh is not None and pmh["token_saving"] is not None and pmh["token_saving"] >= 0.30
             and pmh["accuracy"] >= best["accuracy"] - 1e-12)
            or head["knapsack_at_T"]["accuracy"] - best["accuracy"] >= 0.05),
    }


def plot(result: dict[str, Any], path: Path) -> None:
    """Accuracy vs total thinking tokens: uniform budgets per model, knapsack frontier, oracle."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from predictors.records import parse_option

    fig, ax = plt.subplots(figsize=(7, 4.5))
    by_model: dict[str, list[tuple[float, float, str]]] = {}
    for u in result["uniform"]:
        model, budget = parse_option(u["option"])
        by_model.setdefault(model, []).append((u["thinking_total"], u["accuracy"], "inf" if budget is None else
                                               str(budget)))
    for model, pts in sorted(by_model.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o--", label=f"uniform budget, {model}")
        for x, y, b in pts:
            ax.annotate(b, (x, y), textcoords="offset points", xytext=(3, -10), fontsize=7)
    fr = sorted(result["knapsack_frontier"], key=lambda f: f["thinking_total"])
    ax.plot([f["thinking_total"] for f in fr], [f["accuracy"] for f in fr], "-", lw=2,
            label="predictor + knapsack")
    o = result["oracle_per_query"]
    ax.plot([o["thinking_total"]], [o["accuracy"]], "k*", ms=10, label="oracle (per query, hindsight)")
    ax.set_xlabel("total thinking tokens over the test set")
    ax.set_ylabel("accuracy")
    ax.set_title(f"testbed, {result['n']} test problems")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _print(result: dict[str, Any]) -> None:
    print(f"{result['n']} test problems; best uniform option: {result['best_uniform']}")
    print(f"{'uniform option':18s} {'T_b':>8s} {'A_b':>6s} {'KS@T acc':>9s} {'KS@T tok':>9s} "
          f"{'KS<=T acc':>9s} {'tok save':>8s} {'oracle@T':>8s} KS pred-match acc@tok")
    for c in result["comparisons"]:
        best_in = "-" if c["knapsack_best_within_T"] is None else f"{c['knapsack_best_within_T']:.4f}"
        save = "-" if c["token_saving"] is None else f"{c['token_saving']:.1%}"
        m = c["knapsack_predicted_match"]
        pm = "-" if m is None else f"{m['accuracy']:.4f}@{m['thinking_total']:.0f}"
        print(f"{c['option']:18s} {c['thinking_total']:8.0f} {c['accuracy']:6.4f} "
              f"{c['knapsack_at_T']['accuracy']:9.4f} {c['knapsack_at_T']['thinking_total']:9.0f} "
              f"{best_in:>9s} {save:>8s} {c['oracle_knapsack_at_T']['accuracy']:8.4f} {pm}")
    o = result["oracle_per_query"]
    print(f"oracle per query: accuracy {o['accuracy']:.4f} at {o['thinking_total']:.0f} thinking tokens")
    print(f"headline: gain {result['headline_accuracy_gain']}, token saving {result['headline_token_saving']}, "
          f"target met: {result['target_met']} (frontier point picked with test labels), "
          f"label-free: {result['target_met_label_free']}")


def main(argv: list[str] | None = None) -> int:
    """Command line: ``sweep`` or ``compare`` (see the module docstring)."""
    ap = argparse.ArgumentParser(prog="python -m evals.headline", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sweep", help="budget grid over one split, one vLLM server per model in turn")
    s.add_argument("--split", choices=("train", "val", "test"), required=True)
    s.add_argument("--limit", type=int, default=300, help="distinct problems (default 300)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--models", default="tg-small,tg-large")
    s.add_argument("--out-dir", required=True, type=Path)
    s.add_argument("--concurrency", type=int, default=16)
    s.add_argument("--budgets-from", type=Path, help="budgets.json of an earlier sweep (same option names)")
    s.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (default 0: greedy)")
    s.add_argument("--sample-seed", type=int, help="run seed of a sampled sweep; each request gets a seed derived from it and the item "
                        "(reproducible, cached)")
    s.add_argument("--guidance", choices=("none", "stack"), default="none",
                   help="none: every budget is vLLM's hard cap; stack: as the embedded stack serves them "
                        "(soft+hard Budget Guidance on tg-large, hard cap on tg-small)")
    s.add_argument("--no-progress", action="store_true")
    c = sub.add_parser("compare", help="uniform budgets vs predictor + knapsack at equal thinking tokens")
    c.add_argument("--test-table", required=True, type=Path)
    c.add_argument("--train-table", type=Path, help="train a predictor on this table")
    c.add_argument("--predictor", type=Path, help="or load this predictor artifact")
    c.add_argument("--featurizer", default="hashed+structural")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--out-dir", type=Path, help="write headline.json and frontier.png here")
    c.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    a = ap.parse_args(argv)
    if a.cmd == "sweep":
        models = [m for m in a.models.split(",") if m]
        if not models:
            ap.error("--models: give at least one model")
        if a.limit < 1:
            ap.error(f"--limit: must be >= 1, got {a.limit}")
        if a.temperature < 0:
            ap.error(f"--temperature: must be >= 0, got {a.temperature}")
        table = sweep_split(a.split, a.limit, a.seed, models, a.out_dir, a.concurrency, a.budgets_from,
                            not a.no_progress, a.temperature, a.sample_seed, a.guidance)
        print(f"table -> {table}")
        return 0
    if (a.train_table is None) == (a.predictor is None):
        ap.error("--train-table/--predictor: give exactly one")
    result = compare(a.train_table, a.test_table, a.predictor, a.featurizer, seed=a.seed)
    _print(result)
    if a.out_dir:
        a.out_dir.mkdir(parents=True, exist_ok=True)
        (a.out_dir / "headline.json").write_text(json.dumps(result, indent=1))
        plot(result, a.out_dir / "frontier.png")
    if a.json:
        print(json.dumps({k: v for k, v in result.items() if k != "knapsack_frontier"}, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
