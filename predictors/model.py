"""The fitted predictor the gateway calls: P(correct) and token-length distribution per option.

Prediction is plain numpy on top of the fitted featurizer: one feature row per
prompt, one matrix product for all options' logits, per-option calibration maps
(isotonic breakpoints or Platt coefficients), and log-normal length heads
(``log1p(tokens) ~ Normal(x @ w, sigma)``). Training lives in
:mod:`predictors.train`, persistence in :mod:`predictors.artifact`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from predictors.featurizers import CombinedFeaturizer, clean_text
from predictors.records import parse_option

__all__ = ["Calibrator", "LengthHead", "OptionEstimate", "Predictor"]

_Z90 = 1.2815515655446004  # standard normal 0.9 quantile


@dataclass(frozen=True)
class OptionEstimate:
    """Estimates for one option of one prompt (token fields ``None`` when no length data)."""

    option: str
    p_correct: float
    thinking_tokens_mean: float | None
    thinking_tokens_p90: float | None
    answer_tokens_mean: float | None
    answer_tokens_p90: float | None


@dataclass
class Calibrator:
    """Maps a raw logit to a calibrated probability.

    ``kind`` is ``"isotonic"`` (piecewise-linear through ``x``/``y`` breakpoints,
    flat outside), ``"platt"`` (``sigmoid(a * z + b)`` with ``a, b = x[0], y[0]``),
    ``"sigmoid"`` (no calibration) or ``"constant"`` (always ``y[0]``, for an
    option whose training labels had one class).
    """

    kind: str
    x: np.ndarray = field(default_factory=lambda: np.zeros(0))
    y: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __call__(self, z: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, within [1e-4, 1 - 1e-4] so log-losses stay finite."""
        if self.kind == "isotonic":
            # Isotonic maps are flat on stretches; the tiny strictly increasing term
            # breaks those ties in the order of the raw score, so ranking (AUROC,
            # routing argmax) keeps the model's resolution. It moves p by < 1e-4.
            p = np.clip(np.interp(z, self.x, self.y), 1e-4, 1 - 1e-4) * (1 - 1e-4) + 1e-4 * _expit(z)
        elif self.kind == "platt":
            p = _expit(self.x[0] * z + self.y[0])
        elif self.kind == "sigmoid":
            p = _expit(z)
        elif self.kind == "constant":
            p = np.full_like(z, float(self.y[0]), dtype=np.float64)
        else:  # pragma: no cover - guarded at construction by training code
            raise ValueError(f"calibrator kind: unknown {self.kind!r}")
        return np.clip(p, 1e-4, 1 - 1e-4)


