"""Difficulty-label prediction from text (e.g. BIRD's simple / moderate / challenging).

A class-balanced multinomial logistic regression on any registered featurizer
(all blocks at unit weight),
scored by stratified k-fold cross-validated macro-F1 against two baselines: the
majority class, and a class-balanced logistic regression on the log character
and word counts only ("length-only").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["cross_validate_difficulty", "load_labelled_texts"]


def load_labelled_texts(path: str | Path, text_fields: Sequence[str], label_field: str) -> tuple[list[str], list[str]]:
    """Read a JSON list / JSONL file; text = the given fields joined by newlines.

    Raises ``ValueError`` naming the record index and the missing field.
    """
    from predictors.records import _read_objects

    texts, labels = [], []
    for i, obj in enumerate(_read_objects(path)):
        if not isinstance(obj, dict):
            raise ValueError(f"{path}: record {i}: must be a JSON object")
        for f in (*text_fields, label_field):
            if f not in obj:
                raise ValueError(f"{path}: record {i}, field '{f}': missing")
        texts.append("\n".join(str(obj[f] or "") for f in text_fields))
        labels.append(str(obj[label_field]))
    return texts, labels


def _length_features(texts: Sequence[str]) -> np.ndarray:
    return np.array([[np.log1p(len(t)), np.log1p(len(t.split()))] for t in texts])


def cross_validate_difficulty(
    texts: Sequence[str], labels: Sequence[str], featurizer: str = "hashed+structural", folds: int = 5, C: float = 4.0, seed: int = 0
) -> dict[str, Any]:
    """Cross-validated macro-F1 (mean and std over folds) of the model and both baselines."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    from predictors.featurizers import get_featurizer

    y = np.asarray(labels)
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise ValueError("labels: need at least two classes")
    majority = classes[np.argmax(counts)]
    scores: dict[str, list[float]] = {"model": [], "majority": [], "length_only": []}
    lengths = _length_features(texts)
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    # Built once, refitted per fold: fit replaces all fitted state (idf, means/stds), and a
    # stateless part (MiniLM) keeps its embedding cache across folds instead of re-embedding.
    # Unit block weights: for a logistic model the standardised structural block
    # needs its full scale (the 0.05 default is tuned for the ridge kernel).
    feat = get_featurizer(featurizer, [1.0] * len(featurizer.split("+")))
    for train, test in skf.split(np.zeros(len(y)), y):
        feat.fit([texts[i] for i in train])
        Xtr, Xte = feat.transform([texts[i] for i in train]), feat.transform([texts[i] for i in test])
        clf = LogisticRegression(C=C, class_weight="balanced", max_iter=3000, random_state=seed).fit(Xtr, y[train])
        scores["model"].append(f1_score(y[test], clf.predict(Xte), average="macro"))
        scores["majority"].append(f1_score(y[test], np.full(len(test), majority), average="macro"))
        sc = StandardScaler().fit(lengths[train])
        lr = LogisticRegression(class_weight="balanced", max_iter=1000).fit(sc.transform(lengths[train]), y[train])
        scores["length_only"].append(f1_score(y[test], lr.predict(sc.transform(lengths[test])), average="macro"))
    return {
        "n": len(y),
        "classes": {str(c): int(n) for c, n in zip(classes, counts, strict=True)},
        "featurizer": featurizer,
        "folds": folds,
        "C": C,
        **{f"{k}_macro_f1": float(np.mean(v)) for k, v in scores.items()},
        **{f"{k}_macro_f1_std": float(np.std(v)) for k, v in scores.items()},
    }


def _main_table(result: dict[str, Any]) -> str:
    rows = [f"{'predictor':<14} {'macro-F1':>9} {'std':>7}"]
    for k in ("model", "length_only", "majority"):
        rows.append(f"{k:<14} {result[k + '_macro_f1']:>9.3f} {result[k + '_macro_f1_std']:>7.3f}")
    return "\n".join(rows)


def run_cli(path: str, text_fields: Sequence[str], label_field: str, featurizer: str, folds: int, as_json: bool) -> None:
    """Print the table (and optionally one JSON line) for ``thinkgate predictors difficulty``."""
    texts, labels = load_labelled_texts(path, text_fields, label_field)
    result = cross_validate_difficulty(texts, labels, featurizer, folds)
    print(f"{path}: {result['n']} texts, classes {result['classes']}, {folds}-fold CV, featurizer {featurizer}")
    print(_main_table(result))
    if as_json:
        print(json.dumps(result))
