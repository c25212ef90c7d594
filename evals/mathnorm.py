"""Math answer normalisation and equivalence (LaTeX strings -> canonical strings -> sympy).

The layers, cheapest first: canonical string match, plain-number match,
structural match of tuples/intervals/lists (element by element), and last a
symbolic check in sympy. Sympy can hang or eat memory on adversarial input
(``9^{9^{9^9}}``), so the symbolic check runs in a separate worker process that
is killed when it overruns its time limit (see :mod:`evals.sympy_worker`).
"""

from __future__ import annotations

import math
import re

from evals.extract import parse_number

__all__ = ["latex_to_sympy_str", "math_equal", "normalize_latex", "split_top_level"]

_UNIT_WORDS = (
    # Single letters (m, g, l) are left out on purpose: "2m" is usually algebra.
    "degrees", "degree", "deg", "cm", "centimeters", "meters", "metres", "km", "kilometers", "inches",
    "inch", "feet", "foot", "ft", "miles", "mile", "mph", "units", "unit", "square", "sq", "dollars",
    "dollar", "cents", "cent", "hours", "hour", "minutes", "minute", "seconds", "second", "days", "day",
    "years", "year", "pounds", "lbs", "kg", "grams", "liters", "ml", "percent", "points", "students",
)
_UNIT_TAIL_RE = re.compile(
    r"(?:\s*(?:" + "|".join(_UNIT_WORDS) + r")(?:\^\{?[23]\}?)?\.?)+\s*$", re.IGNORECASE
)
_TEXT_CMD_RE = re.compile(r"\\(?:text|textbf|textit|mbox|mathrm|mathbf|operatorname)\s*\{([^{}]*)\}")
_LEADING_VAR_RE = re.compile(r"^[a-zA-Z](?:_\{?\w+\}?)?\s*=\s*(?!=)")
_BRACKETS = {"(": ")", "[": "]", "{": "}"}


