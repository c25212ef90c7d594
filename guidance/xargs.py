"""Gateway side: the ``vllm_xargs`` a request needs for the guidance plugin (pure, standard library only).

The gateway calls :func:`vllm_xargs_for` for backends configured with
``guidance = true`` and merges the result into the body's ``vllm_xargs``. The
native cap is separate: for ``hard`` and ``soft+hard`` the gateway also sends
``thinking_token_budget`` (see :func:`uses_native_cap`).
"""

from __future__ import annotations

import math

from guidance.params import (
    KEY_BUDGET,
    KEY_HORIZON,
    KEY_MODE,
    KEY_PRIOR_ALPHA,
    KEY_PRIOR_RATE,
    KEY_STRENGTH,
    MODES,
    parse_extra_args,
)

__all__ = ["gamma_prior_from_lognormal", "uses_native_cap", "vllm_xargs_for"]


def uses_native_cap(mode: str) -> bool:
    """Whether ``mode`` also needs vLLM's native ``thinking_token_budget`` (``hard``, ``soft+hard``)."""
    if mode not in MODES:
        raise ValueError(f"mode: unknown {mode!r}, available: {', '.join(MODES)}")
    return mode in ("hard", "soft+hard")


def vllm_xargs_for(mode: str, budget: int | None, prior: tuple[float, float] | None,
                   strength: float, *, horizon: int = 0) -> dict[str, int | float]:
    """The plugin's ``vllm_xargs`` for one request; ``{}`` when there is nothing for it to do.

    ``mode``: one of ``hard``, ``soft``, ``soft+hard``, ``extend``; ``budget``:
    thinking tokens (None: unlimited, no xargs); ``prior``: (shape, rate) of a
    Gamma on ``log(L_total + 1)`` (e.g. :func:`gamma_prior_from_lognormal`) or
    None for the plugin's default; ``strength``: 0..50, 1 is the paper's rule;
    ``horizon``: 0 (default) is Budget Guidance's rule, the whole remaining
    thinking must fit; it is what lets guidance pick a shorter way of thinking
    at a line start (on the testbed's ``tg-large``: +10 points over the hard cap
    at 25% of the median length, +24 at 50%; reports/guidance/README.md). 1
    asks only whether the next line fits, so thinking runs to the last line
    boundary before the budget.
    ``hard`` returns ``{}``: the native cap alone does the work. The result is
    checked with the plugin's own validation, so a value the plugin would
    reject raises ``ValueError`` here, naming the argument.
    """
    if mode not in MODES:
        raise ValueError(f"mode: unknown {mode!r}, available: {', '.join(MODES)}")
    if budget is None or mode == "hard":
        return {}
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
        raise ValueError(f"budget: must be an integer >= 0 or None, got {budget!r}")
    out: dict[str, int | float] = {KEY_BUDGET: budget, KEY_MODE: MODES.index(mode),
                                   KEY_STRENGTH: float(strength)}
    if prior is not None:
        out[KEY_PRIOR_ALPHA], out[KEY_PRIOR_RATE] = float(prior[0]), float(prior[1])
    if mode != "extend":
        out[KEY_HORIZON] = horizon
    try:
        parse_extra_args(out)
    except ValueError as e:
        raise ValueError(str(e).replace("vllm_xargs.think_", "")) from None
    return out


def gamma_prior_from_lognormal(mu: float, sigma: float) -> tuple[float, float]:
    """Moment-match ``log1p(L) ~ Normal(mu, sigma)`` (the predictors' length heads) to a Gamma (shape, rate).

    Mean ``mu`` and variance ``sigma**2`` of ``log1p(L)`` are kept; both parameters
    stay within the plugin's range (<= 1e4) by lowering the concentration.
    """
    if not (math.isfinite(mu) and mu > 0):
        raise ValueError(f"mu: must be finite and > 0, got {mu!r}")
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma: must be finite and > 0, got {sigma!r}")
    alpha = min((mu / sigma) ** 2, 1e4)
    rate = alpha / mu
    if rate > 1e4:  # tiny mu: keep the mean, lower the concentration
        rate = 1e4
        alpha = rate * mu
    return alpha, rate
