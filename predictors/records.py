"""The two outcome formats shared by ``evals/`` (writer) and ``predictors/`` (reader).

Standard library only, so any package may import it cheaply.

**Outcome records** (JSONL, one object per line, or one JSON list) describe one
request served by one option::

    {"prompt": "...",            # or "messages": [{"role": ..., "content": ...}, ...]
     "dataset": "gsm8k", "model": "qwen3-0.6b",
     "thinking_budget": 1024,    # null or absent = unlimited
     "score": 1.0,               # in [0, 1]
     "thinking_tokens": 587, "answer_tokens": 41, "prompt_tokens": 90,
     "cost_usd": 0.0012, "latency_s": 3.1, "finish_reason": "stop", "meta": {}}

Required: ``prompt`` or ``messages``, ``model``, ``score``. Every other field is
optional (``None`` when unknown) but type-checked when present.

**Outcome tables** (wide; JSON list or JSONL) hold one row per question and all
options side by side::

    {"question": "...",          # or "prompt"
     "scores": {"modelA": 0.0, "modelB@512": 1.0},
     "costs": {"modelA": 0.2, "modelB@512": 0.9},        # optional
     "thinking_tokens": {"modelB@512": 410},              # optional (extension)
     "answer_tokens": {"modelA": 37, "modelB@512": 22}}   # optional (extension)

Option names are ``"model"`` (unlimited thinking) or ``"model@budget"`` with an
integer budget; see :func:`option_name` and :func:`parse_option`. Any other key
of a row is kept in ``meta``.

Every validation failure raises :class:`RecordError`, whose message names the
record index (0-based; the line number for JSONL is index + 1) and the field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "OutcomeRecord",
    "OutcomeRow",
    "RecordError",
    "load_outcome_records",
    "load_outcome_table",
    "messages_to_prompt",
    "option_name",
    "parse_option",
    "records_to_table",
    "resolve_costs",
    "validate_outcome_record",
    "validate_outcome_row",
    "write_outcome_records",
    "write_outcome_table",
]


class RecordError(ValueError):
    """A malformed record; ``index`` and ``field`` locate the problem."""

    def __init__(self, index: int | None, field_name: str | None, problem: str, source: str = "") -> None:
        self.index = index
        self.field = field_name
        where = []
        if source:
            where.append(source)
        if index is not None:
            where.append(f"record {index}")
        if field_name is not None:
            where.append(f"field '{field_name}'")
        super().__init__(f"{', '.join(where)}: {problem}" if where else problem)


# ---------------------------------------------------------------- option names


def option_name(model: str, budget: int | None) -> str:
    """Return ``"model"`` for unlimited thinking, ``"model@budget"`` otherwise.

    Raises ``ValueError`` for an empty model or a negative / non-integer budget.
    """
    if not isinstance(model, str) or not model:
        raise ValueError("model: must be a non-empty string")
    if budget is None:
        return model
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
        raise ValueError(f"thinking_budget: must be a non-negative integer or None, got {budget!r}")
    return f"{model}@{budget}"


def parse_option(name: str) -> tuple[str, int | None]:
    """Inverse of :func:`option_name`: ``"m@512" -> ("m", 512)``, ``"m" -> ("m", None)``.

    Only a non-negative integer after the *last* ``@`` is a budget; otherwise the
    whole name is the model (so model names containing ``@`` still round-trip
    when they have no budget).
    """
    if not isinstance(name, str) or not name:
        raise ValueError("option: must be a non-empty string")
    model, sep, tail = name.rpartition("@")
    if sep and model and tail.isdigit():
        return model, int(tail)
    return name, None


def resolve_costs(costs: Mapping[str, float], options: Sequence[str]) -> dict[str, float]:
    """Cost per option; an option ``model@budget`` without its own entry takes its model's cost."""
    out = {}
    for o in options:
        c = costs.get(o, costs.get(parse_option(o)[0]))
        if c is not None:
            out[o] = float(c)
    return out


# ---------------------------------------------------------------- outcome records


