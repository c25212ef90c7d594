"""Backend probes for ``thinkgate backends check``: reachability, model names, thinking cap."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from thinkgate.config import BackendConfig

_PROBE_BUDGET = 2


async def _probe(client: httpx.AsyncClient, b: BackendConfig, timeout: float) -> dict[str, Any]:
    res: dict[str, Any] = {"name": b.name, "url": b.url, "model": b.model, "reachable": False,
                           "served_models": [], "model_served": False, "thinking_cap": None,
                           "thinking_tokens_seen": None, "error": None}
    headers = {"authorization": f"Bearer {b.api_key}"} if b.api_key else {}
    try:
        r = await client.get(b.url + "/v1/models", headers=headers, timeout=timeout)
        r.raise_for_status()
        res["reachable"] = True
        res["served_models"] = [m.get("id") for m in r.json().get("data", [])]
        res["model_served"] = b.model in res["served_models"]
        if not res["model_served"]:
            res["error"] = f"model {b.model!r} not served here"
            return res
        # A tiny request with a 2-token thinking budget: vLLM rejects it (400)
        # when no reasoning config is set, else the thinking must stop at the cap.
        body = {"model": b.model, "messages": [{"role": "user", "content": "1+1"}], "max_tokens": 24,
                "temperature": 0, "thinking_token_budget": _PROBE_BUDGET}
        r = await client.post(b.url + "/v1/chat/completions", json=body, headers=headers, timeout=timeout)
        if r.status_code == 400:
            res["thinking_cap"] = False
            res["error"] = r.json().get("error", {}).get("message", r.text)[:200]
            return res
        r.raise_for_status()
        details = (r.json().get("usage") or {}).get("completion_tokens_details") or {}
        seen = details.get("reasoning_tokens")
        res["thinking_tokens_seen"] = seen
        # The forced end marker may add a few tokens on top of the budget.
        res["thinking_cap"] = None if seen is None else seen <= _PROBE_BUDGET + 8
    except (httpx.HTTPError, ValueError) as exc:
        res["error"] = f"{type(exc).__name__}: {exc}"
    return res


async def check_backends(backends: list[BackendConfig], timeout: float = 30.0) -> list[dict[str, Any]]:
    """Probe every backend concurrently; one result dict per backend, in config order."""
    async with httpx.AsyncClient() as client:
        return list(await asyncio.gather(*(_probe(client, b, timeout) for b in backends)))
