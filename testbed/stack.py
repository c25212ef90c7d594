"""The embedded default stack: one vLLM CPU server per testbed model, the gateway in front.

``default_gateway_config()`` is the config the gateway uses when it is given no
file (``thinkgate serve`` with no ``--config``); ``thinkgate up`` starts the
servers it points at. Standard library only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from testbed.models import REASONING_PARSER, list_models

__all__ = ["GATEWAY_PORT", "GUIDANCE", "GUIDANCE_MODE_BY_MODEL", "VLLM_BASE_PORT", "PRICES", "default_gateway_config"]

GATEWAY_PORT = 8080
VLLM_BASE_PORT = 8101
#: $ per million (input, output) tokens, roughly proportional to parameter count,
#: so that routing between the sizes has a real price difference.
PRICES: dict[str, tuple[float, float]] = {"tg-small": (0.05, 0.20), "tg-large": (0.25, 1.00)}
_DEFAULT_PRICE = (0.10, 0.40)
#: A success/length predictor for the testbed options (model@budget), trained on
#: the committed train-split outcome table of the headline demo:
#: thinkgate predictors train --data reports/headline/train_table.json --featurizer structural \
#:     --out artifacts/testbed-structural.pkl
PREDICTOR = Path(__file__).resolve().parents[1] / "artifacts" / "testbed-structural.pkl"
#: Decode-time guidance of the stack: Budget Guidance's rule (horizon 0) with the native cap as backstop,
#: at the strength chosen on validation problems (reports/guidance/README.md). tg-small keeps the hard
#: cap: its concise way of thinking is mostly wrong, so steering it there costs accuracy at 75% budgets.
GUIDANCE = {"guidance_mode": "soft+hard", "guidance_strength": 0.7, "guidance_horizon": 0}
GUIDANCE_MODE_BY_MODEL: dict[str, str] = {"tg-small": "hard"}


def default_gateway_config(models: list[str] | None = None, gateway_port: int = GATEWAY_PORT,
                           vllm_base_port: int = VLLM_BASE_PORT) -> dict[str, Any]:
    """Gateway settings (as a dict) for the testbed models served on consecutive ports."""
    names = list_models() if models is None else models
    backends = []
    for i, name in enumerate(names):
        pin, pout = PRICES.get(name, _DEFAULT_PRICE)
        backends.append({"name": f"{name}-0", "url": f"http://127.0.0.1:{vllm_base_port + i}", "model": name,
                         "price_input_per_m": pin, "price_output_per_m": pout,
                         "reasoning_parser": REASONING_PARSER, "enforces_thinking_budget": True,
                         # the guidance plugin is an installed vLLM entry point: every server loads it
                         "guidance": True})
        if name in GUIDANCE_MODE_BY_MODEL:
            backends[-1]["guidance_mode"] = GUIDANCE_MODE_BY_MODEL[name]
    cheapest = min(names, key=lambda n: sum(PRICES.get(n, _DEFAULT_PRICE))) if names else None
    cfg: dict[str, Any] = {"gateway": {"port": gateway_port},
                           "router": {"strategy": "fixed", "default_model": cheapest, **GUIDANCE},
                           "backends": backends}
    if PREDICTOR.is_file():
        # P(correct) - lambda * cost over (model, thinking budget) options; decisions carry the predictions.
        cfg["predictor_path"] = str(PREDICTOR)
        cfg["router"]["strategy"] = "utility"
    return cfg
