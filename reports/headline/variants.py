"""Headline variants, every choice made on the TRAIN table only (run from the repository root).

The rules below were fixed before any test-split result of the current models was seen:

* featurizer: the candidate with the lowest mean held-out Brier score of P(correct)
  (all options pooled) in ``--folds``-fold cross-validation on the train table;
* operating point ("cv-ratio" rule): out-of-fold predictions on the train table,
  best uniform option on train (highest accuracy, then fewest tokens) ``u``;
  knapsack capacity ``r * sum_i predicted_thinking[i, u]``; ``r*`` is the smallest
  grid value from which the out-of-fold knapsack accuracy stays >= ``u``'s train
  accuracy for every larger grid value. On test the capacity is ``r*`` times the
  test set's *predicted* thinking total of ``u``: no test outcome is used;
* solve-or-skip: ``budget.mckp.with_skip`` adds a zero-cost option of value 0
  (a skipped query scores 0 and spends 0 thinking tokens);
* both models vs ``tg-small`` only: the same knapsack restricted to one model's options.

Every variant reports the knapsack frontier's matched-accuracy saving (operating
point picked with test labels: an upper bound) and the label-free operating point.

    OMP_NUM_THREADS=1 python reports/headline/variants.py --train-table reports/headline/train_table.json \\
        --test-table reports/headline/test_table.json --out reports/headline/variants.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

CANDIDATES = ("structural", "hashed", "hashed+structural")
R_GRID = np.round(np.arange(0.05, 1.501, 0.01), 4)


def _train(rows: list[Any], featurizer: str, seed: int) -> Any:
    from predictors.train import train_predictor, training_set_from_table

    return train_predictor(training_set_from_table(rows), featurizer, seed=seed)


def _predict(pred: Any, prompts: list[str], options: list[str]) -> tuple[np.ndarray, np.ndarray]:
    ests = pred.predict_batch(prompts, options)
    v = np.array([[e.p_correct for e in row] for row in ests], dtype=np.float64)
    c = np.array([[e.thinking_tokens_mean for e in row] for row in ests], dtype=np.float64)
    return v, c


def oof(rows: list[Any], options: list[str], featurizer: str, folds: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold predicted P(correct) and thinking tokens ``[N, M]`` on ``rows`` (folds by prompt)."""
    n = len(rows)
    perm = np.random.default_rng(seed).permutation(n)
    v, c = np.zeros((n, len(options))), np.zeros((n, len(options)))
    for f in range(folds):
        held = np.sort(perm[f::folds])
        keep = np.setdiff1d(np.arange(n), held)
        pred = _train([rows[i] for i in keep], featurizer, seed)
        v[held], c[held] = _predict(pred, [rows[i].prompt for i in held], options)
    return v, c


def frontier(values: np.ndarray, pcost: np.ndarray, think: np.ndarray, scores: np.ndarray,
             n_cap: int = 80) -> list[dict[str, float]]:
    """Knapsack (LP-greedy, as served) at ``n_cap`` capacities: realised thinking total and accuracy."""
    from evals.strategies import knapsack_choice

    rows = np.arange(len(values))
    out = []
    for cap in np.linspace(float(pcost.min(axis=1).sum()), float(pcost.max(axis=1).sum()), n_cap):
        ch = knapsack_choice(values, pcost, float(cap))
        out.append({"capacity": float(cap), "thinking_total": float(think[rows, ch].sum()),
                    "accuracy": float(scores[rows, ch].mean()),
                    "predicted_accuracy": float(values[rows, ch].mean())})
    return out


def at_capacity(values: np.ndarray, pcost: np.ndarray, think: np.ndarray, scores: np.ndarray,
                cap: float) -> dict[str, float]:
    """Realised thinking total, accuracy and share of each option's use at one capacity."""
    from evals.strategies import knapsack_choice

    rows = np.arange(len(values))
    ch = knapsack_choice(values, pcost, cap)
    return {"capacity": cap, "thinking_total": float(think[rows, ch].sum()),
            "accuracy": float(scores[rows, ch].mean()), "predicted_accuracy": float(values[rows, ch].mean()),
            "choice": ch}


