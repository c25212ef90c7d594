"""A strategy behind the real gateway: ``model: auto`` routed by a trained predictor (instant upstream).

The predictor is trained here on a tiny synthetic outcome table in which
prompts that ask for a proof only succeed on the large model. ``tiers``
(reference threshold 0.5, no live samples yet) must send those to the large
model and the others to the small one, with the decision in the response.
"""

from __future__ import annotations

import httpx

import router.strategies  # noqa: F401  (registers the strategies)
from predictors import save_predictor
from predictors.records import OutcomeRow
from predictors.train import train_predictor, training_set_from_table
from server import create_app
from thinkgate.config import Settings

EASY = ["what is {} plus {}?", "name a colour like {} or {}", "say hello to {} and {}"]
HARD = ["prove that {} divides {} squared minus one", "prove the lemma for {} and {} by induction"]


def rows() -> list[OutcomeRow]:
    out = []
    for i in range(12):
        for t in EASY:
            out.append(OutcomeRow(t.format(i, i + 3), {"instant": 1.0, "instant-xl": 1.0}))
        for t in HARD:
            out.append(OutcomeRow(t.format(i, i + 5), {"instant": 0.0, "instant-xl": 1.0}))
    return out


async def test_auto_requests_route_by_predicted_difficulty(upstream, tmp_path):
    pred = train_predictor(training_set_from_table(rows()), "hashed", folds=2)
    path = save_predictor(pred, tmp_path / "p.tgp")
    settings = Settings(
        gateway={"health_interval_s": 60},
        router={"strategy": "tiers"},
        backends=[{"name": "s", "url": upstream, "model": "instant", "price_input_per_m": 0.1,
                   "price_output_per_m": 0.2},
                  {"name": "l", "url": upstream, "model": "instant-xl", "price_input_per_m": 1.0,
                   "price_output_per_m": 2.0}],
        ledger_url=f"sqlite:///{tmp_path / 'l.db'}", predictor_path=str(path),
    )
    app = create_app(settings)
    ctx = app.router.lifespan_context(app)
    await ctx.__aenter__()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
            async def route(prompt: str) -> dict:
                r = await c.post("/v1/chat/completions", json={
                    "model": "auto", "messages": [{"role": "user", "content": prompt}], "max_tokens": 16})
                assert r.status_code == 200, r.text
                return r.json()["thinkgate"]

            easy = [await route(t.format(40 + i, 7)) for i, t in enumerate(EASY)]
            hard = [await route(t.format(50 + i, 9)) for i, t in enumerate(HARD)]
    finally:
        await ctx.__aexit__(None, None, None)
    assert [d["model"] for d in easy] == ["instant"] * len(EASY)
    assert [d["model"] for d in hard] == ["instant-xl"] * len(HARD)
    assert all(d["strategy"] == "tiers" and "threshold=0.500" in d["reason"] for d in easy + hard)
    assert all(d["predicted"]["p_correct"] is not None for d in easy + hard)
