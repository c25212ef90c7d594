"""Does vLLM's native thinking budget handle a multi-token wrap-up phrase on this machine's model runner?

Starts the tiny random model (tests/integration/tiny_model.py) with
``--reasoning-config '{"reasoning_end_str": "<phrase></think>"}'`` and checks:

1. ``natural``: the model ends thinking by itself at once (``</think>`` biased
   +100) under a budget of 20 and then writes 39 answer tokens. Correct: the
   phrase never appears. The pitfall (notes/decode-time.md, V1 runner): the
   runner misses the natural end and injects the phrase into the *answer* once
   the count passes the budget.
2. ``forced``: thinking cannot end by itself (``</think>`` biased -100), budget
   5. Correct: the phrase is forced, then ``</think>``.

Prints one JSON object; exit 0 when both hold, 1 otherwise (a finding, not a crash).

    python reports/guidance/wrapup_check.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

PHRASE = "\nwrap up now.\n"


def main() -> int:
    import httpx
    from transformers import AutoTokenizer

    from tests.helpers import stop
    from tests.integration.conftest import start_vllm
    from tests.integration.tiny_model import build_tiny_model

    model = build_tiny_model(ROOT / ".thinkgate" / "test-models" / "tiny")
    tok = AutoTokenizer.from_pretrained(str(model))
    end = tok.convert_tokens_to_ids("</think>")
    log = Path("/tmp/thinkgate-wrapup-check.log")
    url, proc = start_vllm(model, "tiny", log, ["--reasoning-config",
                                                json.dumps({"reasoning_end_str": PHRASE + "</think>"})])
    try:
        def chat(bias: int, budget: int) -> dict:
            r = httpx.post(f"{url}/v1/chat/completions", timeout=300, json={
                "model": "tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": 0,
                "max_tokens": 40, "ignore_eos": True, "return_token_ids": True,
                "logit_bias": {str(end): bias}, "thinking_token_budget": budget})
            r.raise_for_status()
            ids = r.json()["choices"][0]["token_ids"]
            text = tok.decode(ids, skip_special_tokens=False)
            return {"first_end": ids.index(end) if end in ids else None, "ends": ids.count(end),
                    "phrase_in_output": "wrap up now." in text,
                    "phrase_after_first_end": "wrap up now." in text.split("</think>", 1)[-1] if end in ids else None}

        natural = chat(100, 20)
        forced = chat(-100, 5)
    finally:
        stop(proc)
    runner = "V1" if "using the V1 model runner" in log.read_text(errors="replace") else "MRV2 (default)"
    ok = (not natural["phrase_in_output"]) and forced["phrase_in_output"]
    print(json.dumps({"runner": runner, "natural": natural, "forced": forced, "correct": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
