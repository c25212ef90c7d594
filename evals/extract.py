"""Answer extraction from free-form model output (pure string functions).

Contracts: every function returns ``None`` when nothing matching is present,
never raises on arbitrary text, and returns the answer text *as written*
(normalisation is the equivalence layer's job, see :mod:`evals.mathnorm`).
"""

from __future__ import annotations

import re

__all__ = [
    "extract_answer",
    "extract_boxed",
    "extract_gsm8k_marker",
    "extract_last_number",
    "parse_number",
]

# Commands whose single braced argument is the boxed answer. \fbox shows up in
# MATH solutions; \boxed is what reasoning models are told to emit.
_BOX_COMMANDS = ("\\boxed", "\\fbox")

# A number as people write it: optional sign, thousands separators only in
# groups of exactly three (so "1,-2" stays a list), optional decimals, or a
# plain fraction a/b.
_NUMBER_RE = re.compile(
    r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?|(?<![\w.])-?\.\d+"
)
_ANSWER_IS_RE = re.compile(
    r"(?:final answer|the answer|answer)\s*(?:is|:|=)\s*[:\s]*(.+?)(?:\n|$)", re.IGNORECASE
)


def _matching_brace(text: str, open_idx: int) -> int | None:
    """Index of the ``}`` closing the ``{`` at ``open_idx``; ``None`` if unbalanced.

    Escaped braces (``\\{``) inside the argument do not count: ``\\boxed{\\{1,2\\}}``
    is a set, not a closed box after ``\\{1,2``.
    """
    depth = 0
    i = open_idx
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in "{}":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def extract_boxed(text: str) -> str | None:
    """Content of the LAST ``\\boxed{...}`` / ``\\fbox{...}`` in ``text``, nested braces kept.

    Also accepts the brace-less form ``\\boxed 5`` (one token). Returns ``None``
    if there is no box or the last box is unterminated (truncated output).
    """
    best_pos = -1
    best: str | None = None
    for cmd in _BOX_COMMANDS:
        start = text.rfind(cmd)
        while start != -1:
            after = start + len(cmd)
            rest = text[after:]
            stripped = rest.lstrip()
            if stripped.startswith("{"):
                open_idx = after + (len(rest) - len(stripped))
                close = _matching_brace(text, open_idx)
                content = text[open_idx + 1 : close] if close is not None else None
            elif rest[:1] == " " and stripped:
                content = stripped.split()[0].rstrip("$.")
            else:
                # e.g. "\boxedx" is not a box command; look further back.
                start = text.rfind(cmd, 0, start)
                continue
            if start > best_pos:
                best_pos, best = start, content
            break
    return best.strip() if best is not None else None


def extract_gsm8k_marker(text: str) -> str | None:
    """The answer after the last ``####`` marker (GSM8K format), first line only."""
    idx = text.rfind("####")
    if idx == -1:
        return None
    tail = text[idx + 4 :].strip().splitlines()
    if not tail or not tail[0].strip():
        return None
    return tail[0].strip()


def extract_last_number(text: str) -> str | None:
    """The last number-like token in ``text`` (commas, sign, decimals, a/b kept as written)."""
    matches = _NUMBER_RE.findall(text)
    if not matches:
        return None
    return matches[-1].strip()


def parse_number(text: str) -> float | None:
    """Parse one number as people write it, or ``None`` if ``text`` is not exactly one number.

    Handles ``$``, thousands separators, a trailing period, ``%`` (kept as the
    percentage value: ``"50%" -> 50.0``), decimals, negatives and ``a/b``.
    """
    s = text.strip().replace("$", "").replace("\\%", "%").replace("\\!", "").strip()
    s = s.rstrip(".").rstrip("%").strip()
    if re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?", s):
        s = s.replace(",", "")
    s = s.replace(" ", "")
    m = re.fullmatch(r"(-?\d+(?:\.\d+)?|-?\.\d+)(?:/(\d+(?:\.\d+)?))?", s)
    if not m:
        return None
    num = float(m.group(1))
    if m.group(2) is not None:
        den = float(m.group(2))
        if den == 0:
            return None
        return num / den
    return num


def extract_answer(text: str) -> str | None:
    """Best-effort final answer: boxed, then ``####``, then "the answer is X", then the last number.

    This order reflects how explicit each convention is: a box or marker is the
    model's declared answer; "answer is" is a declaration in prose; the last
    number is a guess that is right for most arithmetic word problems.
    """
    if not text:
        return None
    # Reasoning models put scratch work before </think>; only the answer part
    # after it counts when present.
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    for fn in (extract_boxed, extract_gsm8k_marker):
        found = fn(text)
        if found:
            return found
    matches = _ANSWER_IS_RE.findall(text)
    if matches:
        candidate = matches[-1].strip().strip("$ ").rstrip(".").strip("$ ")
        # A short declaration is the answer as written ("18 dollars", "\\frac{1}{2}");
        # a long sentence is prose, where its last number is the better guess.
        if candidate and len(candidate) <= 40:
            return candidate
        number = extract_last_number(candidate)
        if number is not None:
            return number
    return extract_last_number(text)
