"""Budgets through the gateway (in-process app, real SQLite ledger, instant upstream)."""

from __future__ import annotations

import time

import httpx
import pytest

from budget import open_ledger
from server import create_app
from thinkgate.config import Settings

MSG = [{"role": "user", "content": "2+2?"}]


def make_settings(upstream: str, db, **gateway) -> Settings:
    return Settings(
        gateway={"health_interval_s": 60, **gateway},
        backends=[{"name": "cheap", "url": upstream, "model": "instant", "price_input_per_m": 1.0,
                   "price_output_per_m": 2.0},
                  {"name": "pricey", "url": upstream, "model": "instant-xl", "price_input_per_m": 10.0,
                   "price_output_per_m": 20.0}],
        ledger_url=f"sqlite:///{db}",
    )


async def gateway(settings: Settings):
    app = create_app(settings)
    ctx = app.router.lifespan_context(app)
    await ctx.__aenter__()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")
    return app, ctx, client


async def test_exhausted_tenant_gets_429_with_retry_after_other_unaffected(upstream, tmp_path):
    db = tmp_path / "ledger.db"
    ledger = open_ledger(f"sqlite:///{db}")
    _, key_a = await ledger.add_tenant("small", budget_usd=None, budget_tokens=500, window="day")
    _, key_b = await ledger.add_tenant("big", budget_usd=1.0, budget_tokens=None, window="hour")
    await ledger.close()
    app, ctx, c = await gateway(make_settings(upstream, db))
    try:
        spent_a, codes = 0, []
        for _ in range(30):
            r = await c.post("/v1/chat/completions", json={"model": "instant", "messages": MSG, "max_tokens": 100},
                             headers={"authorization": f"Bearer {key_a}"})
            codes.append(r.status_code)
            if r.status_code == 200:
                u = r.json()["usage"]
                spent_a += u["prompt_tokens"] + u["completion_tokens"]
                assert r.json()["thinkgate"]["cost"]["reserved_usd"] > 0
            rb = await c.post("/v1/chat/completions", json={"model": "instant", "messages": MSG},
                              headers={"authorization": f"Bearer {key_b}"})
            assert rb.status_code == 200  # the other tenant is unaffected
        first_429 = codes.index(429)
        assert all(code == 200 for code in codes[:first_429]) and set(codes[first_429:]) == {429}
        # worst case per request: prompt bound (4 bytes + 64 + 64) + max_tokens 100 = 232 tokens
        assert spent_a + 232 > 500 >= spent_a - (spent_a // first_429) + 232
        r = await c.post("/v1/chat/completions", json={"model": "instant", "messages": MSG, "max_tokens": 100},
                         headers={"authorization": f"Bearer {key_a}"})
        err = r.json()["error"]
        assert err["code"] == "budget_exceeded" and "tokens budget per day" in err["message"]
        midnight = (int(time.time()) // 86400 + 1) * 86400
        assert abs(int(r.headers["retry-after"]) - (midnight - time.time())) <= 5
        status = (await c.get("/v1/budget", headers={"authorization": f"Bearer {key_a}"})).json()
        assert status["spent_tokens"] == spent_a and status["reserved_tokens"] == 0
        assert status["limit_tokens"] == 500 and status["remaining_tokens"] == 500 - spent_a
        status_b = (await c.get("/v1/budget", headers={"authorization": f"Bearer {key_b}"})).json()
        assert status_b["window"] == "hour" and status_b["spent_usd"] > 0
    finally:
        await c.aclose()
        await ctx.__aexit__(None, None, None)


async def test_degrade_policy_shrinks_the_request_instead_of_refusing(upstream, tmp_path):
    db = tmp_path / "ledger.db"
    ledger = open_ledger(f"sqlite:///{db}")
    _, key = await ledger.add_tenant("frugal", budget_usd=0.001, budget_tokens=None, window="day", policy="degrade")
    await ledger.close()
    app, ctx, c = await gateway(make_settings(upstream, db))
    try:
        # Worst case on instant-xl at max_tokens 4096 is ~$0.08: over budget, so degrade.
        r = await c.post("/v1/chat/completions", json={"model": "instant-xl", "messages": MSG},
                         headers={"authorization": f"Bearer {key}"})
        assert r.status_code == 200, r.text
        tg = r.json()["thinkgate"]
        assert tg["model"] == "instant" and "degraded to instant" in tg["reason"]
        assert tg["cost"]["reserved_usd"] <= 0.001
    finally:
        await c.aclose()
        await ctx.__aexit__(None, None, None)


async def test_api_keys_required_and_admin_api(upstream, tmp_path):
    s = make_settings(upstream, tmp_path / "l.db", require_api_key=True, admin_key="root-secret")
    app, ctx, c = await gateway(s)
    try:
        r = await c.post("/v1/chat/completions", json={"model": "instant", "messages": MSG})
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
        r = await c.post("/v1/chat/completions", json={"model": "instant", "messages": MSG},
                         headers={"authorization": "Bearer nope"})
        assert r.status_code == 401
        assert (await c.get("/admin/tenants", headers={"authorization": "Bearer wrong"})).status_code == 403
        admin = {"authorization": "Bearer root-secret"}
        r = await c.post("/admin/tenants", json={"name": "t1", "budget_usd": 0.5, "window": "month"}, headers=admin)
        assert r.status_code == 201
        key, tid = r.json()["api_key"], r.json()["tenant"]["id"]
        r = await c.post("/admin/tenants", json={"name": "t2", "window": "fortnight"}, headers=admin)
        assert r.status_code == 400 and r.json()["error"]["param"] == "window"
        r = await c.patch(f"/admin/tenants/{tid}", json={"budget_usd": 2.0}, headers=admin)
        assert r.json()["tenant"]["budget_usd"] == 2.0
        r = await c.post("/v1/chat/completions", json={"model": "instant", "messages": MSG},
                         headers={"authorization": f"Bearer {key}"})
        assert r.status_code == 200
        b = (await c.get(f"/admin/tenants/{tid}/budget", headers=admin)).json()
        assert b["limit_usd"] == 2.0 and b["spent_usd"] == pytest.approx(r.json()["thinkgate"]["cost"]["actual_usd"])
    finally:
        await c.aclose()
        await ctx.__aexit__(None, None, None)


async def test_window_pacer_raises_the_price_when_spend_runs_ahead_of_plan():
    from thinkgate.gateway.admission import WindowPacer

    class Status:
        def __init__(self, spent, start, reset, limit=1.0):
            self.spent_usd, self.reserved_usd, self.limit_usd = spent, 0.0, limit
            self.window_start, self.window_reset_at = start, reset

    class Ledger:
        def __init__(self, st):
            self.st = st

        async def status(self, tenant):
            return self.st

    now = time.time()
    pacer = WindowPacer(eta=1.0)
    ahead = Ledger(Status(spent=0.9, start=now - 100, reset=now + 900))  # 90% spent, 10% of the window gone
    for _ in range(3):
        await pacer.observe("t", 0.01, ahead)
    lam_ahead = pacer.price("t")
    assert lam_ahead > 0
    behind = Ledger(Status(spent=0.05, start=now - 900, reset=now + 100))  # far below plan
    for _ in range(10):
        await pacer.observe("t", 0.01, behind)
    assert pacer.price("t") == 0.0 < lam_ahead
    assert pacer.price("nobody") == 0.0
