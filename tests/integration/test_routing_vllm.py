"""``model: "auto"`` routes by predicted difficulty between two testbed models on real vLLM CPU servers.

Stack (conftest.py, shared with test_testbed_vllm.py): tg-small and tg-large
each on its own vLLM server, ``thinkgate serve`` in front with the testbed
prices (tg-large 5x tg-small) and the shipped predictor
``artifacts/testbed-structural.pkl`` (structural features of the prompt, trained
on the committed outcome table ``reports/headline/train_table.json``).

Why the ``tiers`` strategy with ``escalate = "top"``: it is the EllieSQL/RouteLLM
cascade. The cheapest tier whose predicted P(correct) reaches the calibrated
threshold serves the query, and a query no tier is predicted to handle goes to
the most expensive model. The predictor is trained on the outcomes the stack
serves (``reports/headline/train_table.json``: tg-large's capped budgets under
soft+hard guidance). It knows that tg-small fails from about 8 terms on, while
tg-large solves them. The predicted P(correct) falls with the number of terms,
so easy prompts must land on tg-small (some budget) and hard ones on tg-large.
Nothing is faked: the estimates come from the gateway's own predictor call,
the routes from its decisions, the answers from vLLM.
"""

from __future__ import annotations

import collections
import random
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from testbed import tasks

pytestmark = pytest.mark.integration

PER_DIFFICULTY = 5  # 60 prompts over difficulties 1..12: 20 per difficulty third


def _ask(client: httpx.Client, base: str, text: str) -> httpx.Response:
    body = {"model": "auto", "messages": [{"role": "user", "content": text}], "max_tokens": 256,
            "temperature": 0.0, "skip_special_tokens": False}
    return client.post(f"{base}/v1/chat/completions", json=body)


def test_auto_sends_easy_prompts_to_the_small_model_and_hard_ones_to_the_large(testbed_gateway):
    problems = tasks.sample_problems(PER_DIFFICULTY * len(tasks.DIFFICULTIES), "test", seed=5)
    random.Random(5).shuffle(problems)  # interleave difficulties, as live traffic would be
    base = testbed_gateway["gw"]
    with httpx.Client(timeout=300.0) as client, ThreadPoolExecutor(4) as ex:
        responses = list(ex.map(lambda p: _ask(client, base, p.text), problems))

    by_bin: dict[str, list[str]] = collections.defaultdict(list)
    for p, r in zip(problems, responses, strict=True):
        assert r.status_code == 200, (r.status_code, r.text[:300])
        body = r.json()
        tg = body["thinkgate"]
        assert tg["model"] in ("tg-small", "tg-large"), tg
        assert tg["backend"] == f"{tg['model']}-0" and tg["strategy"] == "tiers", tg
        assert body["model"] == tg["model"]  # vLLM's served name: the request really went there
        if tg["model"] == "tg-large":  # the cheapest tier predicted sufficient, or escalated as none is
            assert ("cheapest sufficient tier: tg-large" in tg["reason"]
                    or "escalated to the most expensive tier" in tg["reason"]), tg["reason"]
        assert tg["predicted"]["p_correct"] is not None
        by_bin[tasks.difficulty_bin(p.difficulty)].append(tg["model"])

    share = {b: sum(m == "tg-large" for m in ms) / len(ms) for b, ms in by_bin.items()}
    assert {len(ms) for ms in by_bin.values()} == {PER_DIFFICULTY * 4}, by_bin
    print(f"share of tg-large by difficulty third: {share}")  # shown with -s or on failure
    # Wide margins: with the artifact retrained on the guided outcome table (2026-11-29) this test
    # measured easy 0.0, medium 0.25, hard 0.95; the previous artifact gave easy 0.0, medium
    # 0.1-0.25, hard 0.9-0.95 offline on samples of this size (seeds 0, 1 and 5).
    assert share["easy"] <= 0.2, share
    assert share["hard"] >= 0.6, share
    assert share["hard"] - share["easy"] >= 0.5, share
    assert share["easy"] <= share["medium"] <= share["hard"], share
