"""Outcome record / wide table formats: validation errors, round trips, pivoting."""

from __future__ import annotations

import json

import pytest

from predictors.records import (
    OutcomeRecord,
    RecordError,
    load_outcome_records,
    load_outcome_table,
    messages_to_prompt,
    option_name,
    parse_option,
    records_to_table,
    validate_outcome_record,
    write_outcome_records,
    write_outcome_table,
)


def test_option_names_round_trip():
    assert option_name("qwen3-0.6b", None) == "qwen3-0.6b"
    assert option_name("qwen3-0.6b", 512) == "qwen3-0.6b@512"
    assert parse_option("qwen3-0.6b@512") == ("qwen3-0.6b", 512)
    assert parse_option("qwen3-0.6b") == ("qwen3-0.6b", None)
    # A non-integer suffix is part of the model name, not a budget.
    assert parse_option("org/model@v2") == ("org/model@v2", None)
    assert parse_option("m@0") == ("m", 0)
    with pytest.raises(ValueError, match="thinking_budget"):
        option_name("m", -1)
    with pytest.raises(ValueError, match="model"):
        option_name("", 3)


def test_record_errors_name_index_and_field():
    with pytest.raises(RecordError, match=r"record 3, field 'score': must be in \[0, 1\]") as e:
        validate_outcome_record({"prompt": "x", "model": "m", "score": 1.5}, 3)
    assert e.value.index == 3 and e.value.field == "score"
    with pytest.raises(RecordError, match="record 0, field 'prompt'"):
        validate_outcome_record({"model": "m", "score": 1}, 0)
    with pytest.raises(RecordError, match="field 'model'"):
        validate_outcome_record({"prompt": "x", "score": 1}, 1)
    with pytest.raises(RecordError, match="field 'score': missing"):
        validate_outcome_record({"prompt": "x", "model": "m"}, 1)
    with pytest.raises(RecordError, match="field 'thinking_tokens'"):
        validate_outcome_record({"prompt": "x", "model": "m", "score": 0, "thinking_tokens": -4}, 2)
    with pytest.raises(RecordError, match="field 'thinking_budget': must be an integer"):
        validate_outcome_record({"prompt": "x", "model": "m", "score": 0, "thinking_budget": 1.5}, 2)


def test_records_file_round_trip_and_bad_line(tmp_path):
    recs = [
        {"prompt": "What is 2+2?", "dataset": "toy", "model": "a", "thinking_budget": 256, "score": 1,
         "thinking_tokens": 100, "answer_tokens": 5, "prompt_tokens": 9, "cost_usd": 0.001, "latency_s": 0.2,
         "finish_reason": "stop", "meta": {"seed": 1}},
        {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": [{"type": "text", "text": "hi"}]}],
         "model": "b", "score": 0.0},
    ]
    path = tmp_path / "out.jsonl"
    assert write_outcome_records(recs, path) == 2
    loaded = load_outcome_records(path)
    assert loaded[0].option == "a@256" and loaded[0].thinking_tokens == 100
    assert loaded[1].option == "b" and loaded[1].text == "be brief\n\nhi"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(recs[0]) + "\n" + json.dumps({"prompt": "x", "model": "m", "score": "high"}) + "\n")
    with pytest.raises(RecordError, match=r"bad.jsonl, record 1, field 'score'"):
        load_outcome_records(bad)


def test_table_validation_and_round_trip(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps([{"question": "q1", "scores": {"a": 1, "b@64": 0}, "costs": {"a": 0.2}, "cluster_id": 3}]))
    rows = load_outcome_table(path)
    assert rows[0].scores == {"a": 1.0, "b@64": 0.0} and rows[0].costs == {"a": 0.2}
    assert rows[0].meta == {"cluster_id": 3}
    out = tmp_path / "t2.json"
    write_outcome_table(rows, out)
    assert load_outcome_table(out) == rows
    path.write_text(json.dumps([{"question": "q1", "scores": {"a": 1}}, {"question": "q2", "scores": {}}]))
    with pytest.raises(RecordError, match="record 1, field 'scores'"):
        load_outcome_table(path)
    path.write_text(json.dumps([{"question": "q1", "scores": {"a": 1}, "costs": {"a": -1}}]))
    with pytest.raises(RecordError, match=r"field 'costs.a'"):
        load_outcome_table(path)
    path.write_text(json.dumps([{"scores": {"a": 1}}]))
    with pytest.raises(RecordError, match="field 'question'"):
        load_outcome_table(path)


def test_records_to_table_averages_repeats():
    recs = [
        OutcomeRecord(model="m", score=1.0, prompt="p", thinking_budget=128, thinking_tokens=100, cost_usd=0.1),
        OutcomeRecord(model="m", score=0.0, prompt="p", thinking_budget=128, thinking_tokens=120, cost_usd=0.3),
        OutcomeRecord(model="n", score=1.0, prompt="p", dataset="gsm8k"),
        OutcomeRecord(model="n", score=0.0, messages=[{"role": "user", "content": "other"}]),
    ]
    rows = records_to_table(recs)
    assert [r.prompt for r in rows] == ["p", "other"]
    assert rows[0].scores == {"m@128": 0.5, "n": 1.0}
    assert rows[0].thinking_tokens == {"m@128": 110.0}
    assert rows[0].costs == pytest.approx({"m@128": 0.2})
    assert rows[0].meta == {"dataset": "gsm8k"}
    assert messages_to_prompt([{"role": "user", "content": None}]) == ""


def test_package_import_is_light():
    import subprocess
    import sys

    code = "import sys, predictors, predictors.cli; print(any(m in sys.modules for m in ('numpy', 'sklearn', 'scipy')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