def paired_bootstrap(scores: np.ndarray, think: np.ndarray, ch: np.ndarray, u: int, reps: int = 2000,
                     seed: int = 0) -> dict[str, list[float]]:
    """95% percentile intervals (resampling test queries) of the accuracy gain in points and token change."""
    rng = np.random.default_rng(seed)
    rows = np.arange(len(scores))
    ks_s, ks_t, u_s, u_t = scores[rows, ch], think[rows, ch], scores[:, u], think[:, u]
    gain, change = [], []
    for _ in range(reps):
        i = rng.integers(0, len(rows), len(rows))
        gain.append(100 * (ks_s[i].mean() - u_s[i].mean()))
        change.append(ks_t[i].sum() / max(u_t[i].sum(), 1.0) - 1)
    return {"accuracy_gain_pts_95": np.percentile(gain, [2.5, 97.5]).round(2).tolist(),
            "token_change_95": np.percentile(change, [2.5, 97.5]).round(4).tolist()}


def _point(values: np.ndarray, pcost: np.ndarray, think: np.ndarray, scores: np.ndarray, cap: float,
           ub: int, options: list[str], levels: list[Any]) -> dict[str, Any]:
    """One label-free operating point with its change against the best uniform option ``ub``."""
    p = at_capacity(values, pcost, think, scores, cap)
    ch = p.pop("choice")
    t_b, a_b = float(think[:, ub].sum()), float(scores[:, ub].mean())
    p["token_change"] = p["thinking_total"] / t_b - 1
    p["accuracy_change_pts"] = 100 * (p["accuracy"] - a_b)
    p["bootstrap"] = paired_bootstrap(scores, think, ch, ub)
    p["choices"] = {o: int(k) for o, k in zip(options, np.bincount(ch, minlength=len(options)), strict=True) if k}
    by: dict[str, dict[str, int]] = {}
    for lv, c in zip(levels, ch, strict=True):
        by.setdefault(str(lv), {}).setdefault(options[c], 0)
        by[str(lv)][options[c]] += 1
    p["choices_by_level"] = by
    return p


def best_uniform(think: np.ndarray, scores: np.ndarray) -> int:
    """Index of the highest-accuracy option, ties broken by fewer thinking tokens."""
    acc, tok = scores.mean(axis=0), think.sum(axis=0)
    return int(min(range(len(acc)), key=lambda j: (-round(float(acc[j]), 12), float(tok[j]))))


def cv_ratio(values: np.ndarray, pcost: np.ndarray, think: np.ndarray, scores: np.ndarray, u: int) -> float | None:
    """Smallest grid ``r`` from which the knapsack at ``r * sum(pcost[:, u])`` stays >= ``u``'s accuracy."""
    target = float(scores[:, u].mean())
    base = float(pcost[:, u].sum())
    ok = [at_capacity(values, pcost, think, scores, float(r) * base)["accuracy"] >= target - 1e-12 for r in R_GRID]
    for k in range(len(R_GRID)):
        if all(ok[k:]):
            return float(R_GRID[k])
    return None


def summarise(name: str, values: np.ndarray, pcost: np.ndarray, think: np.ndarray, scores: np.ndarray,
              options: list[str], u_train: str, r: float | None, levels: list[Any],
              skip: bool = False) -> dict[str, Any]:
    """One variant on the test table: frontier match (label-picked), cv-ratio and pred-match points (label-free).

    pred-match is ``evals.headline.compare``'s rule: the cheapest frontier capacity whose
    predicted accuracy reaches the best uniform option's predicted accuracy.
    """
    if skip:
        from budget.mckp import with_skip

        values, pcost = with_skip(values, pcost, 0.0)
        think = np.column_stack([think, np.zeros(len(think))])
        scores = np.column_stack([scores, np.zeros(len(scores))])
        options = [*options, "skip"]
    k = len(options) - (1 if skip else 0)  # the skip column is no uniform option
    ub = best_uniform(think[:, :k], scores[:, :k])
    t_b, a_b = float(think[:, ub].sum()), float(scores[:, ub].mean())
    fr = frontier(values, pcost, think, scores)
    reach = [f["thinking_total"] for f in fr if f["accuracy"] >= a_b - 1e-12]
    under = [f["accuracy"] for f in fr if f["thinking_total"] <= t_b]
    out: dict[str, Any] = {
        "variant": name, "n": len(scores), "best_uniform": options[ub], "best_uniform_tokens": t_b,
        "best_uniform_accuracy": a_b, "frontier_tokens_to_match": min(reach) if reach else None,
        "frontier_saving": (1 - min(reach) / t_b) if reach else None,
        "frontier_best_within_T": max(under) if under else None,
    }
    for pts in (0.01, 0.02):
        r2 = [f["thinking_total"] for f in fr if f["accuracy"] >= a_b - pts - 1e-12]
        out[f"frontier_saving_minus_{round(pts * 100)}pt"] = (1 - min(r2) / t_b) if r2 else None
    if r is not None and u_train in options:
        cap = r * float(pcost[:, options.index(u_train)].sum())
        out["cv_ratio_point"] = _point(values, pcost, think, scores, cap, ub, options, levels)
    target = float(values[:, ub].mean())
    fits = [f["capacity"] for f in fr if f["predicted_accuracy"] >= target - 1e-12]
    if fits:
        out["pred_match_point"] = _point(values, pcost, think, scores, min(fits), ub, options, levels)
    out["frontier"] = fr
    return out