@dataclass(frozen=True)
class OutcomeRecord:
    """One request served by one option (see the module docstring)."""

    model: str
    score: float
    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    dataset: str | None = None
    thinking_budget: int | None = None
    thinking_tokens: int | None = None
    answer_tokens: int | None = None
    prompt_tokens: int | None = None
    cost_usd: float | None = None
    latency_s: float | None = None
    finish_reason: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def option(self) -> str:
        """The option name ``model[@budget]`` this record was served by."""
        return option_name(self.model, self.thinking_budget)

    @property
    def text(self) -> str:
        """The prompt text used for featurization (``messages`` rendered if no ``prompt``)."""
        if self.prompt is not None:
            return self.prompt
        return messages_to_prompt(self.messages or [])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; fields that are ``None`` (and an empty ``meta``) are kept explicit."""
        d = asdict(self)
        if d["messages"] is None:
            del d["messages"]
        if d["prompt"] is None:
            del d["prompt"]
        return d


def messages_to_prompt(messages: Sequence[Mapping[str, Any]]) -> str:
    """Render chat messages to one featurization text: the text contents joined by blank lines.

    Content given as a list of parts contributes its ``{"type": "text"}`` parts
    only. The gateway must use this same function so training and serving agree.
    """
    parts: list[str] = []
    for msg in messages:
        content = msg.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            for p in content:
                if isinstance(p, Mapping) and p.get("type") == "text" and isinstance(p.get("text"), str):
                    parts.append(p["text"])
    return "\n\n".join(parts)


def _num(obj: Mapping[str, Any], key: str, index: int | None, *, integer: bool, source: str) -> Any:
    """Optional non-negative finite number (int when ``integer``); ``None`` when absent/null."""
    v = obj.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise RecordError(index, key, f"must be a number, got {type(v).__name__}", source)
    if not math.isfinite(v) or v < 0:
        raise RecordError(index, key, f"must be a finite non-negative number, got {v!r}", source)
    if integer:
        if float(v) != int(v):
            raise RecordError(index, key, f"must be an integer, got {v!r}", source)
        return int(v)
    return float(v)


def _score(v: Any, index: int | None, key: str, source: str) -> float:
    if isinstance(v, bool):
        return float(v)
    if not isinstance(v, int | float) or not math.isfinite(v):
        raise RecordError(index, key, f"must be a number in [0, 1], got {v!r}", source)
    if not 0.0 <= v <= 1.0:
        raise RecordError(index, key, f"must be in [0, 1], got {v!r}", source)
    return float(v)


def validate_outcome_record(obj: Any, index: int | None = None, source: str = "") -> OutcomeRecord:
    """Check one raw outcome record and return it typed; raises :class:`RecordError`."""
    if not isinstance(obj, Mapping):
        raise RecordError(index, None, f"must be a JSON object, got {type(obj).__name__}", source)
    prompt = obj.get("prompt")
    messages = obj.get("messages")
    if prompt is None and messages is None:
        raise RecordError(index, "prompt", "missing: give 'prompt' or 'messages'", source)
    if prompt is not None and not isinstance(prompt, str):
        raise RecordError(index, "prompt", f"must be a string, got {type(prompt).__name__}", source)
    if messages is not None:
        if not isinstance(messages, list) or not all(isinstance(m, Mapping) for m in messages):
            raise RecordError(index, "messages", "must be a list of message objects", source)
        messages = [dict(m) for m in messages]
    model = obj.get("model")
    if not isinstance(model, str) or not model:
        raise RecordError(index, "model", "missing or not a non-empty string", source)
    if "score" not in obj:
        raise RecordError(index, "score", "missing", source)
    score = _score(obj["score"], index, "score", source)
    budget = _num(obj, "thinking_budget", index, integer=True, source=source)
    dataset = obj.get("dataset")
    if dataset is not None and not isinstance(dataset, str):
        raise RecordError(index, "dataset", "must be a string", source)
    finish = obj.get("finish_reason")
    if finish is not None and not isinstance(finish, str):
        raise RecordError(index, "finish_reason", "must be a string", source)
    meta = obj.get("meta") or {}
    if not isinstance(meta, Mapping):
        raise RecordError(index, "meta", "must be an object", source)
    return OutcomeRecord(
        model=model,
        score=score,
        prompt=prompt,
        messages=messages,
        dataset=dataset,
        thinking_budget=budget,
        thinking_tokens=_num(obj, "thinking_tokens", index, integer=True, source=source),
        answer_tokens=_num(obj, "answer_tokens", index, integer=True, source=source),
        prompt_tokens=_num(obj, "prompt_tokens", index, integer=True, source=source),
        cost_usd=_num(obj, "cost_usd", index, integer=False, source=source),
        latency_s=_num(obj, "latency_s", index, integer=False, source=source),
        finish_reason=finish,
        meta=dict(meta),
    )


def _read_objects(path: str | Path) -> list[Any]:
    """Read a JSON list or JSONL file; JSON syntax errors name the file and line."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    text = p.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RecordError(None, None, f"invalid JSON: {exc}", str(p)) from exc
        if not isinstance(data, list):
            raise RecordError(None, None, "top level must be a list", str(p))
        return data
    out: list[Any] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise RecordError(len(out), None, f"invalid JSON on line {lineno}: {exc}", str(p)) from exc
    return out


def load_outcome_records(path: str | Path) -> list[OutcomeRecord]:
    """Load and validate outcome records (JSONL or JSON list)."""
    src = str(path)
    return [validate_outcome_record(o, i, src) for i, o in enumerate(_read_objects(path))]


def write_outcome_records(records: Iterable[OutcomeRecord | Mapping[str, Any]], path: str | Path) -> int:
    """Validate and write records as JSONL; returns the number written."""
    n = 0
    with Path(path).open("w", encoding="utf-8") as f:
        for i, r in enumerate(records):
            rec = r if isinstance(r, OutcomeRecord) else validate_outcome_record(r, i)
            f.write(json.dumps(rec.to_dict(), ensure_ascii=False) + "\n")
            n += 1
    return n


