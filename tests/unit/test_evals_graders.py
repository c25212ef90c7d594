"""Graders and answer extraction on tricky cases (pure functions; the sympy path uses a worker process)."""

from __future__ import annotations

import time

import pytest

from evals.extract import (
    extract_answer,
    extract_boxed,
    extract_gsm8k_marker,
    extract_last_number,
    parse_number,
)
from evals.graders import exact_match, get_grader, math_grader, normalized_match, number_grader
from evals.mathnorm import latex_to_sympy_str, math_equal, normalize_latex
from evals.sympy_worker import SympyWorker


@pytest.mark.parametrize("text, expected", [
    ("so \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
    ("first \\boxed{3} then \\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),  # last box; escaped braces inside
    ("\\boxed{\\sqrt{\\frac{a}{b}}}", "\\sqrt{\\frac{a}{b}}"),  # nested braces
    ("\\fbox{42}", "42"),
    ("the answer is \\boxed 7$", "7"),
    ("truncated \\boxed{\\frac{1}{", None),
    ("no box here", None),
])
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


def test_extract_gsm8k_and_last_number():
    assert extract_gsm8k_marker("work\n#### 1,234\n") == "1,234"
    assert extract_gsm8k_marker("#### \n") is None
    assert extract_last_number("it costs $1,234.50 and then -7 left") == "-7"
    assert extract_last_number("ratio 3/4 of it") == "3/4"
    assert extract_last_number("pairs 1,-2") == "-2"  # not a thousands separator
    assert extract_last_number("version v2 has none") is None


@pytest.mark.parametrize("text, expected", [
    ("1,234", 1234.0), ("-3.50", -3.5), ("$18.", 18.0), ("50%", 50.0), ("3/4", 0.75), (".5", 0.5),
    ("1,23", None), ("abc", None), ("1/0", None),
])
def test_parse_number(text, expected):
    assert parse_number(text) == expected


def test_extract_answer_priorities():
    assert extract_answer("<think>maybe \\boxed{1}</think> The answer is 2.") == "2"
    assert extract_answer("The final answer is: $\\frac{3}{4}$.") == "\\frac{3}{4}"
    assert extract_answer("lots of words 12 and then 13") == "13"
    assert extract_answer("") is None


@pytest.mark.parametrize("pred, gold", [
    ("\\dfrac{1}{2}", "\\frac12"), ("0.5", "\\frac{1}{2}"), ("3\\sqrt{13}", "\\sqrt{117}"),
    ("2\\sqrt{2}", "\\sqrt{8}"), ("\\frac{\\sqrt{3}}{2}", "\\frac{1}{2}\\sqrt{3}"),
    ("(-\\infty, 3] \\cup (5,\\infty)", "(-\\infty,3]\\cup(5,\\infty)"), ("90", "90^\\circ"),
    ("x=5", "5"), ("\\text{Evelyn}", "evelyn"), ("-2,1", "1,-2"), ("50\\%", "0.5"), ("50\\%", "50"),
    ("6-5i", "6 - 5i"), ("5\\text{ cm}^2", "5"), ("1,000", "1000"), ("\\left(6,31,-1\\right)", "(6,31,-1)"),
    ("x^3+3x-6", "-6+3x+x^3"), ("\\$18.00", "18"), ("C", "\\text{(C)}"), ("x \\in [1, 2)", "[1,2)"),
    ("\\cot x + 0", "\\cot x"), ("4\\pi r^2", "4 r^2\\pi"),
])
def test_math_equal_true(pred, gold):
    assert math_equal(pred, gold), (pred, gold)


@pytest.mark.parametrize("pred, gold", [
    ("[1,2)", "(1,2)"), ("3", "4"), ("(1,2)", "(2,1)"), ("1,2", "1,2,3"), ("\\frac{1}{3}", "0.33"),
    ("x+1", "x+2"), ("", "1"), (None, "1"), ("2m", "2"),
])
def test_math_equal_false(pred, gold):
    assert not math_equal(pred, gold), (pred, gold)


def test_normalize_latex_is_idempotent():
    for s in ["\\left( 3, \\frac{\\pi}{2} \\right)", "\\text{(C)}", "10\\%", "x = \\dfrac{1}{2}", "1,000.5"]:
        once = normalize_latex(s)
        assert normalize_latex(once) == once


def test_latex_to_sympy_str():
    pytest.importorskip("sympy")
    from evals.sympy_worker import _compare  # the worker's comparison, run in-process here

    assert _compare(latex_to_sympy_str("\\frac{1}{\\sqrt[3]{x}}"), "x**(-1/3)") is True
    assert _compare(latex_to_sympy_str("2^{10}\\cdot\\pi"), "1024*pi") is True
    assert _compare(latex_to_sympy_str("3+2i"), "3+2*I") is True
    assert _compare(latex_to_sympy_str("3+2i"), "3-2*I") is False
    assert _compare(latex_to_sympy_str("\\cot x+0"), "cos(x)/sin(x)") is True
    assert _compare(latex_to_sympy_str("\\ln(e^{2})"), "2") is True
    with pytest.raises(ValueError):
        latex_to_sympy_str("\\frac{1}{")


def test_sympy_timeout_is_cut_off_and_worker_recovers():
    worker = SympyWorker()
    try:
        t0 = time.perf_counter()
        # Evaluating this tower never finishes: the worker must be killed at the limit.
        assert worker.equal("9**9**9**9", "1", timeout_s=1.0) is None
        assert time.perf_counter() - t0 < 30
        assert worker.timeouts == 1
        assert worker.equal("sqrt(8)", "2*sqrt(2)", timeout_s=30.0) is True  # restarted transparently
        assert worker.equal("x+1", "x+2", timeout_s=30.0) is False
        assert worker.equal("1 +* 2", "3", timeout_s=30.0) is None  # unparseable
    finally:
        worker.close()


def test_graders_end_to_end():
    assert number_grader("so she makes $18.\n#### 18", "Janet ... #### 18").score == 1.0
    assert number_grader("The answer is 1,234 dollars", "#### 1234").score == 1.0
    assert number_grader("The answer is 17", "#### 18").score == 0.0
    assert number_grader("no number", "#### 18").score == 0.0
    g = math_grader("Thus \\boxed{\\dfrac{5}{6}}.", "\\frac{5}{6}")
    assert g.score == 1.0 and g.extracted == "\\dfrac{5}{6}"
    assert math_grader("\\boxed{27}", "27.0").score == 1.0  # AMC float gold
    assert math_grader("\\boxed{2}", "It is $\\boxed{2}$.").score == 1.0  # gold given as a solution
    assert exact_match(" Paris ", "Paris").score == 1.0 and exact_match("paris", "Paris").score == 0.0
    assert normalized_match("<think>hmm</think>The  Paris!", "paris").score == 1.0
    assert normalized_match("", "").score == 0.0
    with pytest.raises(KeyError, match="available"):
        get_grader("nope")
