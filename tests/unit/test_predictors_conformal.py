"""Length p90 from held-out residuals (split conformal) covers capped lengths that pile up at the budget."""

from __future__ import annotations

import numpy as np

from predictors.model import LengthHead
from predictors.train import _conformal_q90


def test_conformal_p90_covers_lengths_piled_at_the_cap_where_the_normal_rule_does_not():
    rng = np.random.default_rng(0)
    cap = 52.0

    def draw(n: int) -> np.ndarray:
        # 40% of generations hit the budget cap exactly; the rest end earlier.
        raw = np.exp(rng.normal(np.log1p(40), 0.35, n)) - 1
        return np.minimum(np.where(rng.random(n) < 0.4, cap, raw), cap)

    train, test = np.log1p(draw(2000)), draw(4000)
    mu = float(train.mean())
    resid = train - mu
    sigma = float(1.4826 * np.median(np.abs(resid - np.median(resid))))
    normal = LengthHead(None, mu, sigma, cap)
    conformal = LengthHead(None, mu, sigma, cap, q90=_conformal_q90(resid))
    cover = {name: float(np.mean(test <= h.mean_p90(np.array([mu]))[1][0] + 1e-9))
             for name, h in (("normal", normal), ("conformal", conformal))}
    assert cover["normal"] < 0.85
    assert abs(cover["conformal"] - 0.9) <= 0.05 or cover["conformal"] >= 0.9
