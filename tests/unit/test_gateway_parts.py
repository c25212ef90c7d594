"""Pure parts of the gateway: SSE relay, usage parsing, backend pool, fixed policy, config."""

from __future__ import annotations

import random

import orjson
import pytest

from router.pool import BackendPool, Replica
from router.seam import FixedPolicy, NoModelAvailable, RequestView, UnknownModel, make_policy
from thinkgate.config import load_settings
from thinkgate.gateway.proxy import SSERelay, Usage


def sse(obj) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


STREAM = (
    sse({"id": "c1", "created": 5, "model": "m", "choices": [{"index": 0, "delta": {"reasoning": "a"}}]})
    + sse({"id": "c1", "created": 5, "model": "m", "choices": [{"index": 0, "delta": {"content": "b"}}]})
    + sse({"id": "c1", "created": 5, "model": "m", "choices": [],
           "usage": {"prompt_tokens": 3, "completion_tokens": 9, "completion_tokens_details": {"reasoning_tokens": 6}}})
    + b"data: [DONE]\n\n"
)


@pytest.mark.parametrize("include_usage", [False, True])
@pytest.mark.parametrize("seed", range(5))
def test_relay_is_independent_of_chunk_boundaries(include_usage, seed):
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(STREAM)), 6))
    parts = [STREAM[a:b] for a, b in zip([0, *cuts], [*cuts, len(STREAM)], strict=True)]
    relay = SSERelay(include_usage)
    out = b"".join(relay.feed(p) for p in parts) + relay.tail()
    assert b"[DONE]" not in out  # the gateway appends its own after the thinkgate chunk
    assert (b'"usage"' in out) is include_usage
    assert out.count(b"\n\n") == (3 if include_usage else 2)
    assert relay.usage == Usage(prompt_tokens=3, completion_tokens=9, thinking_tokens=6)
    assert relay.usage.answer_tokens == 3
    assert (relay.last_chunk_id, relay.created, relay.model) == ("c1", 5, "m")


def test_relay_holds_partial_events_until_complete():
    relay = SSERelay(False)
    assert relay.feed(b'data: {"id": "x", "choices": [{"delta"') == b""
    assert relay.feed(b': {"content": "hi"}}]}\n\n').endswith(b"\n\n")


def test_usage_parse_without_reasoning_details():
    u = Usage.parse({"prompt_tokens": 2, "completion_tokens": 4})
    assert u is not None and u.thinking_tokens is None and u.answer_tokens == 4
    assert Usage.parse(None) is None


def test_pool_prefers_least_outstanding_and_skips_unhealthy():
    a, b, c = (Replica(name=n, url=f"http://{n}", model="m") for n in "abc")
    pool = BackendPool([a, b, c])
    pool.acquire(a)
    pool.acquire(a)
    pool.acquire(b)
    assert [r.name for r in pool.order("m")] == ["c", "b", "a"]
    pool.mark(c, False, "down")
    assert [r.name for r in pool.order("m")] == ["b", "a"]
    assert pool.snapshot().get("m").healthy
    for r in (a, b):
        pool.mark(r, False)
    assert pool.order("m") == [] and not pool.snapshot().get("m").healthy


def test_pool_rotates_ties():
    reps = [Replica(name=n, url=f"http://{n}", model="m") for n in "ab"]
    pool = BackendPool(reps)
    firsts = {pool.order("m")[0].name for _ in range(4)}
    assert firsts == {"a", "b"}


def view(model="auto", mtt=None) -> RequestView:
    return RequestView(model=model, prompt_text="q", max_tokens=None, max_thinking_tokens=mtt, effort=None,
                       max_cost_usd=None, min_quality=None, allow_skip=None, tenant_id="t")


def pool2(small_healthy=True, cap=True) -> BackendPool:
    small = Replica(name="s", url="http://s", model="small", price_input_per_m=0.1, price_output_per_m=0.2,
                    healthy=small_healthy)
    big = Replica(name="b", url="http://b", model="big", price_input_per_m=1, price_output_per_m=2,
                  enforces_thinking_budget=cap)
    return BackendPool([small, big])


def test_fixed_policy_budget_model_and_fallback():
    pol = FixedPolicy(default_model="small", default_thinking_budget=100)
    d = pol.decide(view(), pool2().snapshot())
    assert (d.model, d.thinking_budget, d.mode, d.strategy) == ("small", 100, "hard", "fixed")
    d = pol.decide(view(mtt=8), pool2().snapshot())
    assert d.thinking_budget == 8 and "requested" in d.reason
    d = pol.decide(view(), pool2(small_healthy=False).snapshot())
    assert d.model == "big" and "down" in d.reason
    d = pol.decide(view(model="big"), pool2(cap=False).snapshot())
    assert d.mode == "none" and "does not enforce" in d.reason
    d = FixedPolicy(guidance_mode="soft").decide(view(model="big", mtt=4), pool2().snapshot())
    assert d.mode == "hard" and "degraded to hard" in d.reason
    with pytest.raises(UnknownModel, match="available: auto, big, small"):
        pol.decide(view(model="nope"), pool2().snapshot())
    with pytest.raises(NoModelAvailable):
        pol.decide(view(model="small"), pool2(small_healthy=False).snapshot())


