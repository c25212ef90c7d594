"""Dataset loaders: every source becomes a list of :class:`EvalItem` (prompt messages + gold + grader).

Formats are those of ``../shared/data`` (see its README). All loaders accept
``limit`` and ``seed``: with a seed the items are a seeded random sample of
size ``limit`` (order shuffled), without one the first ``limit`` items in file
order. Bad input raises ``DatasetError`` naming the file, record and field.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DATASETS",
    "MATH_INSTRUCTION",
    "DatasetError",
    "EvalItem",
    "load_dataset",
    "load_jsonl",
    "load_testbed",
    "sample",
    "shared_data_dir",
]

# The instruction DeepSeek-R1 and Qwen3 use for math evaluation; it makes the
# answer machine-readable via \boxed{}.
MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


class DatasetError(ValueError):
    """A dataset file or record that cannot be loaded; the message locates it."""


@dataclass(frozen=True)
class EvalItem:
    """One evaluation problem.

    ``messages`` is the chat prompt sent as is; ``gold`` the reference answer
    as text; ``grader`` a name in :data:`evals.graders.GRADERS`; ``metadata``
    carries at least ``dataset`` and, when the source has them, ``difficulty``,
    ``subject`` and ``level``.
    """

    id: str
    messages: list[dict[str, str]]
    gold: str
    grader: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt_text(self) -> str:
        """The user message text (last user turn)."""
        users = [m["content"] for m in self.messages if m.get("role") == "user"]
        return users[-1] if users else ""


def shared_data_dir() -> Path:
    """``$THINKGATE_SHARED_DATA`` or ``<repo>/../shared/data`` (may not exist)."""
    env = os.environ.get("THINKGATE_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def sample(items: list[EvalItem], limit: int | None, seed: int | None) -> list[EvalItem]:
    """First ``limit`` items, or a seeded random sample of ``limit`` when ``seed`` is given.

    ``limit=None`` keeps all (shuffled when seeded). ``limit < 0`` is an error.
    """
    if limit is not None and limit < 0:
        raise DatasetError(f"limit: must be >= 0, got {limit}")
    if seed is None:
        return items if limit is None else items[:limit]
    k = len(items) if limit is None else min(limit, len(items))
    return random.Random(seed).sample(items, k)


def _read_records(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}: invalid JSON: {exc}") from exc
        records = data
    else:
        records = []
        for lineno, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"{path}: line {lineno}: invalid JSON: {exc}") from exc
    for i, r in enumerate(records):
        if not isinstance(r, dict):
            raise DatasetError(f"{path}: record {i}: must be a JSON object")
    return records


def _need(rec: Mapping[str, Any], key: str, path: Path, i: int) -> Any:
    if key not in rec or rec[key] is None:
        raise DatasetError(f"{path}: record {i}: missing field '{key}'")
    return rec[key]


def _user(text: str, system: str | None = None) -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": system}] if system else []
    return msgs + [{"role": "user", "content": text}]


def _math_prompt(problem: str) -> list[dict[str, str]]:
    return _user(f"{problem}\n\n{MATH_INSTRUCTION}")


def _gold_text(v: Any) -> str:
    """AMC stores integers as floats (27.0); keep them integral in text."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def load_gsm8k(path: Path) -> list[EvalItem]:
    """GSM8K ``{question, answer}``; gold is the number after ``####``."""
    items = []
    for i, r in enumerate(_read_records(path)):
        answer = str(_need(r, "answer", path, i))
        if "####" not in answer:
            raise DatasetError(f"{path}: record {i}: field 'answer' has no '#### <number>' marker")
        gold = answer.rsplit("####", 1)[1].strip().replace(",", "")
        items.append(EvalItem(f"gsm8k-{i}", _math_prompt(str(_need(r, "question", path, i))), gold, "number",
                              {"dataset": "gsm8k"}))
    return items


def load_math500(path: Path) -> list[EvalItem]:
    """MATH-500 ``{problem, answer, subject, level, unique_id}``; level 1-5 is the difficulty."""
    items = []
    for i, r in enumerate(_read_records(path)):
        level = r.get("level")
        meta = {"dataset": "math500", "subject": r.get("subject"), "level": level,
                "difficulty": f"level {level}" if level is not None else None}
        items.append(EvalItem(str(r.get("unique_id") or f"math500-{i}"), _math_prompt(str(_need(r, "problem", path, i))),
                              str(_need(r, "answer", path, i)), "math", meta))
    return items


def _competition(name: str) -> Callable[[Path], list[EvalItem]]:
    """AIME 24 ``{id, problem, answer, ...}``, AIME 25 ``{problem, answer}``, AMC ``{id, problem, answer}``."""

    def load(path: Path) -> list[EvalItem]:
        items = []
        for i, r in enumerate(_read_records(path)):
            rid = r.get("id", i)
            items.append(EvalItem(f"{name}-{rid}", _math_prompt(str(_need(r, "problem", path, i))),
                                  _gold_text(_need(r, "answer", path, i)), "math", {"dataset": name}))
        return items

    return load


