"""Dense outcome tables for replay: scores, costs and token counts of every option on every query.

Built from the predictors' wide outcome table (``predictors.records``); costs
come from the table's own ``costs`` map, else from a price file
(LLMRouter ``default_llm.json`` style: per model ``input_price`` and
``output_price`` in $ per million tokens; cost per query = input + output
price, as the shared data README does), else from tokens.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ReplayTable", "load_prices", "load_replay_table", "pivot_records", "table_from_rows"]

# Item metadata carried from outcome records into wide-table rows (per-difficulty reports need it).
_ROW_META_KEYS = ("difficulty", "level", "subject", "item_id", "gold")


@dataclass(frozen=True)
class ReplayTable:
    """Queries x options. ``scores``/``costs`` are ``[N, M]`` float arrays, complete (no NaN).

    ``thinking``/``answer`` token arrays are ``[N, M]`` with NaN where unknown,
    or ``None`` when the table has none. ``cost_unit`` names what ``costs``
    measure (``"usd"``, ``"price"``, ``"tokens"``). ``meta[i]`` is row i's extra
    fields (``dataset``, ``difficulty``, ...).
    """

    prompts: list[str]
    options: list[str]
    scores: np.ndarray
    costs: np.ndarray
    thinking: np.ndarray | None = None
    answer: np.ndarray | None = None
    cost_unit: str = "usd"
    meta: list[dict[str, Any]] = field(default_factory=list)

    @property
    def tokens(self) -> np.ndarray | None:
        """Thinking + answer tokens per (query, option) when any count is known."""
        if self.thinking is None and self.answer is None:
            return None
        t = np.zeros_like(self.scores)
        for part in (self.thinking, self.answer):
            if part is not None:
                t = t + np.nan_to_num(part, nan=0.0)
        known = np.zeros(self.scores.shape, dtype=bool)
        for part in (self.thinking, self.answer):
            if part is not None:
                known |= ~np.isnan(part)
        return np.where(known, t, np.nan)

    def subset(self, idx: Sequence[int] | np.ndarray) -> ReplayTable:
        """Rows ``idx`` in that order (for seeded subsampling and cross-fitting)."""
        ix = np.asarray(idx, dtype=np.int64)
        return ReplayTable(
            [self.prompts[i] for i in ix], list(self.options), self.scores[ix], self.costs[ix],
            None if self.thinking is None else self.thinking[ix],
            None if self.answer is None else self.answer[ix],
            self.cost_unit, [self.meta[i] for i in ix] if self.meta else [],
        )


def load_prices(path: str | Path) -> dict[str, float]:
    """Per-model price per query = ``input_price + output_price`` from a ``default_llm.json``-style file."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"--prices: cannot read {p}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"--prices: {p} must map model -> {{input_price, output_price}}")
    out = {}
    for model, spec in data.items():
        try:
            out[str(model)] = float(spec["input_price"]) + float(spec["output_price"])
        except (TypeError, KeyError, ValueError) as exc:
            raise ValueError(f"--prices: {p}: model {model!r} needs numeric input_price and output_price") from exc
    return out


def table_from_rows(rows: Sequence[Any], prices: dict[str, float] | None = None) -> ReplayTable:
    """Dense table from ``predictors.records.OutcomeRow`` objects.

    Options are those present in every row (the first row's order); the cost
    source is the rows' ``costs``, else ``prices`` (keyed by model, the part of
    the option name before ``@``), else thinking + answer tokens. Raises
    ``ValueError`` naming the missing field otherwise.
    """
    from predictors.records import parse_option

    if not rows:
        raise ValueError("table: no rows")
    common = [o for o in rows[0].scores if all(o in r.scores for r in rows)]
    if not common:
        raise ValueError("scores: no option is present in every row")
    n, m = len(rows), len(common)
    scores = np.array([[r.scores[o] for o in common] for r in rows], dtype=np.float64)

    def opt_map(attr: str) -> np.ndarray | None:
        if all(getattr(r, attr) is None for r in rows):
            return None
        arr = np.full((n, m), np.nan)
        for i, r in enumerate(rows):
            d = getattr(r, attr) or {}
            for j, o in enumerate(common):
                if o in d:
                    arr[i, j] = d[o]
        return arr

    thinking, answer = opt_map("thinking_tokens"), opt_map("answer_tokens")
    costs = opt_map("costs")
    unit = "usd"
    if costs is None or np.isnan(costs).any():
        if prices is not None:
            missing = sorted({parse_option(o)[0] for o in common} - set(prices))
            if missing:
                raise ValueError(f"--prices: no price for model(s) {', '.join(missing)}")
            costs = np.tile(np.array([prices[parse_option(o)[0]] for o in common]), (n, 1))
            unit = "price"
        else:
            tok = ReplayTable([], common, scores, scores, thinking, answer).tokens
            if tok is None or np.isnan(tok).any():
                raise ValueError("costs: the table has no complete 'costs' or token counts; pass --prices")
            costs, unit = tok, "tokens"
    meta = [dict(r.meta) for r in rows]
    return ReplayTable([r.prompt for r in rows], common, scores, costs, thinking, answer, unit, meta)


def pivot_records(records: Sequence[Any]) -> list[Any]:
    """``predictors.records.records_to_table`` plus each prompt's item metadata (difficulty, level, ...).

    The first record of a prompt supplies the metadata; all records of one
    prompt come from the same eval item, so they agree.
    """
    from predictors.records import records_to_table

    rows = records_to_table(records)
    first: dict[str, dict[str, Any]] = {}
    for r in records:
        first.setdefault(r.text, r.meta)
    for row in rows:
        meta = first.get(row.prompt, {})
        for k in _ROW_META_KEYS:
            if meta.get(k) is not None:
                row.meta.setdefault(k, meta[k])
    return rows


def load_replay_table(path: str | Path, prices: str | Path | None = None) -> ReplayTable:
    """Load a wide outcome table file (JSON list or JSONL) and an optional price file."""
    from predictors.records import load_outcome_table

    return table_from_rows(load_outcome_table(path), load_prices(prices) if prices is not None else None)