def test_policy_registry_names_the_choices():
    with pytest.raises(ValueError, match="unknown router strategy 'bogus', available: .*fixed"):
        make_policy("bogus")


def test_config_toml_env_and_errors(tmp_path, monkeypatch):
    cfg = tmp_path / "t.toml"
    cfg.write_text('[gateway]\nport = 9000\n[[backends]]\nname = "a"\nurl = "http://x:1/"\nmodel = "m"\n')
    monkeypatch.setenv("THINKGATE_GATEWAY__PORT", "9100")
    s = load_settings(cfg)
    assert s.gateway.port == 9100 and s.backends[0].url == "http://x:1"
    with pytest.raises(FileNotFoundError, match="missing.toml"):
        load_settings(tmp_path / "missing.toml")
    cfg.write_text('[[backends]]\nname = "a"\nurl = "x"\nmodel = "m"\n')
    with pytest.raises(ValueError, match="url"):
        load_settings(cfg)
    cfg.write_text('[[backends]]\nname = "a"\nurl = "http://x"\nmodel = "auto"\n')
    with pytest.raises(ValueError, match="aliases"):
        load_settings(cfg)


def test_think_counter_counts_through_the_end_marker_across_chunks():
    from thinkgate.gateway.proxy import ThinkCounter

    c = ThinkCounter(end_id=9)
    c.add([1, 2])
    c.add([3, 9, 4])
    c.add([5])
    c.saw_reasoning = True
    assert (c.thinking, c.total) == (4, 6)
    quiet = ThinkCounter(end_id=9)
    quiet.add([1, 2, 3])
    assert quiet.thinking == 0  # no reasoning seen and no marker: the model answered directly


def test_count_thinking_and_strip_for_non_stream():
    from thinkgate.gateway.proxy import count_thinking, strip_token_ids

    obj = {"prompt_token_ids": [1, 2], "choices": [
        {"message": {"reasoning": "hm", "content": "4"}, "token_ids": [7, 7, 9, 5]},
        {"message": {"reasoning": None, "content": "4"}, "token_ids": [5, 5]},
    ]}
    assert count_thinking(obj, 9) == 3
    assert count_thinking(obj, None) is None
    strip_token_ids(obj)
    assert "prompt_token_ids" not in obj and all("token_ids" not in ch for ch in obj["choices"])


def test_relay_counts_thinking_from_token_ids_and_strips_them():
    from thinkgate.gateway.proxy import ThinkCounter

    stream = (
        b'data: {"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":""}}],'
        b'"prompt_token_ids":[1,2,3]}\n\n'
        b'data: {"id":"c","choices":[{"index":0,"delta":{"reasoning":"ab"},"token_ids":[11,12]}]}\n\n'
        b'data: {"id":"c","choices":[{"index":0,"delta":{},"token_ids":[99]}]}\n\n'
        b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"x"},"token_ids":[13]}]}\n\n'
        b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,'
        b'"completion_tokens_details":{"reasoning_tokens":0}}}\n\ndata: [DONE]\n\n'
    )
    relay = SSERelay(False, ThinkCounter(99), strip_ids=True)
    out = relay.feed(stream[:97]) + relay.feed(stream[97:])
    assert b"token_ids" not in out
    for line in out.split(b"\n\n"):
        if line:
            orjson.loads(line[6:])  # still valid JSON after the byte edits
    usage = relay.final_usage()
    assert (usage.thinking_tokens, usage.answer_tokens) == (3, 1)  # vLLM said 0: R1-style prompt-opened thinking
    partial = SSERelay(False, ThinkCounter(99))
    partial.feed(stream[: stream.index(b"data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\"")])
    assert partial.partial_usage() == Usage(prompt_tokens=3, completion_tokens=3, thinking_tokens=3)


def test_guided_decisions_carry_plugin_xargs_and_the_native_cap_only_with_hard():
    from router.seam import Decision
    from thinkgate.gateway.pipeline import upstream_body, with_guidance
    from thinkgate.gateway.validate import parse_body

    def body_for(mode: str, predicted: float | None = None) -> dict:
        d = Decision(model="m", thinking_budget=64, max_tokens=256, mode=mode, strategy="fixed", reason="",
                     predicted_thinking_tokens=predicted)
        req = parse_body(orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "q"}],
                                       "vllm_xargs": {"mine": 1}}), "chat", "auto")
        return upstream_body(req, with_guidance(d, 2.0))

    hard = body_for("hard")
    assert hard["thinking_token_budget"] == 64 and hard["vllm_xargs"] == {"mine": 1}
    both = body_for("soft+hard", predicted=120.0)
    assert both["thinking_token_budget"] == 64
    xa = both["vllm_xargs"]
    assert xa["mine"] == 1 and any(k.startswith("think_") for k in xa) and 64 in xa.values()
    soft = body_for("soft")
    assert "thinking_token_budget" not in soft and any(k.startswith("think_") for k in soft["vllm_xargs"])


