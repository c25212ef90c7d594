"""The guidance plugin inside a real vLLM CPU server (tiny random Qwen2, V1 model runner).

One server per test session, with the plugin loaded by its entry point when
installed, else by ``--logits-processors guidance.plugin:BudgetGuidance``. Checks: it starts and serves requests
without guidance untouched; bad ``vllm_xargs`` come back as HTTP 400 naming
the key; ``soft`` guidance ends thinking at the first line start when no
budget is left; ``extend`` holds ``</think>`` back until the minimum even
against a +100 logit bias; ``soft+hard`` composes with the native cap.
"""

from __future__ import annotations

import httpx
import pytest

from tests.integration.conftest import _need_vllm, start_vllm

pytestmark = pytest.mark.integration

MSG = [{"role": "user", "content": "What is 12 + 30?"}]


@pytest.fixture(scope="session")
def vllm_guided(tiny_model_dir, tmp_path_factory):
    """A vLLM CPU server for the tiny model with the guidance plugin loaded, served as ``tiny``."""
    _need_vllm()
    from guidance import server_args
    from tests.helpers import stop

    log = tmp_path_factory.mktemp("vllm") / "vllm-guided.log"
    url, proc = start_vllm(tiny_model_dir, "tiny", log, server_args())
    yield url
    stop(proc)


@pytest.fixture(scope="module")
def ids(tiny_model_dir) -> dict[str, int]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    return {"end": tok.convert_tokens_to_ids("</think>"), "nl": tok.encode("\n", add_special_tokens=False)[0]}


def chat(base: str, **body) -> httpx.Response:
    body = {"model": "tiny", "messages": MSG, "temperature": 0.0, "return_token_ids": True, **body}
    return httpx.post(f"{base}/v1/chat/completions", json=body, timeout=300)


def out_ids(r: httpx.Response) -> list[int]:
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]["token_ids"]


def test_requests_without_xargs_are_untouched(vllm_guided):
    a = out_ids(chat(vllm_guided, max_tokens=12))
    b = out_ids(chat(vllm_guided, max_tokens=12, vllm_xargs={"unrelated": 1}))
    hard = out_ids(chat(vllm_guided, max_tokens=12, vllm_xargs={"think_budget": 0, "think_mode": 0}))
    assert len(a) == 12 and a == b == hard  # greedy: identical when the plugin does nothing


@pytest.mark.parametrize(("xargs", "key"), [
    ({"think_budget": -5}, "think_budget"),
    ({"think_budget": 2.5}, "think_budget"),
    ({"think_budget": 10, "think_mode": "turbo"}, "think_mode"),
    ({"think_budget": 10, "think_mode": 9}, "think_mode"),
    ({"think_budget": 10, "think_prior_alpha": -1.0, "think_prior_rate": 2.0}, "think_prior_alpha"),
    ({"think_budget": 10, "think_prior_alpha": 3.0, "think_prior_rate": 1e12}, "think_prior_rate"),
    ({"think_budget": 10, "think_strength": 1000.0}, "think_strength"),
])
def test_bad_xargs_are_http_400_naming_the_key(vllm_guided, xargs, key):
    r = chat(vllm_guided, max_tokens=4, vllm_xargs=xargs)
    assert r.status_code == 400, r.text
    assert key in r.json()["error"]["message"]


def test_soft_with_no_budget_left_ends_thinking_at_the_first_line_start(vllm_guided, ids):
    # The prompt ends in "<think>\n": the first sampled token is at a line start with 1 token spent.
    free = out_ids(chat(vllm_guided, max_tokens=8, logit_bias={str(ids["end"]): -5}))
    assert free[0] != ids["end"]
    guided = out_ids(chat(vllm_guided, max_tokens=8, logit_bias={str(ids["end"]): -5},
                          vllm_xargs={"think_budget": 1, "think_mode": 1, "think_strength": 50.0}))
    assert guided[0] == ids["end"]


def test_extend_holds_the_end_back_until_the_minimum(vllm_guided, ids):
    bias = {str(ids["end"]): 100}  # the model "wants" to stop at once
    eager = out_ids(chat(vllm_guided, max_tokens=20, logit_bias=bias))
    assert eager[0] == ids["end"]
    held = out_ids(chat(vllm_guided, max_tokens=20, logit_bias=bias,
                        vllm_xargs={"think_budget": 9, "think_mode": 3}))
    # 9 thinking tokens counting the prompt's "\n": 8 generated, then </think>.
    assert ids["end"] not in held[:8] and held[8] == ids["end"]


def test_soft_hard_keeps_the_native_cap(vllm_guided, ids):
    # Guidance with a tiny strength barely moves anything; the native cap must still close thinking.
    r = chat(vllm_guided, max_tokens=30, logit_bias={str(ids["end"]): -100}, ignore_eos=True,
             thinking_token_budget=6,
             vllm_xargs={"think_budget": 6, "think_mode": 2, "think_strength": 0.01})
    toks = out_ids(r)
    assert ids["end"] in toks and toks.index(ids["end"]) == 5  # 1 prompt "\n" + 5 generated = 6