def normalize_latex(answer: str) -> str:
    """Canonical string form of a math answer, for equality tests and as sympy input.

    Strips math delimiters, sizing commands (``\\left``, ``\\right``), spacing,
    ``\\text{}``-style wrappers, degree signs, trailing unit words and a leading
    ``x =``; rewrites ``\\dfrac``/``\\tfrac`` to ``\\frac``, brace-less
    ``\\frac12``/``\\sqrt2`` to braced form and ``1,000`` to ``1000``. The
    result has no whitespace. Idempotent.
    """
    s = answer.strip()
    s = s.replace("\\$", "").replace("$", "").replace("\\displaystyle", "")
    s = re.sub(r"\\(?:left|right|big|Big|bigg|Bigg)(?![a-zA-Z])", "", s)
    s = re.sub(r"\\[,;:! ]", "", s).replace("~", "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = re.sub(r"\^\s*\{?\s*\\circ\s*\}?", "", s).replace("\\circ", "").replace("°", "").replace("\\degree", "")
    s = s.replace("\\%", "%")
    # \text{...} wrappers: keep the inner text; unit words are removed below.
    prev = None
    while prev != s:
        prev = s
        s = _TEXT_CMD_RE.sub(r"\1", s)
    s = s.strip().rstrip(".").strip()
    if s.count("=") == 1:
        s = _LEADING_VAR_RE.sub("", s)
    s = re.sub(r"^[a-zA-Z]\s*\\in\s*", "", s)  # "x \in [1, 2]" -> "[1, 2]"
    m = re.fullmatch(r"\(\s*([A-Ea-e])\s*\)", s)
    if m:
        s = m.group(1)  # multiple-choice "(C)" -> "C"
    # Units only go when something precedes them ("5 cm" -> "5"; "cm" stays).
    stripped = _UNIT_TAIL_RE.sub("", s)
    if stripped.strip() and stripped != s and re.search(r"[\d}]\s*$", stripped.strip()):
        s = stripped
    s = re.sub(r"\\frac\s*(\d)\s*(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac\s*\{([^{}]*)\}\s*(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\sqrt\s*(\d+|[a-zA-Z])", r"\\sqrt{\1}", s)
    # "\cot x", "\pi r": keep the command name from merging with what follows once spaces go.
    s = re.sub(r"(\\[a-zA-Z]+)\s+(?=[a-zA-Z])", r"\1{}", s)
    s = re.sub(r"\s+", "", s)
    if re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?", s):
        s = s.replace(",", "")
    return s


def split_top_level(s: str, sep: str = ",") -> list[str]:
    """Split ``s`` on ``sep`` where it is not nested in (), [], {}."""
    parts: list[str] = []
    depth = 0
    cur: list[str] = []
    for ch in s:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _braced_arg(s: str, i: int) -> tuple[str, int]:
    """The ``{...}`` group starting at ``s[i]`` (or one character) and the index after it."""
    if i < len(s) and s[i] == "{":
        depth = 0
        for j in range(i, len(s)):
            if s[j] == "{":
                depth += 1
            elif s[j] == "}":
                depth -= 1
                if depth == 0:
                    return s[i + 1 : j], j + 1
        raise ValueError("unbalanced braces")
    if i < len(s):
        return s[i], i + 1
    raise ValueError("missing argument")


def latex_to_sympy_str(s: str) -> str:
    """Translate a normalised LaTeX math answer into a string for sympy's ``parse_expr``.

    Covers ``\\frac``, ``\\sqrt[n]{}``, powers, ``\\pi``, ``\\infty``, ``\\cdot``,
    ``\\times``, ``\\div`` and the imaginary unit ``i``. Raises ``ValueError`` on
    unbalanced braces; other unknown commands pass through and make sympy fail,
    which callers treat as "not provably equal".
    """
    s = s.replace("{}", " ")  # command terminators from normalize_latex
    out: list[str] = []
    i = 0
    while i < len(s):
        if s.startswith("\\frac", i):
            num, i = _braced_arg(s, i + 5)
            den, i = _braced_arg(s, i)
            out.append(f"(({latex_to_sympy_str(num)})/({latex_to_sympy_str(den)}))")
        elif s.startswith("\\sqrt", i):
            i += 5
            index = None
            if i < len(s) and s[i] == "[":
                close = s.index("]", i)
                index, i = s[i + 1 : close], close + 1
            arg, i = _braced_arg(s, i)
            inner = latex_to_sympy_str(arg)
            out.append(f"(({inner})**(1/({latex_to_sympy_str(index)})))" if index else f"sqrt({inner})")
        elif s[i] == "^":
            arg, i = _braced_arg(s, i + 1)
            out.append(f"**({latex_to_sympy_str(arg)})")
        elif s[i] == "{":
            arg, i = _braced_arg(s, i)
            out.append(f"({latex_to_sympy_str(arg)})")
        else:
            out.append(s[i])
            i += 1
    t = "".join(out)
    for src, dst in (("\\pi", " pi "), ("\\infty", " oo "), ("\\cdot", "*"), ("\\times", "*"), ("\\div", "/")):
        t = t.replace(src, dst)
    # Named functions: "\cot x" -> " cot x" (sympy's implicit application makes it cot(x)).
    t = re.sub(r"\\(arcsin|arccos|arctan|sinh|cosh|tanh|sin|cos|tan|cot|sec|csc|ln|log|exp)(?![a-zA-Z])", r" \1 ", t)
    # A lone i is the imaginary unit in competition math (6-5i), never a variable name there.
    t = re.sub(r"(?<![a-zA-Z\\])i(?![a-zA-Z])", " I ", t)
    t = re.sub(r"(?<![a-zA-Z\\])e(?![a-zA-Z])", " E ", t)  # likewise a lone e is Euler's number
    return t.replace("%", "*(1/100)")


def _numbers_close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def _as_number(s: str) -> float | None:
    """A plain number, a numeric ``\\frac{p}{q}`` or ``-\\frac{p}{q}``, else ``None``."""
    n = parse_number(s)
    if n is not None:
        return n
    m = re.fullmatch(r"(-?)\\frac\{(-?\d+(?:\.\d+)?)\}\{(\d+(?:\.\d+)?)\}", s)
    if m and float(m.group(3)) != 0:
        value = float(m.group(2)) / float(m.group(3))
        return -value if m.group(1) else value
    return None


def _structured(s: str) -> tuple[str, str, list[str]] | None:
    """``(open, close, elements)`` for a bracketed tuple/interval/set with >= 2 elements."""
    if len(s) >= 2 and s[0] in "([{" and s[-1] in ")]}":
        parts = split_top_level(s[1:-1])
        if len(parts) >= 2 and split_top_level(s[1:-1], "|") == [s[1:-1]]:
            # Make sure the outer brackets enclose the whole string, not "(a)+(b)".
            depth = 0
            for k, ch in enumerate(s):
                depth += ch in "([{"
                depth -= ch in ")]}"
                if depth == 0 and k < len(s) - 1:
                    return None
            return s[0], s[-1], parts
    return None


def math_equal(pred: str | None, gold: str | None, timeout_s: float = 3.0) -> bool:
    """Whether two math answers denote the same value; ``False`` when unsure.

    Order: canonical strings, plain numbers (``50%`` also equals ``0.5``),
    ``\\cup`` unions and bracketed tuples/intervals element by element (bracket
    types must match: ``[1,2)`` != ``(1,2)``), bare comma lists as multisets
    (``1,-2`` == ``-2,1``), then sympy's ``simplify(a - b) == 0`` in a worker
    process limited to ``timeout_s`` seconds; a timeout or parse failure counts
    as not equal. Never raises on any input strings.
    """
    if pred is None or gold is None:
        return False
    a, b = normalize_latex(pred), normalize_latex(gold)
    if not a or not b:
        return False
    if a == b:
        return True
    if a.lower() == b.lower() and not re.search(r"\d", a):
        return True  # text answers ("Evelyn", "\text{(C)}") are case-insensitive
    na, nb = _as_number(a), _as_number(b)
    if na is not None and nb is not None:
        if _numbers_close(na, nb):
            return True
        # Percentages: "50%" vs "0.5" (one side marked as a percentage).
        return ("%" in a) != ("%" in b) and (_numbers_close(na / 100, nb) if "%" in a else _numbers_close(na, nb / 100))
    if "\\cup" in a or "\\cup" in b:
        pa, pb = a.split("\\cup"), b.split("\\cup")
        return len(pa) == len(pb) and all(math_equal(x, y, timeout_s) for x, y in zip(pa, pb, strict=True))
    sa, sb = _structured(a), _structured(b)
    if sa is not None or sb is not None:
        if sa is None or sb is None or len(sa[2]) != len(sb[2]):
            return False
        if (sa[0], sa[1]) != (sb[0], sb[1]):
            return False
        return all(math_equal(x, y, timeout_s) for x, y in zip(sa[2], sb[2], strict=True))
    la, lb = split_top_level(a), split_top_level(b)
    if len(la) > 1 or len(lb) > 1:
        if len(la) != len(lb):
            return False
        remaining = list(lb)
        for x in la:
            hit = next((k for k, y in enumerate(remaining) if math_equal(x, y, timeout_s)), None)
            if hit is None:
                return False
            remaining.pop(hit)
        return True
    from evals.sympy_worker import sympy_equal

    try:
        ea, eb = latex_to_sympy_str(a), latex_to_sympy_str(b)
    except ValueError:
        return False
    return sympy_equal(ea, eb, timeout_s) is True