# ---------------------------------------------------------------- outcome tables


@dataclass(frozen=True)
class OutcomeRow:
    """One question with every option's outcome (see the module docstring)."""

    prompt: str
    scores: dict[str, float]
    costs: dict[str, float] | None = None
    thinking_tokens: dict[str, float] | None = None
    answer_tokens: dict[str, float] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict in the documented wide form (optional maps omitted when ``None``)."""
        d: dict[str, Any] = {"question": self.prompt, "scores": dict(self.scores)}
        for key in ("costs", "thinking_tokens", "answer_tokens"):
            v = getattr(self, key)
            if v is not None:
                d[key] = dict(v)
        for k, v in self.meta.items():
            d.setdefault(k, v)
        return d


_ROW_KEYS = {"question", "prompt", "scores", "costs", "thinking_tokens", "answer_tokens"}


def _num_map(obj: Mapping[str, Any], key: str, index: int | None, source: str) -> dict[str, float] | None:
    v = obj.get(key)
    if v is None:
        return None
    if not isinstance(v, Mapping):
        raise RecordError(index, key, "must be an object {option: number}", source)
    out: dict[str, float] = {}
    for opt, x in v.items():
        if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x) or x < 0:
            raise RecordError(index, f"{key}.{opt}", f"must be a finite non-negative number, got {x!r}", source)
        out[str(opt)] = float(x)
    return out


def validate_outcome_row(obj: Any, index: int | None = None, source: str = "") -> OutcomeRow:
    """Check one raw wide-table row and return it typed; raises :class:`RecordError`."""
    if not isinstance(obj, Mapping):
        raise RecordError(index, None, f"must be a JSON object, got {type(obj).__name__}", source)
    key = "question" if "question" in obj else "prompt"
    prompt = obj.get(key)
    if prompt is None:
        raise RecordError(index, "question", "missing: give 'question' or 'prompt'", source)
    if not isinstance(prompt, str):
        raise RecordError(index, key, f"must be a string, got {type(prompt).__name__}", source)
    scores = obj.get("scores")
    if not isinstance(scores, Mapping) or not scores:
        raise RecordError(index, "scores", "missing or not a non-empty object {option: score}", source)
    sc = {str(k): _score(v, index, f"scores.{k}", source) for k, v in scores.items()}
    meta = {k: v for k, v in obj.items() if k not in _ROW_KEYS}
    return OutcomeRow(
        prompt=prompt,
        scores=sc,
        costs=_num_map(obj, "costs", index, source),
        thinking_tokens=_num_map(obj, "thinking_tokens", index, source),
        answer_tokens=_num_map(obj, "answer_tokens", index, source),
        meta=meta,
    )


def load_outcome_table(path: str | Path) -> list[OutcomeRow]:
    """Load and validate a wide outcome table (JSON list or JSONL)."""
    src = str(path)
    rows = [validate_outcome_row(o, i, src) for i, o in enumerate(_read_objects(path))]
    if not rows:
        raise RecordError(None, None, "no rows", src)
    return rows


def write_outcome_table(rows: Iterable[OutcomeRow], path: str | Path) -> int:
    """Write rows as a JSON list; returns the number written."""
    data = [r.to_dict() for r in rows]
    Path(path).write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    return len(data)


def records_to_table(records: Iterable[OutcomeRecord]) -> list[OutcomeRow]:
    """Pivot outcome records to a wide table, one row per distinct prompt text.

    Repeats of the same (prompt, option) are averaged (score, cost, lengths), so
    several samples per option give a fractional score. Rows keep first-seen
    order; ``meta["dataset"]`` is set when the records name one.
    """
    acc: dict[str, dict[str, dict[str, list[float]]]] = {}
    datasets: dict[str, str] = {}
    for r in records:
        text = r.text
        per_opt = acc.setdefault(text, {}).setdefault(
            r.option, {"score": [], "cost": [], "think": [], "answer": []}
        )
        per_opt["score"].append(r.score)
        if r.cost_usd is not None:
            per_opt["cost"].append(r.cost_usd)
        if r.thinking_tokens is not None:
            per_opt["think"].append(float(r.thinking_tokens))
        if r.answer_tokens is not None:
            per_opt["answer"].append(float(r.answer_tokens))
        if r.dataset and text not in datasets:
            datasets[text] = r.dataset

    def mean_map(opts: dict[str, dict[str, list[float]]], key: str) -> dict[str, float] | None:
        m = {o: sum(v[key]) / len(v[key]) for o, v in opts.items() if v[key]}
        return m or None

    rows = []
    for text, opts in acc.items():
        rows.append(
            OutcomeRow(
                prompt=text,
                scores={o: sum(v["score"]) / len(v["score"]) for o, v in opts.items()},
                costs=mean_map(opts, "cost"),
                thinking_tokens=mean_map(opts, "think"),
                answer_tokens=mean_map(opts, "answer"),
                meta={"dataset": datasets[text]} if text in datasets else {},
            )
        )
    return rows