def test_guidance_horizon_setting_reaches_the_plugin_xargs():
    from pydantic import ValidationError

    from router.seam import Decision
    from thinkgate.config import RouterConfig
    from thinkgate.gateway.pipeline import with_guidance

    assert RouterConfig().guidance_horizon == 0  # Budget Guidance's rule by default
    with pytest.raises(ValidationError, match="guidance_horizon"):
        RouterConfig(guidance_horizon=2)
    d = Decision(model="m", thinking_budget=64, max_tokens=256, mode="soft+hard", strategy="fixed", reason="")
    assert with_guidance(d, 1.0).extra_vllm_args["think_horizon"] == 0
    assert with_guidance(d, 1.0, RouterConfig(guidance_horizon=1).guidance_horizon).extra_vllm_args["think_horizon"] == 1


def test_a_second_upstream_body_from_one_request_does_not_inherit_the_first_decision():
    """The model-level fallback builds a second body from the same request."""
    from router.seam import Decision
    from thinkgate.gateway.pipeline import upstream_body, with_guidance
    from thinkgate.gateway.validate import parse_body

    req = parse_body(orjson.dumps({"model": "auto", "messages": [{"role": "user", "content": "q"}]}), "chat", "auto")
    first = upstream_body(req, with_guidance(Decision(model="a", thinking_budget=100, max_tokens=500, mode="soft",
                                                      strategy="utility", reason=""), 1.0), want_token_ids=True)
    assert first["max_tokens"] == 500 and first["return_token_ids"] and "vllm_xargs" in first
    second = upstream_body(req, Decision(model="b", thinking_budget=None, max_tokens=None, mode="none",
                                         strategy="utility", reason=""))
    assert second["model"] == "b"
    assert not {"max_tokens", "return_token_ids", "vllm_xargs", "thinking_token_budget"} & set(second)


def test_a_models_own_guidance_mode_overrides_the_policys():
    from pydantic import ValidationError

    from router.seam import ModelInfo, enforcement_mode
    from thinkgate.config import Settings

    plain = ModelInfo("a", 1.0, 1.0, True, True, True)
    pinned = ModelInfo("b", 1.0, 1.0, True, True, True, guidance_mode="hard")
    assert enforcement_mode(plain, 64, "soft+hard") == ("soft+hard", "")
    assert enforcement_mode(pinned, 64, "soft+hard") == ("hard", "")
    assert enforcement_mode(pinned, None, "soft+hard") == ("none", "")
    # an override still degrades when the plugin is absent
    no_plugin = ModelInfo("c", 1.0, 1.0, True, False, True, guidance_mode="soft")
    assert enforcement_mode(no_plugin, 64, "hard")[0] == "hard"
    b = {"url": "http://127.0.0.1:1", "model": "m"}
    with pytest.raises(ValidationError, match="guidance_mode differs"):
        Settings(backends=[{**b, "name": "m-0", "guidance_mode": "hard"}, {**b, "name": "m-1"}])
    with pytest.raises(ValidationError, match="guidance_mode"):
        Settings(backends=[{**b, "name": "m-0", "guidance_mode": "gentle"}])
    from router.pool import BackendPool, Replica

    pool = BackendPool([Replica("m-0", "http://x", "m", guidance=True, guidance_mode="hard"),
                        Replica("n-0", "http://y", "n", guidance=True)])
    snap = pool.snapshot()
    assert snap.get("m").guidance_mode == "hard" and snap.get("n").guidance_mode is None


def test_guidance_prior_is_the_models_unconstrained_length_not_the_capped_one():
    import dataclasses
    import math

    from predictors.model import OptionEstimate
    from router.options import build_candidates, make_decision
    from thinkgate.gateway.pipeline import with_guidance

    ests = (OptionEstimate("big@40", 0.4, 40.0, 40.0, 5.0, 6.0), OptionEstimate("big", 0.9, 120.0, 150.0, 5.0, 6.0))
    req = dataclasses.replace(view(model="big"), estimates=ests)
    snap = BackendPool([Replica(name="b", url="http://b", model="big", guidance=True)]).snapshot()
    capped = next(c for c in build_candidates(req, snap) if c.option == "big@40")
    d = make_decision(req, snap, capped, strategy="utility", reason="", guidance_mode="soft+hard")
    assert d.predicted_thinking_tokens == 40.0 and d.unconstrained_thinking_tokens == 120.0
    xa = with_guidance(d, 1.0).extra_vllm_args
    assert math.isclose(xa["think_prior_alpha"] / xa["think_prior_rate"], math.log1p(120.0), rel_tol=1e-6)
    # without an unlimited estimate, the chosen option's (capped) prediction is the prior
    only = dataclasses.replace(req, estimates=ests[:1])
    d2 = make_decision(only, snap, capped, strategy="utility", reason="", guidance_mode="soft+hard")
    assert d2.unconstrained_thinking_tokens is None
    xa2 = with_guidance(d2, 1.0).extra_vllm_args
    assert math.isclose(xa2["think_prior_alpha"] / xa2["think_prior_rate"], math.log1p(40.0), rel_tol=1e-6)
