"""Per-request guidance arguments: the ``vllm_xargs`` keys, their validation and parsing (standard library only).

vLLM copies the OpenAI body's ``vllm_xargs`` into ``SamplingParams.extra_args``.
The keys the plugin reads:

===================== ======= ==================================================================
key                   type    meaning
===================== ======= ==================================================================
``think_budget``      int     thinking-token budget (>= 0); absent: the plugin ignores the request
``think_mode``        int/str 0 ``hard``, 1 ``soft``, 2 ``soft+hard``, 3 ``extend`` (default soft)
``think_strength``    float   exponent on the guidance weight, 0..50 (default 1.0; 1 = paper's rule)
``think_prior_alpha`` float   Gamma shape of the prior on log(L_total + 1), (0, 1e4]
``think_prior_rate``  float   Gamma rate of that prior, (0, 1e4]; both or neither
``think_horizon``     int     0: remaining thinking (Budget Guidance, default); 1: the next line only
===================== ======= ==================================================================

Without a prior the plugin uses :data:`DEFAULT_PRIOR` (a weak, wide prior).
``hard`` makes the plugin a no-op: the cap is vLLM's native
``thinking_token_budget``, sent next to the xargs by the gateway. ``extend``
reads ``think_budget`` as the *minimum* thinking length (s1 budget forcing).

``think_horizon=1`` asks, at each line start, whether the *next line* still
fits (its length estimated from the lines so far) instead of whether the whole
remaining thinking does: thinking then runs until the last line boundary
before the budget rather than ending as soon as the full solution cannot fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_PRIOR",
    "DEFAULT_STRENGTH",
    "KEY_BUDGET",
    "KEY_MODE",
    "KEY_PRIOR_ALPHA",
    "KEY_HORIZON",
    "KEY_PRIOR_RATE",
    "KEY_STRENGTH",
    "MODES",
    "GuidanceArgs",
    "parse_extra_args",
]

KEY_BUDGET = "think_budget"
KEY_MODE = "think_mode"
KEY_STRENGTH = "think_strength"
KEY_PRIOR_ALPHA = "think_prior_alpha"
KEY_PRIOR_RATE = "think_prior_rate"
KEY_HORIZON = "think_horizon"
HORIZONS: tuple[str, ...] = ("thinking", "line")
#: Mode names by wire code (the code is the index).
MODES: tuple[str, ...] = ("hard", "soft", "soft+hard", "extend")
DEFAULT_STRENGTH = 1.0
MAX_STRENGTH = 50.0
MAX_PRIOR_PARAM = 1e4
#: Gamma prior on log(L+1) with mean 5.5 (L ~ 250 tokens) and sd ~1.1: weak on purpose.
DEFAULT_PRIOR: tuple[float, float] = (25.0, 25.0 / 5.5)


@dataclass(frozen=True)
class GuidanceArgs:
    """Validated guidance arguments of one request."""

    budget: int
    mode: str
    strength: float
    prior_alpha: float
    prior_rate: float
    horizon: int = 0

    @property
    def guides(self) -> bool:
        """Whether the reweighting runs (``soft`` and ``soft+hard``)."""
        return self.mode in ("soft", "soft+hard")

    @property
    def active(self) -> bool:
        """Whether the plugin touches this request's logits at all."""
        return self.guides or self.mode == "extend"


def _int(key: str, value: Any) -> int:
    # bool is an int subclass; a JSON float like 512.0 is accepted only if integral.
    if isinstance(value, bool):
        raise ValueError(f"vllm_xargs.{key}: must be an integer, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if not isinstance(value, int):
        raise ValueError(f"vllm_xargs.{key}: must be an integer, got {value!r}")
    return value


def _float(key: str, value: Any, lo: float, hi: float, lo_open: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"vllm_xargs.{key}: must be a number, got {value!r}")
    try:
        x = float(value)
    except ValueError:
        raise ValueError(f"vllm_xargs.{key}: must be a number, got {value!r}") from None
    if not math.isfinite(x) or x > hi or x < lo or (lo_open and x == lo):
        bound = f"({lo}, {hi}]" if lo_open else f"[{lo}, {hi}]"
        raise ValueError(f"vllm_xargs.{key}: {value!r} outside {bound}")
    return x


def _mode(value: Any) -> str:
    if isinstance(value, str) and value in MODES:
        return value
    if not isinstance(value, bool) and isinstance(value, int | float | str):
        try:
            code = _int(KEY_MODE, value)
        except ValueError:
            code = -1
        if 0 <= code < len(MODES):
            return MODES[code]
    choices = ", ".join(f"{i} ({m})" for i, m in enumerate(MODES))
    raise ValueError(f"vllm_xargs.{KEY_MODE}: unknown mode {value!r}, available: {choices}")


def parse_extra_args(extra: dict[str, Any] | None) -> GuidanceArgs | None:
    """Parse ``SamplingParams.extra_args``; ``None`` when the request carries no ``think_budget``.

    Raises ``ValueError`` naming the key for a non-integer or negative budget,
    an unknown mode, a strength or prior parameter out of range, or only one of
    the two prior parameters; vLLM turns it into HTTP 400.
    """
    if not extra or KEY_BUDGET not in extra:
        other = [k for k in (KEY_MODE, KEY_STRENGTH, KEY_PRIOR_ALPHA, KEY_PRIOR_RATE, KEY_HORIZON)
                 if k in (extra or {})]
        if other:
            raise ValueError(f"vllm_xargs.{other[0]}: given without vllm_xargs.{KEY_BUDGET}")
        return None
    budget = _int(KEY_BUDGET, extra[KEY_BUDGET])
    if budget < 0:
        raise ValueError(f"vllm_xargs.{KEY_BUDGET}: must be >= 0, got {budget}")
    mode = _mode(extra.get(KEY_MODE, 1))
    strength = _float(KEY_STRENGTH, extra.get(KEY_STRENGTH, DEFAULT_STRENGTH), 0.0, MAX_STRENGTH, False)
    has_a, has_r = KEY_PRIOR_ALPHA in extra, KEY_PRIOR_RATE in extra
    if has_a != has_r:
        missing = KEY_PRIOR_RATE if has_a else KEY_PRIOR_ALPHA
        raise ValueError(f"vllm_xargs.{missing}: required together with the other prior parameter")
    if has_a:
        alpha = _float(KEY_PRIOR_ALPHA, extra[KEY_PRIOR_ALPHA], 0.0, MAX_PRIOR_PARAM, True)
        rate = _float(KEY_PRIOR_RATE, extra[KEY_PRIOR_RATE], 0.0, MAX_PRIOR_PARAM, True)
    else:
        alpha, rate = DEFAULT_PRIOR
    horizon = _int(KEY_HORIZON, extra.get(KEY_HORIZON, 0))
    if not 0 <= horizon < len(HORIZONS):
        raise ValueError(f"vllm_xargs.{KEY_HORIZON}: {horizon} not 0 (thinking) or 1 (line)")
    return GuidanceArgs(budget, mode, strength, alpha, rate, horizon)
