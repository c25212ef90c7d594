"""Length p90 from held-out residuals (split conformal) covers capped lengths that pile up at the budget."""

from __future__ import annotations

import pickle

import numpy as np

from predictors.length_heads import _conformal_q90
from predictors.model import LengthHead


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


def _capped_table(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Prompts described by one feature (difficulty); greedy-like lengths: hard prompts pile up at cap - 1."""
    rng = np.random.default_rng(seed)
    d = rng.uniform(0, 1, n)
    free = np.round(10 + 40 * d + rng.normal(0, 2, n))  # length the model would need
    L = np.minimum(free, 39.0)  # budget 40: vLLM reports cap - 1 for a capped generation
    return np.column_stack([d, d**2]).astype(np.float32), np.maximum(L, 0)


def test_quantile_head_puts_p90_at_the_cap_for_hard_prompts_and_covers_fresh_data():
    from predictors.length_heads import _length_head

    X, L = _capped_table(800, 0)
    head = _length_head(X, [(i, 0, float(v)) for i, v in enumerate(L)], 0, 40, 10.0, 5, 0)
    assert head is not None and head.q_coef is not None  # dense, narrow, >= 50 samples: quantile head
    Xt, Lt = _capped_table(4000, 1)
    mu = head.intercept + Xt @ head.coef
    q_mu = head.q_intercept + Xt @ head.q_coef
    _, p90 = head.mean_p90(mu, q_mu)
    assert np.array_equal(p90, np.round(p90))  # token counts: integer quantiles
    assert p90.max() <= 40
    cover = float(np.mean(Lt <= p90))
    assert 0.9 <= cover <= 0.97, cover
    hard = Xt[:, 0] > 0.9  # free length ~46-50: always capped
    assert np.all(p90[hard] >= 39)
    easy = Xt[:, 0] < 0.3  # free length ~10-22: never near the cap, so no blanket reservation of it
    assert np.all(p90[easy] < 30)


def test_quantile_head_skipped_for_sparse_or_few_samples_and_old_heads_still_predict():
    import scipy.sparse as sp

    from predictors.length_heads import _length_head

    X, L = _capped_table(800, 0)
    samples = [(i, 0, float(v)) for i, v in enumerate(L)]
    assert _length_head(sp.csr_matrix(X), samples, 0, 40, 10.0, 5, 0).q_coef is None
    assert _length_head(X, samples[:40], 0, 40, 10.0, 5, 0).q_coef is None
    old = LengthHead(np.array([1.0, 0.0], np.float32), 3.0, 0.2, 40.0, q90=0.1)  # as pickled before q_coef existed
    del old.__dict__["q_coef"], old.__dict__["q_intercept"]
    old = pickle.loads(pickle.dumps(old))
    assert "q_coef" not in old.__dict__
    from predictors.featurizers import get_featurizer
    from predictors.model import Calibrator, Predictor

    pred = Predictor(get_featurizer("structural"), ["m@40"], np.zeros((2, 1)), np.zeros(1), [Calibrator("sigmoid")], [old], [None])
    Xq = np.array([[0.0, 1.0], [0.5, 2.0]])
    (mean, p90), no_answer = pred.lengths(Xq, pred.thinking_heads + pred.answer_heads)
    assert no_answer is None
    expected_mean, expected_p90 = old.mean_p90(np.array([3.0, 3.5]))  # mu = x @ coef + intercept, residual rule
    assert np.allclose(mean, expected_mean) and np.allclose(p90, expected_p90)
    assert np.all(p90 >= mean) and np.all(p90 <= 40)
