"""Evaluate the routing strategies (router/) on the LLMRouter table: curves, APGR/CPT, AIQ, and a task shift.

Run::

    python -m evals.router_eval [--data ../shared/data] [--out reports/router] [--json]

1. Picks the predictor configuration (``--predictor select``, the default:
   :func:`router.eval_predictors.select_predictor`, on a validation fold of
   ``dcrouter_train``, never on test rows), then trains it on all of
   ``dcrouter_train`` (cached on disk by data, configuration and source hash).
2. Replays every strategy's real ``decide`` on ``dcrouter_test`` through
   ``evals.replay`` (scores, costs in the table's price units = input + output
   $ per M tokens, AIQ per family, APGR and CPT(50%/80%) for the pair
   llama-3.1-nemotron-51b-instruct / qwen2.5-7b-instruct): ``utility`` over a
   lambda sweep, ``tiers`` over target escalation shares (calibrated online),
   ``linucb`` over a lambda sweep, learning online along the test stream.
3. Shift: groups from surface patterns (:func:`router.evaluation.surface_group`);
   a prior predictor trained on train rows of one half of the groups; LinUCB
   with and without that prior learns from a stream of train rows of the
   other half; checkpoints are scored on that half's test rows against the
   offline router trained on everything.

Writes ``results.json`` and PNG plots to ``--out``; prints a table, and with
``--json`` one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from router.eval_predictors import (
    PREDICTOR_CONFIGS,
    PredictorConfig,
    cost_at_score,
    score_at_cost,
    select_predictor,
    structural_block,
    trained_predictor,
)
from router.evaluation import (
    GROUP_HALVES,
    decision_prices,
    lam_unit,
    run_policy,
    snapshot_from_prices,
    surface_group,
    views_for,
)

STRONG, WEAK = "llama-3.1-nemotron-51b-instruct", "qwen2.5-7b-instruct"
KAPPAS = (0.0, 0.02, 0.05, 0.07, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
# utility is a cheap deterministic replay: sweep kappa in steps of 0.005 where the 40%-of-cost point lies.
UTILITY_KAPPAS = tuple(round(0.005 * i, 3) for i in range(61)) + (0.35, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
SHARES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
CHECKPOINTS = (0, 25, 50, 100, 200, 300, 400, 500, 750, 1000)


def default_data() -> Path:
    env = os.environ.get("THINKGATE_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def _prices(path: Path) -> dict[str, tuple[float, float]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return {m: (float(s["input_price"]), float(s["output_price"])) for m, s in data.items()}


# ------------------------------------------------------------------ replay strategies


def register_router_strategies(ests: list[list[Any]], prices: dict[str, tuple[float, float]], lam_unit: float,
                               runs: dict[str, Any]) -> None:
    """Register ``router_utility``/``router_tiers``/``router_linucb`` with ``evals.strategies`` for one table."""
    from evals.strategies import Choice, one_hot, register_strategy
    from router.linucb import LinUCBPolicy
    from router.strategies import TierCalibrator, TiersPolicy, UtilityPolicy

    snap = snapshot_from_prices(prices)

    def sweep(name: str, family: str, make: Any, params: Any, learn: bool) -> Any:
        def strategy(table: Any, ctx: Any) -> list[Any]:
            out = []
            views = views_for(table.prompts, ests)
            for p in params:
                run = run_policy(make(p), views, snap, table.options, table.scores, table.costs, learn=learn)
                runs[f"{name}@{p:g}"] = run
                out.append(Choice(f"{name}@{p:g}", family, one_hot(run.choice, len(table.options)),
                                  {"param": p}))
            return out
        return strategy

    register_strategy("router_utility", sweep("utility", "utility",
                                              lambda k: UtilityPolicy(default_lambda=k * lam_unit), UTILITY_KAPPAS,
                                              False))
    register_strategy("router_tiers", sweep("tiers", "tiers",
                                            lambda s: TiersPolicy(calibrator=TierCalibrator(s, min_samples=25)),
                                            SHARES, True))
    register_strategy("router_linucb", sweep("linucb", "linucb",
                                             lambda k: LinUCBPolicy(default_lambda=k * lam_unit, alpha=0.1,
                                                                    prior_weight=5.0), KAPPAS, True))


def pair_metrics(table: Any, ests: list[list[Any]], prices: dict[str, tuple[float, float]],
                 lam_unit: float) -> dict[str, Any]:
    """APGR and CPT(50%/80%) on the strong/weak pair for utility, tiers and linucb restricted to the pair."""
    from evals import metrics
    from evals.replay import pair_curve
    from router.linucb import LinUCBPolicy
    from router.options import build_candidates

    js, jw = table.options.index(STRONG), table.options.index(WEAK)
    s_acc, w_acc = float(table.scores[:, js].mean()), float(table.scores[:, jw].mean())
    pair_prices = {STRONG: prices[STRONG], WEAK: prices[WEAK]}
    snap = snapshot_from_prices(pair_prices)
    pair_ests = [[e for e in row if e.option in pair_prices] for row in ests]
    views = views_for(table.prompts, pair_ests)
    p = {o: np.array([[e.p_correct for e in row if e.option == o][0] for row in pair_ests]) for o in pair_prices}
    dcost = np.array([{c.model: c.cost_usd for c in build_candidates(v, snap)}[STRONG]
                      - {c.model: c.cost_usd for c in build_candidates(v, snap)}[WEAK] for v in views])
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {
        # utility sends a query to the strong model once lambda < (p_s - p_w) / (c_s - c_w): rank by that ratio.
        "utility": pair_curve(table, js, jw, (p[STRONG] - p[WEAK]) / dcost),
        # tiers escalates when the weak tier's confidence is under the threshold: rank by -p_weak.
        "tiers": pair_curve(table, js, jw, -p[WEAK]),
        "oracle": pair_curve(table, js, jw, table.scores[:, js] - table.scores[:, jw]),
    }
    share, acc = [], []
    for k in KAPPAS + (5.0, 10.0):
        run = run_policy(LinUCBPolicy(default_lambda=k * lam_unit, alpha=0.1, prior_weight=5.0), views, snap,
                         table.options, table.scores, table.costs, learn=True)
        share.append(float((run.choice == js).mean()))
        acc.append(run.mean_score)
    curves["linucb"] = (np.array(share), np.array(acc))
    out: dict[str, Any] = {"strong": STRONG, "weak": WEAK, "strong_score": s_acc, "weak_score": w_acc,
                           "routers": {}, "curves": {}}
    for name, (x, y) in curves.items():
        c50, c80 = metrics.cpt(0.5, x, y, w_acc, s_acc), metrics.cpt(0.8, x, y, w_acc, s_acc)
        out["routers"][name] = {"apgr": metrics.apgr(x, y, w_acc, s_acc),
                                "cpt50": None if np.isnan(c50) else c50, "cpt80": None if np.isnan(c80) else c80}
        out["curves"][name] = [x.tolist(), y.tolist()]
    out["routers"]["random"] = {"apgr": 0.5, "cpt50": 0.5, "cpt80": 0.8}
    return out


# ------------------------------------------------------------------ shift experiment


def shift_experiment(train_rows: list[Any], test_rows: list[Any], prices: dict[str, tuple[float, float]],
                     full_pred: Any, config: PredictorConfig, kappa: float, seeds: int, alpha: float,
                     prior_weight: float, context: str = "both", validate: bool = False,
                     alpha_no_prior: float | None = None, cost_model: str = "tokens") -> dict[str, Any]:
    """LinUCB with/without the half-A prior learning on half B (see the module docstring).

    ``validate`` scores on half-B train rows the stream never uses instead of
    the test rows (for choosing ``alpha``/``prior_weight``/``context``).
    ``alpha_no_prior`` adds a third curve: LinUCB without prior at its own
    exploration (plain LinUCB needs more exploration than a prior-led one).
    """
    from evals.replay_table import table_from_rows
    from router.linucb import LinUCBPolicy
    from router.strategies import UtilityPolicy

    half_a, half_b = GROUP_HALVES
    a_train = [r for r in train_rows if surface_group(r.prompt) in half_a]
    b_train = [r for r in train_rows if surface_group(r.prompt) in half_b]
    b_test = [r for r in test_rows if surface_group(r.prompt) in half_b]
    if validate:  # hold out every third half-B train row; the stream draws from the rest
        b_test, b_train = b_train[::3], [r for i, r in enumerate(b_train) if i % 3]
    pred_a = trained_predictor(a_train, config, "half-a")
    totals = {m: pi + po for m, (pi, po) in prices.items()}
    t_test, t_stream = table_from_rows(b_test, totals), table_from_rows(b_train, totals)
    snap = snapshot_from_prices(decision_prices(prices, cost_model))
    opts = t_test.options
    test_full = views_for(t_test.prompts, full_pred.predict_batch(t_test.prompts, opts))
    test_a = _with_features(views_for(t_test.prompts, pred_a.predict_batch(t_test.prompts, opts)), pred_a, context)
    lam = kappa * lam_unit(test_a, snap, STRONG)
    offline = run_policy(UtilityPolicy(default_lambda=lam), test_full, snap, opts, t_test.scores, t_test.costs)
    prior_only = run_policy(UtilityPolicy(default_lambda=lam), test_a, snap, opts, t_test.scores, t_test.costs)
    best_j = int(np.argmax(t_stream.scores.mean(axis=0)))  # best single model on the stream half, as known online
    n_events = min(max(CHECKPOINTS), len(t_stream.prompts))
    variants = {"prior": (True, alpha), "no_prior": (False, alpha)}
    if alpha_no_prior is not None:
        variants["no_prior_own_alpha"] = (False, alpha_no_prior)
    curves: dict[str, list[list[float]]] = {v: [] for v in variants}
    costs: dict[str, list[list[float]]] = {v: [] for v in variants}
    for seed in range(seeds):
        order = np.random.default_rng(seed).permutation(len(t_stream.prompts))[:n_events]
        sub = t_stream.subset(order)
        stream = _with_features(views_for(sub.prompts, pred_a.predict_batch(sub.prompts, opts)), pred_a, context)
        for variant in curves:
            use_prior, a_v = variants[variant]
            pol = LinUCBPolicy(default_lambda=lam, alpha=a_v, prior_weight=prior_weight,
                               use_prior=use_prior, context=context)
            sc, co, done = [], [], 0
            for cp in (c for c in CHECKPOINTS if c <= n_events):
                if cp > done:
                    run_policy(pol, stream[done:cp], snap, opts, sub.scores[done:cp], sub.costs[done:cp], learn=True)
                    done = cp
                pol.alpha, explore = 0.0, pol.alpha  # score the greedy policy; learning keeps exploring
                r = run_policy(pol, test_a, snap, opts, t_test.scores, t_test.costs)
                pol.alpha = explore
                sc.append(r.mean_score)
                co.append(r.mean_cost)
            curves[variant].append(sc)
            costs[variant].append(co)
    cps = [c for c in CHECKPOINTS if c <= n_events]
    mean = {v: np.mean(np.array(c), axis=0).tolist() for v, c in curves.items()}
    target = 0.9 * offline.mean_score
    reach = {v: next((cp for cp, s in zip(cps, m, strict=True) if s >= target), None) for v, m in mean.items()}
    return {
        "groups": {"prior_half": list(half_a), "online_half": list(half_b)},
        "sizes": {"prior_train": len(a_train), "stream_pool": len(b_train), "online_test": len(b_test)},
        "context": context, "validate": validate, "kappa": kappa, "lambda": lam,
        "alpha": {v: a for v, (_, a) in variants.items()}, "prior_weight": prior_weight, "seeds": seeds,
        "offline_full": {"score": offline.mean_score, "cost": offline.mean_cost},
        "offline_half_a_predictor": {"score": prior_only.mean_score, "cost": prior_only.mean_cost},
        "best_single_on_half": {"model": opts[best_j], "score": float(t_test.scores[:, best_j].mean()),
                                "cost": float(t_test.costs[:, best_j].mean())},
        "checkpoints": cps, "score": mean,
        "cost": {v: np.mean(np.array(c), axis=0).tolist() for v, c in costs.items()},
        "score_sd": {v: np.std(np.array(c), axis=0).tolist() for v, c in curves.items()},
        "events_to_90pct": reach,
        "recovery_at_500": {v: (m[cps.index(500)] / offline.mean_score if 500 in cps else None)
                            for v, m in mean.items()},
    }


def _with_features(views: list[Any], pred: Any, context: str) -> list[Any]:
    """Attach the predictor's feature vector (what the gateway passes as ``req.features``) when used."""
    import dataclasses

    if context == "estimates":
        return views
    block = structural_block(pred, [v.prompt_text for v in views])
    return [dataclasses.replace(v, features=f) for v, f in zip(views, block, strict=True)]


