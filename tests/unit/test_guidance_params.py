"""Per-request guidance arguments: validation (-> HTTP 400 in vLLM) and the gateway's xargs helper."""

from __future__ import annotations

import math

import pytest

from guidance.params import DEFAULT_PRIOR, GuidanceArgs, parse_extra_args
from guidance.xargs import gamma_prior_from_lognormal, uses_native_cap, vllm_xargs_for


def test_absent_budget_means_not_ours():
    assert parse_extra_args(None) is None
    assert parse_extra_args({}) is None
    assert parse_extra_args({"other_plugin": 3}) is None


def test_defaults_and_codes():
    a = parse_extra_args({"think_budget": 128})
    assert a == GuidanceArgs(128, "soft", 1.0, *DEFAULT_PRIOR)
    assert parse_extra_args({"think_budget": 5, "think_mode": 2}).mode == "soft+hard"
    assert parse_extra_args({"think_budget": 5, "think_mode": "extend"}).mode == "extend"
    assert parse_extra_args({"think_budget": 5.0}).budget == 5
    assert not parse_extra_args({"think_budget": 5, "think_mode": 0}).active
    assert parse_extra_args({"think_budget": 5, "think_mode": 3}).active


@pytest.mark.parametrize(("extra", "match"), [
    ({"think_budget": -1}, "think_budget: must be >= 0"),
    ({"think_budget": 2.5}, "think_budget: must be an integer"),
    ({"think_budget": True}, "think_budget: must be an integer"),
    ({"think_budget": "many"}, "think_budget: must be an integer"),
    ({"think_budget": 10, "think_mode": "fast"}, "think_mode: unknown mode 'fast'"),
    ({"think_budget": 10, "think_mode": 7}, "think_mode: unknown mode 7"),
    ({"think_budget": 10, "think_strength": -1}, "think_strength"),
    ({"think_budget": 10, "think_strength": float("nan")}, "think_strength"),
    ({"think_budget": 10, "think_prior_alpha": 0.0, "think_prior_rate": 1.0}, "think_prior_alpha"),
    ({"think_budget": 10, "think_prior_alpha": 3.0, "think_prior_rate": 1e9}, "think_prior_rate"),
    ({"think_budget": 10, "think_prior_alpha": 3.0}, "think_prior_rate: required together"),
    ({"think_mode": 1}, "think_mode: given without vllm_xargs.think_budget"),
    ({"think_budget": 10, "think_horizon": 2}, "think_horizon"),
])
def test_bad_input_names_the_key(extra, match):
    with pytest.raises(ValueError, match=match):
        parse_extra_args(extra)


def test_vllm_xargs_for_round_trips():
    x = vllm_xargs_for("soft+hard", 300, (40.0, 8.0), 2.0)
    assert x == {"think_budget": 300, "think_mode": 2, "think_strength": 2.0,
                 "think_prior_alpha": 40.0, "think_prior_rate": 8.0, "think_horizon": 0}
    assert all(isinstance(v, int | float) and not isinstance(v, bool) for v in x.values())
    a = parse_extra_args(x)
    assert (a.budget, a.mode, a.strength, a.prior_alpha, a.prior_rate, a.horizon) == (
        300, "soft+hard", 2.0, 40.0, 8.0, 0)
    assert vllm_xargs_for("hard", 300, None, 1.0) == {}
    assert vllm_xargs_for("soft", None, None, 1.0) == {}
    assert "think_prior_alpha" not in vllm_xargs_for("extend", 50, None, 1.0)
    assert parse_extra_args(vllm_xargs_for("soft", 50, None, 1.0)).horizon == 0
    assert parse_extra_args(vllm_xargs_for("soft", 50, None, 1.0, horizon=1)).horizon == 1
    assert "think_horizon" not in vllm_xargs_for("extend", 50, None, 1.0)
    with pytest.raises(ValueError, match="horizon"):
        vllm_xargs_for("soft", 50, None, 1.0, horizon=5)


def test_vllm_xargs_for_rejects_bad_values():
    with pytest.raises(ValueError, match="mode: unknown 'turbo'"):
        vllm_xargs_for("turbo", 10, None, 1.0)
    with pytest.raises(ValueError, match="budget"):
        vllm_xargs_for("soft", -3, None, 1.0)
    with pytest.raises(ValueError, match="strength"):
        vllm_xargs_for("soft", 3, None, 99.0)
    with pytest.raises(ValueError, match="prior_alpha"):
        vllm_xargs_for("soft", 3, (-1.0, 2.0), 1.0)


def test_native_cap_modes():
    assert [uses_native_cap(m) for m in ("hard", "soft", "soft+hard", "extend")] == [True, False, True, False]
    with pytest.raises(ValueError):
        uses_native_cap("x")


def test_gamma_prior_from_lognormal_keeps_moments():
    a, r = gamma_prior_from_lognormal(5.0, 0.5)
    assert a / r == pytest.approx(5.0) and math.sqrt(a) / r == pytest.approx(0.5)
    a, r = gamma_prior_from_lognormal(0.01, 1e-6)  # extreme: stays inside the plugin's range
    assert a / r == pytest.approx(0.01) and a <= 1e4 and r <= 1e4
    parse_extra_args({"think_budget": 1, "think_prior_alpha": a, "think_prior_rate": r})
    with pytest.raises(ValueError, match="sigma"):
        gamma_prior_from_lognormal(5.0, 0.0)
