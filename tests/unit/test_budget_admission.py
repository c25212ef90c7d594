"""Admission: reject vs degrade, worst case checked, expected cost priced."""

from __future__ import annotations

import pytest

from budget.admission import PricedOption, admit
from budget.ledger import Cost

SMALL = PricedOption("small", 0.5, Cost(usd=0.001, tokens=200), Cost(usd=0.002, tokens=400))
BIG = PricedOption("big", 0.9, Cost(usd=0.010, tokens=900), Cost(usd=0.030, tokens=4000))


def test_unlimited_budget_takes_best_value():
    a = admit([SMALL, BIG], remaining_usd=None, remaining_tokens=None)
    assert a.option is BIG and not a.degraded and a.blocked_by is None


def test_price_trades_value_for_expected_cost():
    # 0.9 - 50 * 0.010 = 0.4 < 0.5 - 50 * 0.001 = 0.45
    assert admit([SMALL, BIG], remaining_usd=None, remaining_tokens=None, lam=50).option is SMALL


def test_worst_case_must_fit_even_if_expected_does():
    a = admit([SMALL, BIG], remaining_usd=0.02, remaining_tokens=None, policy="reject")
    assert a.option is None and a.blocked_by == "usd" and "big's worst case" in a.reason
    a = admit([SMALL, BIG], remaining_usd=0.02, remaining_tokens=None, policy="degrade")
    assert a.option is SMALL and a.degraded and a.blocked_by == "usd" and "degraded from big to small" in a.reason


def test_token_budget_blocks_and_exact_fit_is_admitted():
    a = admit([SMALL, BIG], remaining_usd=None, remaining_tokens=1000, policy="degrade")
    assert a.option is SMALL and a.blocked_by == "tokens"
    assert admit([BIG], remaining_usd=0.03, remaining_tokens=4000).option is BIG
    a = admit([SMALL, BIG], remaining_usd=0.001, remaining_tokens=None, policy="degrade")
    assert a.option is None and "any option" in a.reason


def test_bad_arguments_name_the_field():
    with pytest.raises(ValueError, match="options"):
        admit([], remaining_usd=None, remaining_tokens=None)
    with pytest.raises(ValueError, match="policy"):
        admit([SMALL], remaining_usd=None, remaining_tokens=None, policy="maybe")
    with pytest.raises(ValueError, match="lam"):
        admit([SMALL], remaining_usd=None, remaining_tokens=None, lam=-1)
