"""Thinking-length p90 of the ``structural`` predictor: coverage, pinball loss, share at the cap.

    python reports/predictors_testbed/cv_lengths.py CODE_ROOT TRAIN_TABLE [TEST_TABLE]

``CODE_ROOT`` is a directory holding the ``predictors`` package to evaluate (the
working tree, or an export of an older commit, e.g. ``git archive COMMIT
predictors | tar -x -C /tmp/old``), so two versions of the length heads can be
compared on the same data. Without ``TEST_TABLE``: 5-fold cross-validation on
``TRAIN_TABLE`` (folds by a fixed seed), which is how the length method was
chosen without the test split. With it: train on ``TRAIN_TABLE``, evaluate on
``TEST_TABLE``. Columns: p90 coverage, mean pinball loss at tau = 0.9 (tokens),
share of lengths at the cap (``>= budget - 1``), coverage among the others.
"""

from __future__ import annotations

import json
import sys

import numpy as np


def main() -> None:
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    sys.path.insert(0, sys.argv[1])
    from predictors.records import validate_outcome_row
    from predictors.train import train_predictor, training_set_from_table

    def load(path: str) -> list:
        return [validate_outcome_row(o, i, path) for i, o in enumerate(json.load(open(path)))]

    def run(tr_rows: list, te_rows: list) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        tr, te = training_set_from_table(tr_rows), training_set_from_table(te_rows)
        pred = train_predictor(tr, "structural")
        X = pred.featurizer.transform(te.prompts)
        res = {}
        for jt, o in enumerate(te.options):
            j = pred.options.index(o)
            samp = [(r, v) for r, oo, v in te.thinking if oo == jt]
            r = np.array([a for a, _ in samp])
            v = np.array([b for _, b in samp], float)
            res[o] = (v, pred.lengths(X[r], [pred.thinking_heads[j]])[0][1])
        return res

    rows = load(sys.argv[2])
    if len(sys.argv) == 4:
        parts = [run(rows, load(sys.argv[3]))]
    else:
        perm = np.random.default_rng(123).permutation(len(rows))
        folds = [perm[f::5] for f in range(5)]
        parts = [run([rows[i] for i in np.setdiff1d(perm, f)], [rows[i] for i in f]) for f in folds]
    print(f"{'option':14s} {'cover':>6s} {'pinball':>8s} {'at cap':>7s} {'cov<cap':>7s}")
    for o in parts[0]:
        v = np.concatenate([p[o][0] for p in parts])
        q = np.concatenate([p[o][1] for p in parts])
        d = v - q
        pin = float(np.mean(np.maximum(0.9 * d, -0.1 * d)))
        b = int(o.split("@")[1]) if "@" in o else None
        below = v < (b - 1) if b is not None else np.ones_like(v, bool)
        cov_below = float(np.mean(v[below] <= q[below])) if below.any() else float("nan")
        print(f"{o:14s} {np.mean(v <= q):6.3f} {pin:8.2f} {1 - below.mean():7.3f} {cov_below:7.3f}")


if __name__ == "__main__":
    main()
