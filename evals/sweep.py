"""Sweeps: models x thinking budgets (x guidance modes) over one item set -> records + wide table.

Every grid cell is one :func:`evals.runner.run_async` call with a shared
response cache, so an interrupted sweep resumes cell by cell and item by item.
The outcome records of all cells go to ``records.jsonl`` and their pivot (one
row per prompt, one column per option ``model[@budget]``) to ``table.json`` --
the wide table ``predictors`` trains on and ``evals replay`` reads.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from evals.datasets import EvalItem
from evals.runner import RunConfig, run_async

__all__ = ["SweepResult", "grid", "parse_guidance", "sweep"]


@dataclasses.dataclass
class SweepResult:
    """Paths written and a per-cell summary ``[{option, n, mean_score, cached, requested, failed}]``."""

    records_path: Path
    table_path: Path
    cells: list[dict[str, Any]]


def parse_guidance(spec: str) -> tuple[str, dict[str, Any]]:
    """``"none"`` -> ``("none", {})``; ``"name=<json object>"`` -> ``(name, extra_body)``.

    The JSON object is merged into the request's extra body, e.g.
    ``guided={"vllm_xargs": {"think_strength": 4.0}}`` (keys as the guidance plugin defines them).
    """
    if spec == "none":
        return "none", {}
    name, sep, body = spec.partition("=")
    if not sep or not name:
        raise ValueError(f"--guidance: expected 'none' or NAME=JSON, got {spec!r}")
    try:
        extra = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--guidance: {name}: invalid JSON: {exc}") from exc
    if not isinstance(extra, dict):
        raise ValueError(f"--guidance: {name}: the JSON must be an object")
    return name, extra


def grid(
    base: RunConfig,
    models: Sequence[str],
    budgets: Sequence[int | None],
    guidance: Sequence[tuple[str, dict[str, Any]]] = (("none", {}),),
) -> list[RunConfig]:
    """One config per (model, budget, guidance mode); a non-``none`` mode labels the model ``model+mode``."""
    if not models:
        raise ValueError("--models: give at least one model")
    cells = []
    for model in models:
        for mode_name, extra in guidance:
            for b in budgets:
                label = model if mode_name == "none" else f"{model}+{mode_name}"
                cells.append(dataclasses.replace(base, model=model, thinking_budget=b, label=label,
                                                 extra_body={**base.extra_body, **extra}))
    return cells


async def _sweep(items: Sequence[EvalItem], cells: Sequence[RunConfig], out_dir: Path, progress: bool,
                 count_tokens: Callable[[str], int] | None) -> SweepResult:
    from evals.replay_table import pivot_records
    from predictors.records import option_name, write_outcome_records, write_outcome_table

    all_records: list[Any] = []
    summaries = []
    for cfg in cells:
        s = await run_async(items, cfg, cache_dir=out_dir / "cache", progress=progress, count_tokens=count_tokens)
        all_records.extend(s.records)
        summaries.append({
            "option": option_name(cfg.label or cfg.model, cfg.thinking_budget), "n": len(s.records),
            "mean_score": s.mean_score, "cached": s.n_cached, "requested": s.n_requested, "failed": s.n_failed,
        })
    records_path, table_path = out_dir / "records.jsonl", out_dir / "table.json"
    write_outcome_records(all_records, records_path)
    write_outcome_table(pivot_records(all_records), table_path)
    return SweepResult(records_path, table_path, summaries)


def sweep(
    items: Sequence[EvalItem],
    cells: Sequence[RunConfig],
    out_dir: str | Path,
    progress: bool = True,
    count_tokens: Callable[[str], int] | None = None,
) -> SweepResult:
    """Run every cell over ``items`` (sequentially; each cell is concurrent inside) and write the outputs."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return asyncio.run(_sweep(items, cells, out, progress, count_tokens))
