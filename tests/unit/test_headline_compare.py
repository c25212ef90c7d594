"""evals.headline: budget grid, distinct problems, and the uniform vs knapsack comparison on synthetic tables.

The synthetic task mirrors the testbed: a prompt with k terms needs 6*k
thinking tokens to be answered correctly, so a uniform budget wastes tokens on
short prompts and starves long ones, and a predictor that reads the number of
terms lets the knapsack move tokens where they help.
"""

from __future__ import annotations

import json
import random

import pytest

from evals.headline import budgets_for, compare, distinct_items

BUDGETS = (0, 12, 24, 36, 48, None)


def _rows(n: int, seed: int) -> list[dict[str, object]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        k = rng.randint(1, 12)
        prompt = "sum " + " ".join(f"{'abcdefghijklm'[t]}{rng.randint(1, 9)}" for t in range(k)) + f" #{i}"
        need = 6 * k
        scores, thinking = {}, {}
        for b in BUDGETS:
            opt = "m" if b is None else f"m@{b}"
            used = need if b is None else min(b, need)
            scores[opt] = 1.0 if used >= need else 0.0
            thinking[opt] = float(used)
        rows.append({"question": prompt, "scores": scores, "thinking_tokens": thinking,
                     "answer_tokens": dict.fromkeys(scores, 3.0)})
    return rows


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    d = tmp_path_factory.mktemp("headline")
    train, test = d / "train.json", d / "test.json"
    train.write_text(json.dumps(_rows(300, 1)))
    test.write_text(json.dumps(_rows(150, 2)))
    return compare(train, test, n_capacities=40)


def test_budgets_for_fractions_of_the_median_and_unlimited() -> None:
    assert budgets_for("m", 49) == [0, 12, 24, 37, 49, None]
    assert budgets_for("m", 2) == [0, 1, 2, None]  # rounding collisions are dropped, order kept
    with pytest.raises(ValueError, match="model m"):
        budgets_for("m", None)


def test_uniform_points_are_the_table_columns(result: dict[str, object]) -> None:
    uniform = {u["option"]: u for u in result["uniform"]}  # type: ignore[attr-defined]
    assert uniform["m"]["accuracy"] == 1.0
    assert uniform["m@0"]["accuracy"] == 0.0 and uniform["m@0"]["thinking_total"] == 0.0
    assert result["best_uniform"] == "m"


def test_oracle_spends_exactly_what_each_query_needs(result: dict[str, object]) -> None:
    rows = _rows(150, 2)
    need = sum(r["thinking_tokens"]["m"] for r in rows)  # type: ignore[index]
    oracle = result["oracle_per_query"]
    assert oracle == {"thinking_total": need, "accuracy": 1.0}  # type: ignore[comparison-overlap]


def test_knapsack_beats_a_uniform_mid_budget_at_equal_thinking_tokens(result: dict[str, object]) -> None:
    mid = next(c for c in result["comparisons"] if c["option"] == "m@36")  # type: ignore[attr-defined]
    # Uniform 36 solves k <= 6 only (about half); moving tokens from hopeless long
    # prompts to solvable ones must do clearly better within the same realised total.
    assert mid["knapsack_best_within_T"] is not None
    assert mid["knapsack_best_within_T"] >= mid["accuracy"] + 0.10
    assert mid["oracle_knapsack_at_T"]["accuracy"] >= mid["knapsack_best_within_T"]


def test_distinct_items_have_distinct_prompts_and_stay_in_split() -> None:
    items = distinct_items("test", 40, 3)
    assert len(items) == 40
    assert len({it.prompt_text for it in items}) == 40
    assert {it.metadata["split"] for it in items} == {"test"}
    with pytest.raises(ValueError, match="--limit"):
        distinct_items("test", 0, 3)


def test_stack_guidance_sweep_adds_per_problem_guidance_only_where_the_stack_guides():
    import math

    from evals.datasets import load_testbed
    from evals.headline import stack_guidance_extra
    from evals.runner import RunConfig, build_request
    from guidance.params import parse_extra_args
    from testbed.models import list_models, thinking_stats

    if not {"tg-small", "tg-large"} <= set(list_models()):
        pytest.skip("needs the testbed models")
    assert stack_guidance_extra("tg-small") is None  # the stack pins tg-small to the hard cap
    extra = stack_guidance_extra("tg-large")
    items = {it.metadata["level"]: it for it in load_testbed(24, 0, "test")}
    by_level = thinking_stats("tg-large")["median_thinking_by_difficulty"]
    means = []
    for level in (2, 9):
        body = build_request(items[level], RunConfig("http://x", "tg-large", thinking_budget=35, item_extra=extra))
        xb = body["extra_body"]
        assert xb["thinking_token_budget"] == 35  # soft+hard keeps the native cap
        args = parse_extra_args(xb["vllm_xargs"])  # the plugin accepts it
        assert (args.budget, args.mode, args.horizon) == (35, "soft+hard", 0)
        means.append(args.prior_alpha / args.prior_rate)
        assert math.isclose(means[-1], math.log1p(by_level[str(level)]), rel_tol=1e-6)
    assert means[0] < means[1]  # the prior follows the problem's difficulty
    for b in (None, 0):  # nothing to steer: unlimited, or no thinking at all
        body = build_request(items[2], RunConfig("http://x", "tg-large", thinking_budget=b, item_extra=extra))
        assert "vllm_xargs" not in body.get("extra_body", {})