def load_bird(path: Path) -> list[EvalItem]:
    """BIRD dev ``{question_id, db_id, question, evidence, difficulty, sql}``.

    The prompt carries the question and the evidence; the gold is the reference
    SQL, graded by normalised string match (execution match needs the
    databases, which are not shipped). ``difficulty`` is simple/moderate/challenging.
    """
    items = []
    for i, r in enumerate(_read_records(path)):
        question = str(_need(r, "question", path, i))
        evidence = r.get("evidence") or ""
        text = f"Database: {r.get('db_id', '')}\nQuestion: {question}"
        if evidence:
            text += f"\nEvidence: {evidence}"
        text += "\nWrite one SQLite query that answers the question. Reply with the SQL only."
        meta = {"dataset": "bird", "difficulty": r.get("difficulty"), "db_id": r.get("db_id"),
                "question": question, "evidence": evidence}
        items.append(EvalItem(f"bird-{r.get('question_id', i)}", _user(text), str(_need(r, "sql", path, i)),
                              "normalized", meta))
    return items


def load_testbed(limit: int | None = None, seed: int | None = None, split: str = "test") -> list[EvalItem]:
    """The testbed's procedural sums (``testbed.tasks``), ``limit`` problems (default 300).

    Raises ``DatasetError`` when the testbed package is not installed yet.
    """
    try:
        from testbed import tasks
    except ImportError as exc:
        raise DatasetError(f"dataset 'testbed': testbed.tasks is not available ({exc})") from exc
    n = 300 if limit is None else limit
    problems = tasks.sample_problems(n, split, seed if seed is not None else 0)
    items = []
    for i, p in enumerate(problems):
        meta = {"dataset": "testbed", "level": p.difficulty, "difficulty": tasks.difficulty_bin(p.difficulty),
                "split": split}
        items.append(EvalItem(f"testbed-{split}-{i}", _user(p.text), str(p.answer), "testbed", meta))
    return items


def load_jsonl(
    path: str | Path,
    prompt_field: str,
    answer_field: str,
    grader: str = "normalized",
    id_field: str | None = None,
    meta_fields: tuple[str, ...] = (),
    instruction: str | None = None,
    name: str | None = None,
) -> list[EvalItem]:
    """Generic JSON/JSONL with a field mapping (dotted paths allowed: ``"data.q"``).

    ``instruction`` is appended to the prompt after a blank line. Every item's
    metadata holds ``dataset`` (``name`` or the file stem) and the ``meta_fields``.
    """
    p = Path(path)
    dataset = name or p.stem

    def get(rec: Mapping[str, Any], dotted: str, i: int) -> Any:
        cur: Any = rec
        for part in dotted.split("."):
            if not isinstance(cur, Mapping) or part not in cur:
                raise DatasetError(f"{p}: record {i}: missing field '{dotted}'")
            cur = cur[part]
        return cur

    items = []
    for i, r in enumerate(_read_records(p)):
        text = str(get(r, prompt_field, i))
        if instruction:
            text = f"{text}\n\n{instruction}"
        rid = str(get(r, id_field, i)) if id_field else f"{dataset}-{i}"
        meta: dict[str, Any] = {"dataset": dataset}
        for mf in meta_fields:
            meta[mf.rsplit(".", 1)[-1]] = get(r, mf, i)
        items.append(EvalItem(rid, _user(text), _gold_text(get(r, answer_field, i)), grader, meta))
    return items


# name -> (file under the shared data dir, loader)
DATASETS: dict[str, tuple[str, Callable[[Path], list[EvalItem]]]] = {
    "gsm8k": ("gsm8k_test.jsonl", load_gsm8k),
    "math500": ("math500_test.jsonl", load_math500),
    "aime24": ("aime24_test.jsonl", _competition("aime24")),
    "aime25": ("aime25_test.jsonl", _competition("aime25")),
    "amc23": ("amc23_test.jsonl", _competition("amc23")),
    "bird": ("bird_dev.json", load_bird),
}


def load_dataset(
    name: str, path: str | Path | None = None, limit: int | None = None, seed: int | None = None
) -> list[EvalItem]:
    """Load a named dataset (``gsm8k``, ``math500``, ``aime24``, ``aime25``, ``amc23``, ``bird``, ``testbed``).

    ``path`` overrides the file (same format); otherwise it is looked up in
    :func:`shared_data_dir`. Applies :func:`sample` with ``limit``/``seed``.
    """
    if name == "testbed":
        return load_testbed(limit, seed)
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}, available: {', '.join([*sorted(DATASETS), 'testbed'])}")
    filename, loader = DATASETS[name]
    file = Path(path) if path is not None else shared_data_dir() / filename
    if not file.is_file():
        raise DatasetError(f"dataset {name!r}: {file} not found (set THINKGATE_SHARED_DATA or pass a path)")
    return sample(loader(file), limit, seed)
