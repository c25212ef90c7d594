"""The embedded default config: testbed backends, the shipped predictor and the utility strategy."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from server import create_app
from testbed.stack import PREDICTOR, default_gateway_config
from tests.helpers import free_port, instant_backend, stop
from thinkgate.config import Settings


@pytest.mark.skipif(not PREDICTOR.is_file(), reason="no shipped testbed predictor")
async def test_default_routes_with_predictions_by_difficulty(tmp_path: Path):
    ports = [free_port(), free_port()]
    cfg = default_gateway_config(["tg-large", "tg-small"], gateway_port=free_port(), vllm_base_port=0)
    procs = []
    for b, port in zip(cfg["backends"], ports, strict=True):
        b["url"] = f"http://127.0.0.1:{port}"
        procs.append(instant_backend(port, tmp_path / f"{b['name']}.log", model=b["model"]))
    try:
        settings = Settings(**cfg, ledger_url="sqlite:///:memory:")
        assert settings.router.strategy == "utility" and settings.predictor_path == str(PREDICTOR)
        # guidance: soft+hard with the plugin, except tg-small, pinned to the hard cap
        assert settings.router.guidance_mode == "soft+hard" and settings.router.guidance_horizon == 0
        assert {b.model: b.guidance_mode for b in settings.backends} == {"tg-large": None, "tg-small": "hard"}
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
                preds = []
                for q in ("sum a3 b4", "sum a3 b4 c5 d6 e7 f1 g2 h3 i4 j5 k6 l7"):
                    r = await c.post("/v1/chat/completions",
                                     json={"model": "auto", "messages": [{"role": "user", "content": q}]})
                    tg = r.json()["thinkgate"]
                    assert tg["strategy"] == "utility" and tg["model"] in ("tg-small", "tg-large")
                    if tg["thinking_budget"] is not None:
                        assert tg["mode"] == ("hard" if tg["model"] == "tg-small" else "soft+hard"), tg
                    preds.append(tg["predicted"])
        easy, hard = preds
        # The predictor knows the task: two terms are easy, twelve are harder and need longer thinking.
        assert easy["p_correct"] > 0.8 and hard["p_correct"] < easy["p_correct"]
        assert easy["thinking_tokens"] < hard["thinking_tokens"]
    finally:
        for p in procs:
            stop(p)
