"""Averaged predictors on the validation fold only: the probe that led to the `hashed-blend` candidate.

Trains (or loads from the router-eval cache) the three single configurations
on the fit rows of :func:`router.eval_predictors.validation_fold`, averages their
calibrated P(correct) in every pair and all three, and prints the selection
criteria of :func:`router.eval_predictors.utility_criteria` for each. No test
row is read.

    HF_HUB_OFFLINE=1 THINKGATE_EMBED_DISK_CACHE=1 python reports/router/blend_probe.py
"""

from __future__ import annotations

import dataclasses
import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from evals.router_eval import UTILITY_KAPPAS, _load, default_data  # noqa: E402
from router.eval_predictors import (  # noqa: E402
    PREDICTOR_CONFIGS,
    trained_predictor,
    utility_criteria,
    validation_fold,
)

SINGLES = ("hashed-linear", "hashed-rbf", "minilm8-rbf")


def main() -> None:
    train_rows, _test_rows, prices = _load(default_data())
    fold = validation_fold(train_rows, prices)
    t = fold.table
    est = {n: trained_predictor(fold.fit, PREDICTOR_CONFIGS[n], f"val-{n}").predict_batch(t.prompts, t.options)
           for n in SINGLES}
    print(f"best single on validation: {t.options[fold.best_j]} {fold.best_score:.4f} at {fold.best_cost:.2f}")
    for r in range(1, len(SINGLES) + 1):
        for combo in itertools.combinations(SINGLES, r):
            avg = [[dataclasses.replace(row[j], p_correct=sum(est[n][i][j].p_correct for n in combo) / len(combo))
                    for j, _ in enumerate(t.options)] for i, row in enumerate(est[combo[0]])]
            c = utility_criteria(fold, avg, UTILITY_KAPPAS)
            frac = c["fraction_of_cost_at_best_score"]
            print(f"{' + '.join(combo):45s} score@40% {c['score_at_40pct_cost']:.4f}  "
                  f"cost share at best single score {'-' if frac is None else f'{frac:.1%}'}")


if __name__ == "__main__":
    main()
