"""Graders: model output + gold answer -> score in [0, 1] (pure functions, one registry).

Each grader has the signature ``(response: str, gold: str) -> Grade``. The
registry maps a short name (used in dataset items, config and the CLI) to the
grader, with the usual "unknown grader 'x', available: ..." error.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from evals.extract import (
    extract_answer,
    extract_boxed,
    extract_gsm8k_marker,
    extract_last_number,
    parse_number,
)
from evals.mathnorm import math_equal

__all__ = [
    "GRADERS",
    "Grade",
    "exact_match",
    "get_grader",
    "grade",
    "math_grader",
    "normalized_match",
    "number_grader",
    "testbed_grader",
]


@dataclass(frozen=True, slots=True)
class Grade:
    """Outcome of grading one response: ``score`` in [0, 1] and the answer that was extracted."""

    score: float
    extracted: str | None


Grader = Callable[[str, str], Grade]


def _normalize_text(s: str) -> str:
    """Lower-case, NFKC, punctuation-insensitive, articles dropped, whitespace collapsed (SQuAD-style)."""
    s = unicodedata.normalize("NFKC", s).lower()
    s = re.sub(r"[^\w\s]", " ", s)
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def exact_match(response: str, gold: str) -> Grade:
    """1 iff the stripped response equals the stripped gold exactly (case-sensitive)."""
    got = response.strip()
    return Grade(float(got == gold.strip()), got)


def normalized_match(response: str, gold: str) -> Grade:
    """1 iff the response equals the gold after case/punctuation/article/whitespace normalisation.

    The part after ``</think>`` is graded when present.
    """
    if "</think>" in response:
        response = response.rsplit("</think>", 1)[1]
    got = response.strip()
    return Grade(float(_normalize_text(got) == _normalize_text(gold) and bool(got)), got)


def _gold_number(gold: str) -> float | None:
    """A gold answer's number; GSM8K gold solutions carry it after ``####``."""
    marked = extract_gsm8k_marker(gold)
    text = marked if marked is not None else gold
    n = parse_number(text)
    if n is None:
        last = extract_last_number(text)
        n = parse_number(last) if last is not None else None
    return n


def number_grader(response: str, gold: str) -> Grade:
    """Numeric answer (GSM8K and friends): extracted number equals the gold number (rel. 1e-6).

    The extracted answer is the boxed / ``####`` / "answer is" value, and when
    that is not a bare number (``"18 dollars"``) its last number.
    """
    extracted = extract_answer(response)
    gold_n = _gold_number(gold)
    if extracted is None or gold_n is None:
        return Grade(0.0, extracted)
    n = parse_number(extracted)
    if n is None:
        boxed_text = extracted.replace("\\!", "")
        last = extract_last_number(boxed_text)
        n = parse_number(last) if last is not None else None
    if n is None:
        return Grade(0.0, extracted)
    ok = abs(n - gold_n) <= 1e-6 * max(1.0, abs(gold_n))
    return Grade(float(ok), extracted)


def math_grader(response: str, gold: str, timeout_s: float = 3.0) -> Grade:
    """Competition math (MATH-500, AIME, AMC): ``\\boxed{}`` answer (else the best guess) vs gold.

    Equivalence is :func:`evals.mathnorm.math_equal` (sympy with a time limit).
    A gold given as a full solution is reduced to its last box first.
    """
    extracted = extract_answer(response)
    gold_answer = extract_boxed(gold) or gold
    # Integer-valued golds stored as floats (AMC "27.0") compare as integers.
    if re.fullmatch(r"-?\d+\.0+", gold_answer.strip()):
        gold_answer = gold_answer.strip().split(".")[0]
    return Grade(float(math_equal(extracted, gold_answer, timeout_s)), extracted)


def testbed_grader(response: str, gold: str) -> Grade:
    """The testbed's own rule (``testbed.tasks.parse_answer``: first integer after ``</think>``)."""
    from testbed.tasks import parse_answer  # lazy: the testbed package is optional

    got = parse_answer(response)
    extracted = None if got is None else str(got)
    return Grade(float(extracted is not None and extracted == gold.strip()), extracted)


GRADERS: dict[str, Grader] = {
    "number": number_grader,
    "math": math_grader,
    "exact": exact_match,
    "normalized": normalized_match,
    "testbed": testbed_grader,
}


def get_grader(name: str) -> Grader:
    """The grader registered as ``name``; ``KeyError`` naming the available ones otherwise."""
    try:
        return GRADERS[name]
    except KeyError:
        raise KeyError(f"unknown grader {name!r}, available: {', '.join(sorted(GRADERS))}") from None


def grade(grader: str, response: str, gold: str) -> Grade:
    """Grade ``response`` against ``gold`` with the grader named ``grader``."""
    return get_grader(grader)(response, gold)
