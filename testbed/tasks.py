"""Procedural task family for the testbed models: labelled multi-term sums.

A problem lists ``k = difficulty + 1`` labelled single-digit terms, e.g.
``sum a3 b8 c5``; the answer is their sum. Each label+digit pair (``b8``) is one
token of the testbed tokenizer, so finding a term is a single content lookup
for attention (a tiny model trained for minutes cannot learn multi-hop
induction-style copying reliably). Without a worked solution the
model has to add many digits in one shot (hard for a tiny transformer past two
or three terms); with one, every line is a single small addition, so accuracy
depends on how long the model may think.

Worked solutions (the text inside ``<think>...</think>``) come in three styles
of different length, one line per term:

* ``concise``: ``c:16`` (label, running total),
* ``step``: ``c5 11+5=16`` (look the term up, add it),
* ``careful``: ``c5 11+5: 1+5=6 carry 0 so 16`` (digit-level carry).

Everything is deterministic given a seed; the train/validation/test split of a
problem is a pure function of its text (a hash), so splits are disjoint by
construction and stable across runs and machines.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass

__all__ = [
    "DIFFICULTIES",
    "STYLES",
    "Problem",
    "difficulty_bin",
    "grade",
    "make_problem",
    "parse_answer",
    "render_completion",
    "render_thinking",
    "sample_problems",
    "split_of",
]

#: The difficulty knob: a problem of difficulty ``d`` has ``d + 1`` terms.
DIFFICULTIES: tuple[int, ...] = tuple(range(1, 13))
#: Worked-solution styles, shortest first.
STYLES: tuple[str, ...] = ("concise", "step", "careful")
SPLITS: tuple[str, ...] = ("train", "val", "test")
THINK_START = "<think>"
THINK_END = "</think>"
EOS = "<|im_end|>"
#: One label per term position (13 = the most terms, at difficulty 12).
LABELS = "abcdefghijklm"
_LABELS = LABELS
# Percent of the hash space per split: test 10%, validation 10%, train 80%.
_SPLIT_EDGES = {"test": (0, 10), "val": (10, 20), "train": (20, 100)}


@dataclass(frozen=True)
class Problem:
    """One labelled sum. ``terms[i]`` is the value of label ``_LABELS[i]``."""

    difficulty: int
    terms: tuple[int, ...]

    @property
    def labels(self) -> str:
        """The labels of the terms, in order (``"abc"`` for three terms)."""
        return _LABELS[: len(self.terms)]

    @property
    def text(self) -> str:
        """The user-facing question, e.g. ``"sum a3 b8 c5"``."""
        return "sum " + " ".join(f"{lab}{v}" for lab, v in zip(self.labels, self.terms, strict=True))

    @property
    def answer(self) -> int:
        """The exact answer."""
        return sum(self.terms)


def difficulty_bin(difficulty: int) -> str:
    """Map a difficulty to its third of the range: ``easy`` (1-4), ``medium`` (5-8), ``hard`` (9-12)."""
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty: {difficulty!r} not in {DIFFICULTIES[0]}..{DIFFICULTIES[-1]}")
    third = len(DIFFICULTIES) / 3
    index = int((difficulty - DIFFICULTIES[0]) // third)
    return ("easy", "medium", "hard")[index]


def make_problem(difficulty: int, rng: random.Random) -> Problem:
    """Draw one problem of the given difficulty (``difficulty + 1`` terms, each 1..9) from ``rng``."""
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty: {difficulty!r} not in {DIFFICULTIES[0]}..{DIFFICULTIES[-1]}")
    return Problem(difficulty, tuple(rng.randint(1, 9) for _ in range(difficulty + 1)))


def split_of(problem: Problem) -> str:
    """Return ``"train"``, ``"val"`` or ``"test"``: a stable hash of the problem text decides."""
    digest = hashlib.sha256(problem.text.encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") % 100
    for name, (lo, hi) in _SPLIT_EDGES.items():
        if lo <= bucket < hi:
            return name
    raise AssertionError("unreachable: split edges cover 0..99")


def sample_problems(
    n: int, split: str, seed: int, difficulties: tuple[int, ...] | list[int] | None = None
) -> list[Problem]:
    """Return ``n`` problems of ``split``, difficulties cycled evenly, deterministic in ``seed``.

    Problems are drawn by rejection (redraw until the hash split matches), so the
    three splits never share a problem. Small difficulties have few distinct
    problems (81 at difficulty 1), so a large sample may repeat problems there.
    """
    if split not in SPLITS:
        raise ValueError(f"split: {split!r} not one of {SPLITS}")
    if n < 0:
        raise ValueError(f"n: must be >= 0, got {n}")
    diffs = tuple(difficulties) if difficulties is not None else DIFFICULTIES
    for d in diffs:
        if d not in DIFFICULTIES:
            raise ValueError(f"difficulties: {d!r} not in {DIFFICULTIES[0]}..{DIFFICULTIES[-1]}")
    rng = random.Random(f"{split}:{seed}")
    out: list[Problem] = []
    for i in range(n):
        d = diffs[i % len(diffs)]
        while True:
            p = make_problem(d, rng)
            if split_of(p) == split:
                out.append(p)
                break
    return out


def _thinking_lines(problem: Problem, style: str) -> list[str]:
    total = 0
    lines = []
    for lab, v in zip(problem.labels, problem.terms, strict=True):
        new = total + v
        if style == "concise":
            lines.append(f"{lab}:{new}")
        elif style == "step":
            lines.append(f"{lab}{v} {total}+{v}={new}")
        elif style == "careful":
            ones = total % 10 + v
            lines.append(f"{lab}{v} {total}+{v}: {total % 10}+{v}={ones} carry {ones // 10} so {new}")
        else:
            raise ValueError(f"style: {style!r} not one of {STYLES}")
        total = new
    return lines


def render_thinking(problem: Problem, style: str) -> str:
    """The full worked solution in ``style`` (text between ``<think>\\n`` and ``</think>``).

    Each line ends with a newline, so a natural end of thinking is ``...\\n</think>``.
    """
    return "".join(line + "\n" for line in _thinking_lines(problem, style))


def render_completion(problem: Problem, style: str, cut: int | None = None) -> str:
    """What the assistant writes after the generation prompt (which ends with ``<think>\\n``).

    ``cut=None`` gives the full solution; ``cut=c`` keeps only the first ``c``
    characters of the thinking and closes it there, as a forced end of thinking
    does, followed by the (correct) answer the model should still aim for;
    ``cut=0`` is the empty-thinking mode.
    """
    thinking = render_thinking(problem, style)
    if cut is not None:
        if not 0 <= cut <= len(thinking):
            raise ValueError(f"cut: {cut} outside 0..{len(thinking)}")
        thinking = thinking[:cut]
    return f"{thinking}{THINK_END}\n{problem.answer}{EOS}"


_INT_RE = re.compile(r"-?\d+")


def parse_answer(completion_text: str) -> int | None:
    """Extract the final answer: the first integer after the last ``</think>``.

    Text without ``</think>`` is taken whole (a reasoning parser may already have
    split the thinking off). Returns ``None`` when there is no integer.
    """
    if not isinstance(completion_text, str):
        return None
    tail = completion_text.rsplit(THINK_END, 1)[-1]
    tail = tail.split(EOS, 1)[0]
    match = _INT_RE.search(tail)
    if match is None:
        return None
    try:
        return int(match.group())
    except ValueError:  # absurdly long digit strings
        return None


def grade(problem: Problem, completion_text: str) -> float:
    """1.0 if the completion's final answer equals ``problem.answer``, else 0.0 (never raises)."""
    return 1.0 if parse_answer(completion_text) == problem.answer else 0.0
