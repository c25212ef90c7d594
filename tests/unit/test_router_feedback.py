"""POST /v1/feedback in-process: 400 naming the field, 404 unknown/expired/foreign, idempotent, bandit + outcome log."""

from __future__ import annotations

import httpx
import pytest

import router.strategies  # noqa: F401  (registers the strategies)
from predictors.model import OptionEstimate
from predictors.records import load_outcome_records
from router.linucb import LinUCBPolicy
from router.seam import ModelInfo, RequestView, RoutingSnapshot
from server import create_app
from thinkgate.config import Settings
from thinkgate.gateway.feedback import DecisionLog, LoggedDecision, install_feedback
from thinkgate.gateway.pipeline import Outcome
from thinkgate.gateway.proxy import Usage

SNAP = RoutingSnapshot(
    (ModelInfo("small", 1.0, 1.0, True, False, True), ModelInfo("big", 1.0, 1.0, True, False, True)),
    frozenset({"auto"}),
)


def view(tenant: str = "anonymous") -> RequestView:
    ests = (OptionEstimate("small", 0.3, 10, 10, 10, 10), OptionEstimate("big", 0.7, 10, 10, 10, 10))
    return RequestView("auto", "what is 2+2?", None, None, None, None, None, None, tenant, estimates=ests)


@pytest.fixture
async def app_gw(tmp_path):
    settings = Settings(gateway={"health_interval_s": 60, "decision_ttl_s": 60},
                        backends=[{"name": "b", "url": "http://127.0.0.1:9", "model": "small"},
                                  {"name": "c", "url": "http://127.0.0.1:9", "model": "big"}],
                        ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}", outcomes_path=str(tmp_path / "out.jsonl"))
    app = create_app(settings)
    gw = app.gateway
    gw.policy = LinUCBPolicy(alpha=0.0, prior_weight=1.0)
    fb = gw.feedback or install_feedback(app, gw)
    ctx = app.router.lifespan_context(app)
    await ctx.__aenter__()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")
    try:
        yield client, gw, fb
    finally:
        await client.aclose()
        await ctx.__aexit__(None, None, None)


def served(gw, fb, tenant: str = "anonymous") -> str:
    """Decide like the hot path and record the outcome; returns the decision id."""
    v = view(tenant)
    d = gw.policy.decide(v, SNAP)
    out = Outcome(decision_id=f"d-{len(fb.log)}", decision=d)
    fb.record(out, v, SNAP)  # logged before the upstream call, as the hot path does
    out.usage, out.actual_usd = Usage(12, 30, 20), 0.001  # filled in later; read when feedback arrives
    return out.decision_id


@pytest.mark.parametrize(("body", "param"), [
    ({"score": 1.0}, "decision_id"),
    ({"decision_id": "", "score": 1.0}, "decision_id"),
    ({"decision_id": 5, "score": 1.0}, "decision_id"),
    ({"decision_id": "x"}, "score"),
    ({"decision_id": "x", "score": 1.5}, "score"),
    ({"decision_id": "x", "score": -0.1}, "score"),
    ({"decision_id": "x", "score": True}, "score"),
    ({"decision_id": "x", "score": "1"}, "score"),
])
async def test_bad_bodies_get_400_naming_the_field(app_gw, body, param):
    client, _, _ = app_gw
    r = await client.post("/v1/feedback", json=body)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == param


async def test_non_json_and_non_object_bodies_get_400(app_gw):
    client, _, _ = app_gw
    assert (await client.post("/v1/feedback", content=b"{nope")).status_code == 400
    assert (await client.post("/v1/feedback", json=[1, 2])).status_code == 400


async def test_unknown_decision_gets_404(app_gw):
    client, _, _ = app_gw
    r = await client.post("/v1/feedback", json={"decision_id": "nope", "score": 1})
    assert r.status_code == 404 and r.json()["error"]["param"] == "decision_id"


async def test_feedback_updates_the_bandit_once_and_appends_one_outcome(app_gw, tmp_path):
    client, gw, fb = app_gw
    did = served(gw, fb)
    assert gw.policy.state.count("big") == 0
    r = await client.post("/v1/feedback", json={"decision_id": did, "score": 0})
    assert r.status_code == 200 and r.json() == {"decision_id": did, "accepted": True, "duplicate": False}
    assert gw.policy.state.count("big") == 1
    r = await client.post("/v1/feedback", json={"decision_id": did, "score": 1})
    assert r.status_code == 200 and r.json()["duplicate"] is True
    assert gw.policy.state.count("big") == 1  # a repeat changes nothing
    recs = load_outcome_records(tmp_path / "out.jsonl")
    assert len(recs) == 1
    rec = recs[0]
    assert (rec.model, rec.score, rec.prompt, rec.thinking_tokens, rec.answer_tokens) == (
        "big", 0.0, "what is 2+2?", 20, 10)
    assert rec.meta["decision_id"] == did and rec.meta["strategy"] == "linucb"
    # The statistics reached the ledger store, where another replica would pull them.
    key = gw.policy.store_key("big")
    vec = await gw.admission.ledger.stats_get(key)
    assert vec is not None and vec[-1] == 1.0


async def test_feedback_moves_the_routing(app_gw):
    client, gw, fb = app_gw
    for _ in range(30):
        did = served(gw, fb)
        model = fb.log.get(did).decision.model
        score = 1.0 if model == "small" else 0.0
        assert (await client.post("/v1/feedback", json={"decision_id": did, "score": score})).status_code == 200
    assert gw.policy.decide(view(), SNAP).model == "small"


async def test_another_tenants_decision_is_not_found(app_gw):
    client, gw, fb = app_gw
    did = served(gw, fb, tenant="someone-else")
    r = await client.post("/v1/feedback", json={"decision_id": did, "score": 1})
    assert r.status_code == 404


def test_decision_log_expires_and_bounds_entries():
    now = [0.0]
    log = DecisionLog(ttl_s=10, max_entries=3, clock=lambda: now[0])

    def entry(i: int) -> LoggedDecision:
        return LoggedDecision(f"d{i}", "t", None, "p", None, created=now[0])  # type: ignore[arg-type]

    log.put(entry(0))
    now[0] = 5
    assert log.get("d0") is not None
    now[0] = 10.5
    assert log.get("d0") is None and log.claim("d0", 1.0) == (None, False)
    for i in range(1, 6):
        log.put(entry(i))
    assert len(log) == 3 and log.get("d1") is None and log.get("d5") is not None
    e, dup = log.claim("d5", 0.5)
    assert e is not None and not dup and log.claim("d5", 0.9)[1] is True and e.feedback == 0.5



async def test_record_feeds_the_tiers_online_calibration(app_gw):
    from router.strategies import TierCalibrator, TiersPolicy

    _, gw, fb = app_gw
    gw.policy = TiersPolicy(calibrator=TierCalibrator(0.5, min_samples=2))
    for tenant in ("a", "a", "b"):
        served(gw, fb, tenant=tenant)
    assert gw.policy.calibrator.samples("a") == 2 and gw.policy.calibrator.samples("b") == 1
    # Both models cost the same here, so they form one tier whose confidence is the best p (0.7).
    assert gw.policy.calibrator.threshold("a") == (pytest.approx(0.7), "tenant")
    assert fb.log.get("d-0").context is None  # tiers has no bandit context to log
