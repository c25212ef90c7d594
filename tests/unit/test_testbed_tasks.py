"""Task family: grading (incl. malformed answers), determinism, disjoint splits, trace shapes."""

import random

import pytest

from testbed import tasks
from testbed.tasks import Problem


def test_problem_text_and_answer():
    p = Problem(2, (3, 8, 5))
    assert p.text == "sum a3 b8 c5"
    assert p.answer == 16
    assert p.labels == "abc"


@pytest.mark.parametrize(
    ("completion", "score"),
    [
        ("a3 0+3=3\n</think>\n16", 1.0),
        ("\n16", 1.0),  # answer part only, as a reasoning parser returns it
        ("c:16\n</think>\n16<|im_end|>", 1.0),
        ("</think>\n 16 apples", 1.0),
        ("</think>\n17", 0.0),
        ("</think>\n-16", 0.0),
        ("</think>\n", 0.0),
        ("", 0.0),
        ("</think>\nsixteen", 0.0),
        ("a3 16 </think>\nabc", 0.0),  # the 16 inside the thinking must not count
        ("</think>\n1" + "6" * 5000, 0.0),
        ("</think>\n16</think>\n15", 0.0),  # the last </think> decides
    ],
)
def test_grade(completion, score):
    assert tasks.grade(Problem(2, (3, 8, 5)), completion) == score


def test_grade_never_raises_on_garbage():
    p = Problem(1, (1, 2))
    for junk in [None, 3, b"3", "\x00\x00", "<|im_end|>3", "</think></think></think>"]:
        assert tasks.grade(p, junk) in (0.0, 1.0)  # type: ignore[arg-type]
    assert tasks.parse_answer("<|im_end|>3") is None  # text after the end of turn is ignored


def test_sampling_is_deterministic_and_balanced():
    a = tasks.sample_problems(48, "test", seed=7)
    b = tasks.sample_problems(48, "test", seed=7)
    c = tasks.sample_problems(48, "test", seed=8)
    assert a == b
    assert a != c
    counts = {d: sum(p.difficulty == d for p in a) for d in tasks.DIFFICULTIES}
    assert set(counts.values()) == {4}
    assert all(len(p.terms) == p.difficulty + 1 and all(1 <= t <= 9 for t in p.terms) for p in a)


def test_splits_are_disjoint_and_labelled():
    seen = {}
    for split in ("train", "val", "test"):
        for p in tasks.sample_problems(600, split, seed=0, difficulties=[3, 6, 12]):
            assert tasks.split_of(p) == split
            seen.setdefault(p.text, set()).add(split)
    assert all(len(s) == 1 for s in seen.values())
    # The hash split is roughly 80/10/10.
    rng = random.Random(0)
    draws = [tasks.split_of(tasks.make_problem(8, rng)) for _ in range(4000)]
    assert 0.07 < draws.count("test") / 4000 < 0.13
    assert 0.74 < draws.count("train") / 4000 < 0.86


def test_thinking_grows_with_difficulty_and_style():
    rng = random.Random(1)
    for style in tasks.STYLES:
        lengths = [len(tasks.render_thinking(tasks.make_problem(d, rng), style)) for d in tasks.DIFFICULTIES]
        assert lengths == sorted(lengths) and lengths[-1] > 3 * lengths[0]
    p = tasks.make_problem(9, rng)
    concise, step, careful = (len(tasks.render_thinking(p, s)) for s in tasks.STYLES)
    assert concise < step < careful
    assert tasks.render_thinking(p, "step").count("\n") == len(p.terms)


def test_worked_solutions_are_correct():
    p = Problem(3, (9, 9, 5, 8))
    assert tasks.render_thinking(p, "step") == "a9 0+9=9\nb9 9+9=18\nc5 18+5=23\nd8 23+8=31\n"
    assert tasks.render_thinking(p, "concise") == "a:9\nb:18\nc:23\nd:31\n"
    assert tasks.render_thinking(p, "careful").splitlines()[2] == "c5 18+5: 8+5=13 carry 1 so 23"


def test_render_completion_cut_and_empty():
    p = Problem(2, (3, 8, 5))
    full = tasks.render_completion(p, "step")
    assert full.endswith("\n</think>\n16<|im_end|>")
    assert tasks.render_completion(p, "step", cut=0) == "</think>\n16<|im_end|>"
    assert tasks.render_completion(p, "step", cut=4) == "a3 0</think>\n16<|im_end|>"
    with pytest.raises(ValueError, match="cut"):
        tasks.render_completion(p, "step", cut=10_000)
    with pytest.raises(ValueError, match="style"):
        tasks.render_thinking(p, "verbose")


def test_bad_arguments_name_the_field():
    with pytest.raises(ValueError, match="difficulty"):
        tasks.make_problem(0, random.Random(0))
    with pytest.raises(ValueError, match="split"):
        tasks.sample_problems(1, "dev", 0)
    with pytest.raises(ValueError, match="difficulties"):
        tasks.sample_problems(1, "test", 0, difficulties=[13])
    with pytest.raises(ValueError, match="difficulty"):
        tasks.difficulty_bin(99)


def test_difficulty_bins_are_thirds():
    bins = [tasks.difficulty_bin(d) for d in tasks.DIFFICULTIES]
    assert bins == ["easy"] * 4 + ["medium"] * 4 + ["hard"] * 4