def main(argv: list[str] | None = None) -> int:
    """Run every variant; write ``--out`` (JSON) and print a table."""
    from evals.replay_table import table_from_rows
    from predictors.records import load_outcome_table, parse_option

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-table", type=Path, required=True)
    ap.add_argument("--test-table", type=Path, action="append", required=True, help="repeatable")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    if a.folds < 2:
        ap.error(f"--folds: must be >= 2, got {a.folds}")
    train_rows = load_outcome_table(a.train_table)
    tr = table_from_rows(train_rows)
    tr_think = np.nan_to_num(tr.thinking, nan=0.0)
    # 1. featurizer by train CV (Brier of P(correct), all options pooled)
    cv: dict[str, Any] = {}
    oofs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for f in CANDIDATES:
        v, c = oof(train_rows, tr.options, f, a.folds, a.seed)
        oofs[f] = (v, c)
        cv[f] = {"brier": float(np.mean((v - tr.scores) ** 2)),
                 "thinking_mae": float(np.mean(np.abs(c - tr_think)))}
        print(f"train CV {f:20s} brier {cv[f]['brier']:.4f} thinking MAE {cv[f]['thinking_mae']:.2f}", flush=True)
    feat = min(CANDIDATES, key=lambda f: cv[f]["brier"])
    # 2. operating-point ratio from the out-of-fold knapsack on train
    u = best_uniform(tr_think, tr.scores)
    ratios = {f: cv_ratio(*oofs[f], tr_think, tr.scores, u) for f in CANDIDATES}
    print(f"chosen featurizer {feat}; train best uniform {tr.options[u]}; r* {ratios}", flush=True)
    result: dict[str, Any] = {"train_table": str(a.train_table), "folds": a.folds, "seed": a.seed,
                              "featurizer_cv": cv, "chosen_featurizer": feat, "train_best_uniform": tr.options[u],
                              "train_best_uniform_accuracy": float(tr.scores[:, u].mean()),
                              "cv_ratio": ratios, "tests": []}
    for path in a.test_table:
        te = table_from_rows(load_outcome_table(path))
        think = np.nan_to_num(te.thinking, nan=0.0)
        levels = [m.get("level") for m in te.meta]
        per: list[dict[str, Any]] = []
        for f in dict.fromkeys(["structural", feat]):
            v, c = _predict(_train(train_rows, f, a.seed), te.prompts, te.options)
            per.append(summarise(f"{f}", v, c, think, te.scores, te.options, tr.options[u], ratios[f], levels))
            per.append(summarise(f"{f} + skip", v, c, think, te.scores, te.options, tr.options[u], ratios[f],
                                 levels, skip=True))
            small = [j for j, o in enumerate(te.options) if parse_option(o)[0] == "tg-small"]
            per.append(summarise(f"{f}, tg-small options only", v[:, small], c[:, small], think[:, small],
                                 te.scores[:, small], [te.options[j] for j in small], tr.options[u], ratios[f],
                                 levels))
        result["tests"].append({"test_table": str(path), "variants": per})
        for p in per:
            fs = "-" if p["frontier_saving"] is None else f"{p['frontier_saving']:.1%}"
            m1 = p["frontier_saving_minus_1pt"]
            print(f"{path} n={p['n']} {p['variant']}: best uniform {p['best_uniform']} {p['best_uniform_accuracy']:.4f}"
                  f" @ {p['best_uniform_tokens']:.0f}; frontier match {fs} (-1pt {'-' if m1 is None else f'{m1:.1%}'})",
                  flush=True)
            for key in ("cv_ratio_point", "pred_match_point"):
                q = p.get(key)
                if q is not None:
                    b = q["bootstrap"]
                    print(f"    {key:17s} {q['accuracy']:.4f} @ {q['thinking_total']:.0f} ({q['token_change']:+.1%}, "
                          f"{q['accuracy_change_pts']:+.2f} pt; 95% CI pts {b['accuracy_gain_pts_95']}, tokens "
                          f"{b['token_change_95']})", flush=True)
    a.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
