"""Dataset loaders on small fixtures (and on the shared data when present)."""

from __future__ import annotations

from pathlib import Path

import pytest

from evals.datasets import DatasetError, load_dataset, load_jsonl, load_testbed, sample, shared_data_dir

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "evals"


def test_gsm8k_gold_after_marker_without_commas():
    items = load_dataset("gsm8k", FIX / "gsm8k.jsonl")
    assert [i.gold for i in items] == ["7", "2400", "-3"]
    assert items[0].grader == "number" and items[0].messages[-1]["role"] == "user"
    assert "\\boxed{}" in items[0].prompt_text and items[0].metadata["dataset"] == "gsm8k"


def test_math500_metadata():
    items = load_dataset("math500", FIX / "math500.jsonl")
    assert items[0].id == "test/prealgebra/1.json" and items[0].gold == "\\frac{5}{6}"
    assert items[1].metadata == {"dataset": "math500", "subject": "Algebra", "level": 3, "difficulty": "level 3"}


def test_competition_formats():
    assert load_dataset("aime24", FIX / "aime24.jsonl")[0].id == "aime24-60"
    a25 = load_dataset("aime25", FIX / "aime25.jsonl")[0]
    assert a25.id == "aime25-0" and a25.gold == "336^\\circ" and a25.grader == "math"
    assert load_dataset("amc23", FIX / "amc23.jsonl")[0].gold == "27"  # float 27.0 stays integral


def test_bird_question_evidence_difficulty():
    items = load_dataset("bird", FIX / "bird.json")
    assert "Evidence: rate = a / b" in items[0].prompt_text and "Evidence" not in items[1].prompt_text
    assert [i.metadata["difficulty"] for i in items] == ["simple", "challenging"]
    assert items[0].gold.startswith("SELECT") and items[0].id == "bird-0"


def test_generic_jsonl_field_mapping():
    items = load_jsonl(FIX / "generic.jsonl", "data.q", "gold", "normalized", id_field="uid", meta_fields=("tier",),
                       instruction="Answer briefly.")
    assert [i.id for i in items] == ["g1", "g2", "g3"]
    assert items[0].prompt_text == "Capital of France?\n\nAnswer briefly."
    assert items[2].gold == "4" and items[1].metadata == {"dataset": "generic", "tier": "hard"}
    with pytest.raises(DatasetError, match="record 0: missing field 'data.x'"):
        load_jsonl(FIX / "generic.jsonl", "data.x", "gold")


def test_limit_and_seeded_sampling():
    items = load_jsonl(FIX / "generic.jsonl", "data.q", "gold")
    assert [i.id for i in sample(items, 2, None)] == [items[0].id, items[1].id]
    a, b = sample(items, 2, 7), sample(items, 2, 7)
    assert [i.id for i in a] == [i.id for i in b] and len(a) == 2
    assert {i.id for i in sample(items, None, 3)} == {i.id for i in items}
    assert sorted({tuple(i.id for i in sample(items, 3, s)) for s in range(20)}) != [tuple(i.id for i in items)]
    with pytest.raises(DatasetError, match="limit"):
        sample(items, -1, None)


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(DatasetError, match="unknown dataset 'nope', available"):
        load_dataset("nope")
    bad = tmp_path / "g.jsonl"
    bad.write_text('{"question": "q", "answer": "no marker"}\n')
    with pytest.raises(DatasetError, match="record 0: field 'answer' has no '####"):
        load_dataset("gsm8k", bad)
    bad.write_text('{"question": "q"\n')
    with pytest.raises(DatasetError, match="line 1: invalid JSON"):
        load_dataset("gsm8k", bad)
    with pytest.raises(DatasetError, match="not found"):
        load_dataset("gsm8k", tmp_path / "absent.jsonl")


def test_testbed_tasks():
    pytest.importorskip("testbed.tasks", reason="testbed.tasks is not there yet")
    items = load_testbed(limit=12, seed=0)
    assert len(items) == 12 and items[0].grader == "testbed"
    assert {i.metadata["difficulty"] for i in items} <= {"easy", "medium", "hard"}
    assert items == load_testbed(limit=12, seed=0)  # deterministic


@pytest.mark.skipif(not (shared_data_dir() / "math500_test.jsonl").is_file(), reason="../shared/data is absent")
def test_shared_data_sizes():
    assert len(load_dataset("gsm8k")) == 1319
    assert len(load_dataset("math500")) == 500
    assert len(load_dataset("bird")) == 1534
    assert len(load_dataset("aime25", limit=5, seed=1)) == 5