# ------------------------------------------------------------------ main


def _load(data: Path) -> tuple[list[Any], list[Any], dict[str, tuple[float, float]]]:
    from predictors.records import load_outcome_table

    base = data / "llmrouter"
    for f in ("dcrouter_train.json", "dcrouter_test.json", "default_llm.json"):
        if not (base / f).is_file():
            raise SystemExit(f"--data: {base / f} not found")
    return (load_outcome_table(base / "dcrouter_train.json"), load_outcome_table(base / "dcrouter_test.json"),
            _prices(base / "default_llm.json"))


def resolve_predictor(name: str, train_rows: list[Any], prices: dict[str, tuple[float, float]],
                      cost_model: str = "tokens") -> tuple[PredictorConfig, dict[str, Any] | None]:
    """``name`` from :data:`PREDICTOR_CONFIGS`, or ``"select"``: chosen on a validation fold of the train rows."""
    if name != "select":
        return PREDICTOR_CONFIGS[name], None
    sel = select_predictor(train_rows, prices, UTILITY_KAPPAS, cost_model=cost_model)
    return PREDICTOR_CONFIGS[sel["chosen"]], sel


def tune(data: Path, predictor: str, seeds: int, kappa: float, cost_model: str = "tokens") -> list[dict[str, Any]]:
    """Shift-experiment grid over context x alpha x prior weight, scored on held-out half-B train rows."""
    train_rows, test_rows, prices = _load(data)
    config, _ = resolve_predictor(predictor, train_rows, prices, cost_model)
    pred = trained_predictor(train_rows, config, "full")
    out = []
    for context in ("estimates", "both"):
        for alpha in (0.05, 0.1, 0.3):
            for pw in (1.0, 3.0, 10.0, 30.0):
                r = shift_experiment(train_rows, test_rows, prices, pred, config, kappa, seeds, alpha, pw,
                                     context, validate=True, cost_model=cost_model)
                row = {"context": context, "alpha": alpha, "prior_weight": pw,
                       "offline": r["offline_full"]["score"], **{f"{v}@500": r["score"][v][r["checkpoints"].index(500)]
                                                                for v in ("prior", "no_prior")}}
                print(json.dumps(row), flush=True)
                out.append(row)
    return out


