"""Live runner: send eval items to any OpenAI-compatible endpoint and write outcome records.

Works against vLLM directly or the thinkgate gateway (``mode``), with bounded
concurrency, a progress bar (rate and ETA), and an on-disk response cache keyed
by a hash of the request so that a killed run resumes without redoing finished
items. Sampled requests (temperature > 0) are cached only when seeded: an
unseeded sample is a fresh draw every time, so replaying it would be wrong.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evals.cache import ResponseCache, request_key
from evals.datasets import EvalItem
from evals.graders import get_grader
from evals.usage import parse_response

__all__ = ["RunConfig", "RunSummary", "build_request", "run", "run_async"]


@dataclass(frozen=True)
class RunConfig:
    """One endpoint x model x thinking budget x extra body.

    ``mode``: ``"vllm"`` sends the budget as vLLM's ``thinking_token_budget``;
    ``"gateway"`` as ``{"thinkgate": {"max_thinking_tokens": N}}``. ``extra_body``
    is merged in last (guidance modes, ``vllm_xargs``, ...). ``label`` replaces
    the model name in records (e.g. ``"qwen3+guided"``) so options stay apart in
    the wide table. Prices ($ per million tokens) give ``cost_usd`` when the
    endpoint does not report a cost. ``item_extra(item, cfg)``, when set, adds
    per-item keys to the extra body after ``extra_body`` (e.g. guidance
    ``vllm_xargs`` whose prior depends on the problem); it is part of the
    request, so of the cache key.
    """

    base_url: str
    model: str
    api_key: str = "EMPTY"
    mode: str = "vllm"
    thinking_budget: int | None = None
    max_tokens: int | None = None
    temperature: float = 0.0
    seed: int | None = None
    concurrency: int = 8
    timeout_s: float = 600.0
    max_retries: int = 2
    extra_body: dict[str, Any] = field(default_factory=dict)
    label: str | None = None
    price_in_per_m: float | None = None
    price_out_per_m: float | None = None
    dataset: str | None = None
    item_extra: Callable[[EvalItem, RunConfig], dict[str, Any]] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.mode not in ("vllm", "gateway"):
            raise ValueError(f"--mode: must be 'vllm' or 'gateway', got {self.mode!r}")
        if self.concurrency < 1:
            raise ValueError(f"--concurrency: must be >= 1, got {self.concurrency}")
        if self.thinking_budget is not None and self.thinking_budget < 0:
            raise ValueError(f"--budget: must be >= 0, got {self.thinking_budget}")
        if self.temperature < 0:
            raise ValueError(f"--temperature: must be >= 0, got {self.temperature}")

    @property
    def cacheable(self) -> bool:
        """Deterministic requests only: greedy, or sampled with a fixed seed."""
        return self.temperature == 0 or self.seed is not None


@dataclass
class RunSummary:
    """What a run did: counts, mean score, where the records went."""

    n_items: int = 0
    n_cached: int = 0
    n_requested: int = 0
    n_failed: int = 0
    mean_score: float | None = None
    records: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def request_seed(seed: int, item_id: str) -> int:
    """The sampling seed sent for ``item_id`` in a run seeded with ``seed``.

    One seed for every request would hand every request the same random
    stream, so prompts with similar next-token distributions would draw the
    same choices (for a testbed model: the same thinking style for every
    problem). A hash of the run seed and the item id keeps the run
    reproducible and the draws independent across items.
    """
    digest = hashlib.sha256(f"{seed}|{item_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def build_request(item: EvalItem, cfg: RunConfig) -> dict[str, Any]:
    """The chat-completions keyword arguments for ``item`` (``extra_body`` included)."""
    body: dict[str, Any] = {"model": cfg.model, "messages": item.messages, "temperature": cfg.temperature}
    if cfg.max_tokens is not None:
        body["max_tokens"] = cfg.max_tokens
    if cfg.seed is not None:
        body["seed"] = request_seed(cfg.seed, item.id)
    extra: dict[str, Any] = {}
    if cfg.thinking_budget is not None:
        if cfg.mode == "vllm":
            extra["thinking_token_budget"] = cfg.thinking_budget
        else:
            extra["thinkgate"] = {"max_thinking_tokens": cfg.thinking_budget}
    for k, v in cfg.extra_body.items():
        if k == "thinkgate" and isinstance(v, dict) and isinstance(extra.get("thinkgate"), dict):
            extra["thinkgate"] = {**extra["thinkgate"], **v}
        else:
            extra[k] = v
    if cfg.item_extra is not None:
        extra.update(cfg.item_extra(item, cfg))
    if extra:
        body["extra_body"] = extra
    return body


def _make_record(item: EvalItem, cfg: RunConfig, raw: dict[str, Any], latency_s: float,
                 count_tokens: Callable[[str], int] | None, key: str) -> Any:
    from predictors.records import OutcomeRecord

    parsed = parse_response(raw, count_tokens)
    g = get_grader(item.grader)(parsed.content, item.gold)
    cost = parsed.cost_usd
    if cost is None and cfg.price_in_per_m is not None and cfg.price_out_per_m is not None \
            and parsed.prompt_tokens is not None and parsed.completion_tokens is not None:
        cost = (cfg.price_in_per_m * parsed.prompt_tokens + cfg.price_out_per_m * parsed.completion_tokens) / 1e6
    meta = {
        "item_id": item.id, "grader": item.grader, "gold": item.gold, "extracted": g.extracted,
        "request_key": key, "served_model": parsed.model,
        **{k: v for k, v in item.metadata.items() if k != "dataset" and v is not None},
    }
    if parsed.thinkgate is not None:
        meta["thinkgate"] = parsed.thinkgate
    budget = cfg.thinking_budget
    if parsed.thinkgate is not None and isinstance(parsed.thinkgate.get("thinking_budget"), int):
        budget = parsed.thinkgate["thinking_budget"]  # the gateway decided it
    model = cfg.label or (parsed.thinkgate or {}).get("model") or cfg.model
    return OutcomeRecord(
        model=str(model), score=g.score, messages=item.messages,
        dataset=cfg.dataset or item.metadata.get("dataset"), thinking_budget=budget,
        thinking_tokens=parsed.thinking_tokens, answer_tokens=parsed.answer_tokens,
        prompt_tokens=parsed.prompt_tokens, cost_usd=cost, latency_s=round(latency_s, 4),
        finish_reason=parsed.finish_reason, meta=meta,
    )


def _progress(enabled: bool) -> Any:
    """A rich progress bar with count, items/s, elapsed time and ETA (hidden when not ``enabled``)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text("?/s" if speed is None else f"{speed:.2f} it/s")

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), disable=not enabled,
                    transient=False)