@dataclass
class LengthHead:
    """Token-length model for one option and one kind (thinking or answer).

    Mean: ``log1p(tokens) ~ Normal(mu, sigma)`` with ``mu = x @ coef + intercept``.
    p90, in order of preference:

    * quantile head (``q_coef`` set): ``expm1(x @ q_coef + q_intercept + q90)``, a
      linear 0.9-quantile regression of ``log1p(tokens)`` plus the conformal
      correction ``q90`` of its held-out scores;
    * ``expm1(mu + q90)``: conformal quantile of held-out residuals around ``mu``;
    * ``expm1(mu + z90 * sigma)``: the normal rule (``q90`` is ``None``).

    ``cap`` (the option's thinking budget, if any) bounds the reported values
    because the budget is a hard cap at decode time.
    """

    coef: np.ndarray | None  # None: constant mu = intercept
    intercept: float
    sigma: float
    cap: float | None = None
    # Conformal correction in log1p space (see above); None: normal rule.
    q90: float | None = None
    # Linear 0.9-quantile head (None in artifacts trained before it existed, or
    # where the features are sparse / too wide for the quantile fit).
    q_coef: np.ndarray | None = None
    q_intercept: float | None = None

    def mean_p90(self, mu: np.ndarray, q_mu: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(mean, p90) in tokens for location parameters ``mu`` (and quantile-head values ``q_mu``)."""
        mean = np.expm1(mu + 0.5 * self.sigma**2)
        if q_mu is not None:
            p90 = np.expm1(q_mu + (self.q90 or 0.0))
        else:
            p90 = np.expm1(mu + (_Z90 * self.sigma if self.q90 is None else self.q90))
        # Token counts are integers, so their 0.9-quantile is one: round to the
        # nearest. A quantile fit lands on a point mass (lengths piled up at the
        # budget cap) only up to float noise, 42.9999 or 43.0001 for a pile at 43;
        # rounding keeps that noise from flipping the whole pile in or out.
        p90 = np.floor(p90 + 0.5)
        if self.cap is not None:
            mean, p90 = np.minimum(mean, self.cap), np.minimum(p90, self.cap)
        return np.maximum(mean, 0.0), np.maximum(p90, 0.0)


class Predictor:
    """Per-option success probability and length distributions for prompts.

    Attributes: ``options`` (names ``model[@budget]``), ``featurizer_spec``,
    ``option_costs`` (mean cost per query seen in training, if known),
    ``metadata`` (filled by training and the artifact writer).
    """

    #: Success models averaged with this one's in :meth:`probabilities` (same
    #: options and featurizer; their length heads are unused). Class default,
    #: so artifacts pickled before blends existed load with none.
    blend: tuple[Predictor, ...] = ()

    def __init__(
        self,
        featurizer: CombinedFeaturizer,
        options: Sequence[str],
        coef: Any,
        intercept: np.ndarray,
        calibrators: Sequence[Calibrator],
        thinking_heads: Sequence[LengthHead | None],
        answer_heads: Sequence[LengthHead | None],
        cheapest_classes: Sequence[str] | None = None,
        cheapest_coef: Any = None,
        cheapest_intercept: np.ndarray | None = None,
        option_costs: dict[str, float] | None = None,
        metadata: dict[str, Any] | None = None,
        kernel: str = "linear",
        gamma: float = 1.0,
        support_t: Any = None,
    ) -> None:
        k = len(options)
        if kernel not in ("linear", "rbf"):
            raise ValueError(f"kernel: unknown {kernel!r}, available: linear, rbf")
        if kernel == "rbf" and support_t is None:
            raise ValueError("support_t: required for the rbf kernel")
        if not (len(calibrators) == len(thinking_heads) == len(answer_heads) == k == np.shape(coef)[1]):
            raise ValueError("Predictor: one coefficient column, calibrator and length head per option")
        self.featurizer = featurizer
        self.featurizer_spec = featurizer.name
        self.options = list(options)
        self._index = {o: j for j, o in enumerate(self.options)}
        self.coef = coef
        self.intercept = np.asarray(intercept, dtype=np.float64)
        self.calibrators = list(calibrators)
        self.thinking_heads = list(thinking_heads)
        self.answer_heads = list(answer_heads)
        self.cheapest_classes = list(cheapest_classes) if cheapest_classes else None
        self.cheapest_coef = cheapest_coef
        self.cheapest_intercept = cheapest_intercept
        self.option_costs = dict(option_costs or {})
        self.metadata = dict(metadata or {})
        self.kernel = kernel
        self.gamma = float(gamma)
        # Training feature rows, transposed (d, m), for exp(gamma * (x.s - (|x|^2 + |s|^2) / 2)).
        self.support_t = support_t
        self._support_sq = None if support_t is None else _col_sqnorms(support_t)

    # ------------------------------------------------------------ internals

    def _columns(self, options: Sequence[str] | None) -> list[int]:
        if options is None:
            return list(range(len(self.options)))
        cols = []
        for o in options:
            j = self._index.get(o)
            if j is None:
                raise ValueError(f"options: unknown option {o!r}, known: {', '.join(self.options)}")
            cols.append(j)
        return cols

    def _design(self, prompts: Sequence[str | bytes]) -> Any:
        return self.featurizer.transform([clean_text(p) for p in prompts])

    def kernel_features(self, X: Any) -> Any:
        """What the linear heads multiply: ``X`` itself (linear) or RBF kernel values vs. the support rows."""
        if self.kernel == "linear":
            return X
        G = X @ self.support_t
        G = np.asarray(G.toarray() if hasattr(G, "toarray") else G, dtype=np.float64)
        xsq = np.asarray(X.multiply(X).sum(axis=1) if hasattr(X, "multiply") else (X * X).sum(axis=1), dtype=np.float64).reshape(-1, 1)
        return np.exp(self.gamma * (G - 0.5 * (xsq + self._support_sq[None, :])))

    def logits(self, X: Any) -> np.ndarray:
        """Raw success scores ``(n, k)`` for a feature matrix from this predictor's featurizer."""
        return _dense(self.kernel_features(X) @ self.coef) + self.intercept

    def probabilities(self, X: Any) -> np.ndarray:
        """Calibrated P(correct) ``(n, k)`` for a feature matrix.

        With ``blend`` members (``kernel="linear+rbf"`` training), the mean of
        this model's calibrated probabilities and theirs (same options, same
        features).
        """
        z = self.logits(X)
        p = np.column_stack([c(z[:, j]) for j, c in enumerate(self.calibrators)]) if len(z) else z
        if self.blend and len(z):
            p = (p + sum(m.probabilities(X) for m in self.blend)) / (1 + len(self.blend))
        return p

    def lengths(self, X: Any, heads: Sequence[LengthHead | None]) -> list[tuple[np.ndarray, np.ndarray] | None]:
        """Per option: (mean, p90) arrays over rows, or ``None`` without a head."""
        out: list[tuple[np.ndarray, np.ndarray] | None] = []
        for h in heads:
            if h is None:
                out.append(None)
                continue
            mu = np.full(X.shape[0], h.intercept, dtype=np.float64)
            if h.coef is not None:
                mu = mu + _dense(X @ h.coef).ravel()
            # Heads pickled before q_coef existed read the dataclass default (None).
            q_mu = None if h.q_coef is None else _dense(X @ h.q_coef).ravel() + float(h.q_intercept or 0.0)
            out.append(h.mean_p90(mu, q_mu))
        return out

    # ------------------------------------------------------------ public API

    def predict_batch(
        self, prompts: Sequence[str | bytes], options: Sequence[str] | None = None
    ) -> list[list[OptionEstimate]]:
        """Estimates for every prompt and every requested option (default: all, in ``options`` order).

        Raises ``ValueError`` naming an unknown option.
        """
        cols = self._columns(options)
        if not prompts:
            return []
        X = self._design(prompts)
        p = self.probabilities(X)
        think = self.lengths(X, [self.thinking_heads[j] for j in cols])
        ans = self.lengths(X, [self.answer_heads[j] for j in cols])

        def val(t: tuple[np.ndarray, np.ndarray] | None, which: int, i: int) -> float | None:
            return None if t is None else float(t[which][i])

        return [
            [
                OptionEstimate(
                    option=self.options[j],
                    p_correct=float(p[i, j]),
                    thinking_tokens_mean=val(think[c], 0, i),
                    thinking_tokens_p90=val(think[c], 1, i),
                    answer_tokens_mean=val(ans[c], 0, i),
                    answer_tokens_p90=val(ans[c], 1, i),
                )
                for c, j in enumerate(cols)
            ]
            for i in range(len(prompts))
        ]

    def predict(self, prompt: str | bytes, options: Sequence[str] | None = None) -> list[OptionEstimate]:
        """Estimates for all (or the given) options of one prompt."""
        return self.predict_batch([prompt], options)[0]

    def features(self, prompt: str | bytes) -> np.ndarray:
        """Dense context vector of the prompt (for LinUCB and the like).

        The dense blocks of the featurizer (MiniLM embedding, structural counts);
        for a purely sparse featurizer, the calibrated P(correct) of every option
        plus a bias term, which is a compact, informative summary.
        """
        text = clean_text(prompt)
        dense = self.featurizer.dense_transform([text])
        if dense is not None:
            return dense[0].astype(np.float32)
        p = self.probabilities(self._design([text]))[0]
        return np.concatenate([p, [1.0]]).astype(np.float32)

    def predict_cheapest(self, prompt: str | bytes) -> tuple[str | None, dict[str, float]]:
        """EllieSQL-style head: the cheapest option predicted sufficient, and class probabilities.

        The per-class values are one-vs-rest ridge scores (higher = more likely,
        not probabilities). Returns ``(None, {...})`` when the top class is "no
        option suffices" (class name ``"<none>"``). Raises ``RuntimeError`` if the
        artifact was trained without costs (no head).
        """
        if self.cheapest_classes is None or self.cheapest_coef is None:
            raise RuntimeError("predict_cheapest: this artifact has no cheapest-sufficient head (trained without costs)")
        F = self.kernel_features(self._design([prompt]))
        z = _dense(F @ self.cheapest_coef).ravel() + self.cheapest_intercept
        best = self.cheapest_classes[int(np.argmax(z))]
        return (None if best == "<none>" else best), dict(zip(self.cheapest_classes, map(float, z), strict=True))

    def warm_up(self) -> None:
        """Build lazy state (MiniLM's ONNX session, exported on first use) now, e.g. in the gateway lifespan."""
        self.predict("warm up")

    def option_budget(self, option: str) -> int | None:
        """Thinking budget encoded in an option name (``None`` = unlimited)."""
        return parse_option(option)[1]

    def __repr__(self) -> str:
        kernel = "+".join([self.kernel, *(m.kernel for m in self.blend)])
        return f"Predictor(featurizer={self.featurizer_spec!r}, kernel={kernel!r}, options={len(self.options)})"


def _expit(z: np.ndarray) -> np.ndarray:
    """Overflow-free logistic function."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))


def _dense(M: Any) -> np.ndarray:
    """float64 ndarray from a dense or scipy-sparse product."""
    return np.asarray(M.toarray() if hasattr(M, "toarray") else M, dtype=np.float64)


def _col_sqnorms(M: Any) -> np.ndarray:
    """Squared L2 norm of every column of a dense or sparse matrix."""
    if hasattr(M, "multiply"):
        return np.asarray(M.multiply(M).sum(axis=0), dtype=np.float64).ravel()
    return np.asarray((M * M).sum(axis=0), dtype=np.float64).ravel()


def lognormal_sigma(residuals: np.ndarray) -> float:
    """Robust residual scale (1.4826 * MAD), floored at 0.05 so quantiles stay ordered."""
    if residuals.size == 0:
        return 1.0
    mad = float(np.median(np.abs(residuals - np.median(residuals))))
    s = 1.4826 * mad
    if not math.isfinite(s) or s < 0.05:
        s = max(float(np.std(residuals)), 0.05)
    return s