def evaluate(data: Path, predictor: str, seeds: int, shift_kappa: float, alpha: float,
             prior_weight: float, context: str, alpha_no_prior: float, cost_model: str = "tokens") -> dict[str, Any]:
    """The whole evaluation as one JSON-ready dict."""
    from evals.predict import predictor_fn
    from evals.replay import run_replay
    from evals.replay_table import table_from_rows
    from evals.strategies import ReplayContext

    train_rows, test_rows, prices = _load(data)
    config, selection = resolve_predictor(predictor, train_rows, prices, cost_model)
    dprices = decision_prices(prices, cost_model)
    table = table_from_rows(test_rows, {m: pi + po for m, (pi, po) in prices.items()})
    pred = trained_predictor(train_rows, config, "full")
    ests = pred.predict_batch(table.prompts, table.options)
    snap = snapshot_from_prices(dprices)
    unit = lam_unit(views_for(table.prompts, ests), snap, STRONG)
    runs: dict[str, Any] = {}
    register_router_strategies(ests, dprices, unit, runs)
    t0 = time.time()
    rep = run_replay(table, ("fixed", "best_single", "oracle", "random", "router_utility", "router_tiers",
                             "router_linucb"), ReplayContext(predictor=predictor_fn(pred)), STRONG, WEAK)
    replay_s = time.time() - t0
    strat = rep["strategies"]
    bs = strat["best_single"]
    target = {}
    for fam in ("utility", "tiers", "linucb"):
        pts = [(r["cost"], r["score"]) for r in strat.values() if r["family"] == fam]
        c = cost_at_score(pts, bs["score"])
        target[fam] = {"cost_at_best_single_score": c, "fraction_of_best_single_cost": None if c is None
                       else c / bs["cost"], "max_score": max(p[1] for p in pts),
                       "score_at_40pct_cost": score_at_cost(pts, 0.4 * bs["cost"])}
    tiers_share = {k: float((runs[k].choice != table.options.index("gemma-2-9b-it")).mean())
                   for k in runs if k.startswith("tiers@")}
    t0 = time.time()
    shift = shift_experiment(train_rows, test_rows, prices, pred, config, shift_kappa, seeds, alpha,
                             prior_weight, context, alpha_no_prior=alpha_no_prior, cost_model=cost_model)
    return {"n_test": len(table.prompts), "predictor": config.key(), "cost_model": cost_model, "predictor_selection": selection,
            "lambda_unit": unit,
            "replay": rep, "replay_seconds": replay_s, "targets": target,
            "tiers_escalation_share": tiers_share, "pair": pair_metrics(table, ests, dprices, unit),
            "shift": shift, "shift_seconds": time.time() - t0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=default_data(), help="shared data folder (with llmrouter/)")
    ap.add_argument("--out", type=Path, default=Path("reports/router"), help="folder for results.json and plots")
    ap.add_argument("--predictor", default="select", choices=(*PREDICTOR_CONFIGS, "select"),
                    help="predictor configuration; 'select' picks one on a validation fold of train (default)")
    ap.add_argument("--cost-model", default="tokens", choices=("tokens", "table"),
                    help="prices the policies decide with: per-token prices (tokens) or the table's per-query cost")
    ap.add_argument("--seeds", type=int, default=5, help="stream orders averaged in the shift experiment")
    ap.add_argument("--shift-kappa", type=float, default=0.2, help="cost price in the shift experiment")
    # Defaults: the best prior@500 of `--tune --seeds 10` (held-out half-B train rows) with the
    # validation-chosen predictor (hashed-blend), reports/router/tune.jsonl; the same setting won
    # the earlier 3-seed tune of the hashed-linear predictor. The no-prior alpha tied at 0.05/0.1
    # there, so the extra no-prior curve keeps the more exploratory 0.3.
    ap.add_argument("--alpha", type=float, default=0.05, help="LinUCB exploration in the shift experiment")
    ap.add_argument("--alpha-no-prior", type=float, default=0.3,
                    help="exploration of the extra no-prior curve in the shift")
    ap.add_argument("--prior-weight", type=float, default=10.0, help="LinUCB prior strength l")
    ap.add_argument("--context", default="both", choices=("estimates", "both"), help="LinUCB context in the shift")
    ap.add_argument("--tune", action="store_true",
                    help="only the shift grid (context x alpha x prior weight) on held-out half-B train rows")
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    a = ap.parse_args(argv)
    if a.seeds < 1:
        raise SystemExit("--seeds: must be >= 1")
    if a.tune:
        rows = tune(a.data, a.predictor, a.seeds, a.shift_kappa, a.cost_model)
        if a.json:
            print(json.dumps({"tune": rows}))
        return 0
    res = evaluate(a.data, a.predictor, a.seeds, a.shift_kappa, a.alpha, a.prior_weight, a.context, a.alpha_no_prior,
                   a.cost_model)
    a.out.mkdir(parents=True, exist_ok=True)
    from router.eval_plots import plot

    res["plots"] = plot(res, a.out, STRONG, WEAK)
    if res["predictor_selection"] is not None:
        (a.out / "selection.json").write_text(json.dumps(res["predictor_selection"], indent=1), encoding="utf-8")
    (a.out / "results.json").write_text(json.dumps(res, indent=1, default=float), encoding="utf-8")
    strat = res["replay"]["strategies"]
    print(f"{'strategy':34s} {'score':>7s} {'cost':>7s}")
    for name, r in strat.items():
        print(f"{name:34s} {r['score']:7.3f} {r['cost']:7.3f}")
    print("AIQ:", {k: round(v, 4) for k, v in res["replay"].get("aiq", {}).items()})
    print("pair:", {k: {m: (None if x is None else round(x, 3)) for m, x in v.items()}
                    for k, v in res["pair"]["routers"].items()})
    print("predictor:", res["predictor"])
    print("targets:", res["targets"])
    sh = res["shift"]
    print("shift:", {"offline": sh["offline_full"], "score": sh["score"], "events_to_90pct": sh["events_to_90pct"]})
    if a.json:
        print(json.dumps({"predictor": res["predictor"], "targets": res["targets"], "aiq": res["replay"].get("aiq"), "pair": res["pair"]["routers"],
                          "shift": {k: sh[k] for k in ("offline_full", "score", "events_to_90pct",
                                                       "recovery_at_500")}}, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