async def run_async(
    items: Sequence[EvalItem],
    cfg: RunConfig,
    cache_dir: str | Path | None = None,
    out_path: str | Path | None = None,
    progress: bool = True,
    count_tokens: Callable[[str], int] | None = None,
    client: Any = None,
) -> RunSummary:
    """Run every item once; returns the summary with one outcome record per successful item.

    Cached responses (same request hash in ``cache_dir``) are reused without a
    call; new responses are appended to the cache as soon as they arrive, so an
    interrupted run loses at most the requests in flight. Records are written
    to ``out_path`` (JSONL, the predictors' writer) at the end, in item order.
    Failed requests are counted and listed in ``errors``, never cached.
    """
    from openai import AsyncOpenAI

    cache = ResponseCache(cache_dir) if cache_dir is not None else None
    own_client = client is None
    if own_client:
        client = AsyncOpenAI(base_url=cfg.base_url, api_key=cfg.api_key, timeout=cfg.timeout_s,
                             max_retries=cfg.max_retries)
    summary = RunSummary(n_items=len(items))
    results: list[Any] = [None] * len(items)
    sem = asyncio.Semaphore(cfg.concurrency)
    bar = _progress(progress)
    task_id = bar.add_task(cfg.label or cfg.model, total=len(items))

    async def one(i: int, item: EvalItem) -> None:
        req = build_request(item, cfg)
        key = request_key(req, cfg.mode)
        hit = cache.get(key) if cache is not None and cfg.cacheable else None
        if hit is not None:
            summary.n_cached += 1
            results[i] = await asyncio.to_thread(_make_record, item, cfg, hit["response"], hit["latency_s"],
                                                 count_tokens, key)
            bar.advance(task_id)
            return
        async with sem:
            t0 = time.perf_counter()
            try:
                resp = await client.chat.completions.create(**req)
            except Exception as exc:  # noqa: BLE001 - one failed item must not end the run
                summary.n_failed += 1
                summary.errors.append(f"{item.id}: {type(exc).__name__}: {exc}")
                bar.advance(task_id)
                return
            latency = time.perf_counter() - t0
        summary.n_requested += 1
        raw = resp.model_dump(mode="json")
        if cache is not None and cfg.cacheable:
            cache.put(key, {"response": raw, "latency_s": latency})
        # Grading may wait seconds on sympy: keep it off the event loop so other requests flow.
        results[i] = await asyncio.to_thread(_make_record, item, cfg, raw, latency, count_tokens, key)
        bar.advance(task_id)

    try:
        with bar:
            await asyncio.gather(*(one(i, it) for i, it in enumerate(items)))
    finally:
        if own_client:
            await client.close()
        if cache is not None:
            cache.close()
    summary.records = [r for r in results if r is not None]
    if summary.records:
        summary.mean_score = sum(r.score for r in summary.records) / len(summary.records)
    if out_path is not None:
        from predictors.records import write_outcome_records

        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        write_outcome_records(summary.records, out_path)
    return summary


def run(items: Sequence[EvalItem], cfg: RunConfig, **kwargs: Any) -> RunSummary:
    """Synchronous wrapper of :func:`run_async` (starts its own event loop)."""
    return asyncio.run(run_async(items, cfg, **kwargs))
