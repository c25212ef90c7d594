"""The embedded default stack: one vLLM CPU server per testbed model, the gateway in front.

``default_gateway_config()`` is the config the gateway uses when it is given no
file (``thinkgate serve`` with no ``--config``); ``thinkgate up`` starts the
servers it points at. Standard library only.
"""

from __future__ import annotations

from typing import Any

from testbed.models import REASONING_PARSER, list_models

__all__ = ["GATEWAY_PORT", "VLLM_BASE_PORT", "PRICES", "default_gateway_config"]

GATEWAY_PORT = 8080
VLLM_BASE_PORT = 8101
#: $ per million (input, output) tokens, roughly proportional to parameter count,
#: so that routing between the sizes has a real price difference.
PRICES: dict[str, tuple[float, float]] = {"tg-small": (0.05, 0.20), "tg-large": (0.25, 1.00)}
_DEFAULT_PRICE = (0.10, 0.40)


def default_gateway_config(models: list[str] | None = None, gateway_port: int = GATEWAY_PORT,
                           vllm_base_port: int = VLLM_BASE_PORT) -> dict[str, Any]:
    """Gateway settings (as a dict) for the testbed models served on consecutive ports."""
    names = list_models() if models is None else models
    backends = []
    for i, name in enumerate(names):
        pin, pout = PRICES.get(name, _DEFAULT_PRICE)
        backends.append({"name": f"{name}-0", "url": f"http://127.0.0.1:{vllm_base_port + i}", "model": name,
                         "price_input_per_m": pin, "price_output_per_m": pout,
                         "reasoning_parser": REASONING_PARSER, "enforces_thinking_budget": True})
    cheapest = min(names, key=lambda n: sum(PRICES.get(n, _DEFAULT_PRICE))) if names else None
    return {"gateway": {"port": gateway_port}, "router": {"strategy": "fixed", "default_model": cheapest},
            "backends": backends}
