"""The tensor core of budget guidance: one pure, batched function family shared by both vLLM adapters.

Budget Guidance (Li et al., "Steering LLM Thinking with Budget Guidance",
arXiv 2506.13752) reweights next-token probabilities at line starts by the
probability that the remaining thinking still fits the budget::

    p'(v) ∝ p(v) · Pr(L_remaining <= budget_left | context, v)

with ``log(L + 1)`` Gamma distributed. A logits processor sees no hidden
states, so here the Gamma parameters come from a small model of what it *can*
see (:class:`RemainingLengthModel`): the gateway's per-request prior on the
total thinking length, the thinking tokens and lines so far, and the candidate
token (a learned per-token offset). ``strength`` ``s`` raises the weight to a
power: ``logits += s · log w`` (``s = 1`` is the paper's rule).

Every function here is pure (no state, no vLLM), works on any device, and is
tested on CPU tensors. Only torch is imported.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = [
    "FEATURES",
    "LOG_W_FLOOR",
    "RemainingLengthModel",
    "SparseTable",
    "gamma_cdf",
    "guide_logits_line",
    "next_line_log_weight",
    "guidance_log_weights",
    "guide_logits",
    "row_features",
    "row_features_list",
    "sparse_log_weights",
    "suppress_end",
]

#: Row features, in column order (see :func:`row_features`).
FEATURES: tuple[str, ...] = ("bias", "prior_mean", "prior_sd", "log_n", "log_prior_rem", "log_line_len",
                             "log_lines")
#: Floor on log w: a candidate judged hopeless is made ~1e-6 times less likely, never impossible,
#: so a wrong length model degrades gracefully instead of forcing a token.
LOG_W_FLOOR = math.log(1e-6)


def gamma_cdf(y: torch.Tensor, alpha: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
    """Gamma(shape ``alpha``, rate ``rate``) CDF at ``y`` (broadcasting); 0 where ``y <= 0``."""
    return torch.special.gammainc(alpha, (rate * y).clamp(min=0.0))


def row_features(prior_alpha: torch.Tensor, prior_rate: torch.Tensor, n: torch.Tensor,
                 lines: torch.Tensor) -> torch.Tensor:
    """Features of each row, ``[R, len(FEATURES)]`` float32.

    ``prior_alpha``/``prior_rate`` [R]: Gamma prior on ``log(L_total + 1)``
    (from the gateway); ``n`` [R]: thinking tokens so far (from ``<think>``,
    prompt included); ``lines`` [R]: newline tokens among them.
    """
    a = prior_alpha.float()
    r = prior_rate.float()
    n = n.float()
    lines = lines.float()
    mean = a / r
    sd = a.sqrt() / r
    # The prior's typical total minus what is already spent: where the prior alone
    # says the thinking should end (log space, 0 once overdue).
    prior_rem = torch.log1p((torch.expm1(mean) - n).clamp(min=0.0))
    line_len = torch.log1p(n / lines.clamp(min=1.0))
    cols = [torch.ones_like(n), mean, sd, torch.log1p(n), prior_rem, line_len, torch.log1p(lines)]
    return torch.stack(cols, dim=-1)


def row_features_list(prior_alpha: float, prior_rate: float, n: float, lines: float) -> list[float]:
    """:func:`row_features` for one row in plain Python floats (the V1 adapter's host path: building
    one tensor from these is much cheaper on CPU than a dozen small tensor ops)."""
    mean = prior_alpha / prior_rate
    sd = math.sqrt(prior_alpha) / prior_rate
    prior_rem = math.log1p(max(math.expm1(mean) - n, 0.0))
    return [1.0, mean, sd, math.log1p(n), prior_rem, math.log1p(n / max(lines, 1.0)), math.log1p(lines)]


@dataclass(frozen=True)
class RemainingLengthModel:
    """``log(L_remaining + 1) ~ Gamma(alpha, rate)`` given row features and the candidate token.

    ``mu = softplus(x @ w_mu + tok_mu[v])`` is the mean of ``log(L+1)``;
    ``alpha = 1 + softplus(x @ w_conc + tok_conc[v])``; ``rate = alpha / mu``.
    ``w_*`` are ``[F]``, ``tok_*`` are ``[V]`` (0 for tokens never seen in training).
    """

    w_mu: torch.Tensor
    w_conc: torch.Tensor
    tok_mu: torch.Tensor
    tok_conc: torch.Tensor

    def params(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(alpha, rate), each ``[R, V]``, for features ``[R, F]``."""
        return self._params(feats, self.tok_mu[None, :], self.tok_conc[None, :])

    def _params(self, feats: torch.Tensor, t_mu: torch.Tensor | float,
                t_conc: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
        mu = torch.nn.functional.softplus((feats @ self.w_mu)[:, None] + t_mu).clamp(min=1e-3)
        alpha = 1.0 + torch.nn.functional.softplus((feats @ self.w_conc)[:, None] + t_conc)
        return alpha, alpha / mu

    def guided_ids(self, end_id: int) -> torch.Tensor:
        """Ids whose weight can differ from the row's common weight: tokens with a learned offset, and ``end_id``.

        Every other token has the same parameters, hence the same weight, and a
        weight shared by all tokens of a row cancels in the softmax.
        """
        ids = torch.nonzero((self.tok_mu != 0) | (self.tok_conc != 0)).flatten()
        end = torch.tensor([end_id], dtype=ids.dtype, device=ids.device)
        return torch.unique(torch.cat([ids, end]))

    def sparse_table(self, end_id: int) -> SparseTable:
        """The constants :func:`sparse_log_weights` needs (build once per processor, not per step).

        Tokens with the same (mu, conc) offsets share one column of CDFs: the
        Gamma CDF is the per-step cost, and many tokens share their offsets
        (the trainer ties label+digit tokens), so this cuts the work exactly.
        """
        ids = self.guided_ids(end_id)
        pairs = torch.stack([self.tok_mu[ids], self.tok_conc[ids]], dim=1)
        zero = torch.zeros(1, 2, dtype=pairs.dtype, device=pairs.device)
        uniq, inv = torch.unique(torch.cat([zero, pairs]), dim=0, return_inverse=True)
        # column 0 must be the offset-free pair (inv[0]); the others keep their order
        order = torch.argsort((torch.arange(len(uniq), device=uniq.device) != inv[0]).to(torch.int8), stable=True)
        rank = torch.argsort(order)
        uniq = uniq[order]
        return SparseTable(ids, uniq[:, 0][None, :], uniq[:, 1][None, :], (ids == end_id)[None, :], rank[inv[1:]])

    def to(self, device: torch.device | str) -> RemainingLengthModel:
        """The same model with its tensors on ``device``."""
        return RemainingLengthModel(*(t.to(device) for t in (self.w_mu, self.w_conc, self.tok_mu, self.tok_conc)))

    @staticmethod
    def from_artifact(data: dict, token_texts: list[str]) -> RemainingLengthModel:
        """Build from the JSON artifact of ``predictors/remaining_length.py`` for one vocabulary.

        ``token_texts[i]`` is the decoded text of token id ``i``; the artifact's
        per-token offsets are keyed by text, so one artifact serves any tokenizer
        (tokens it never saw get no offset).
        """
        feats = data.get("features")
        if tuple(feats or ()) != FEATURES:
            raise ValueError(f"remaining-length artifact: features {feats!r} != {FEATURES!r}")
        vocab = len(token_texts)
        tok_mu = torch.zeros(vocab)
        tok_conc = torch.zeros(vocab)
        offsets: dict[str, list[float]] = data.get("token_offsets", {})
        for i, text in enumerate(token_texts):
            off = offsets.get(text)
            if off is not None:
                tok_mu[i], tok_conc[i] = float(off[0]), float(off[1])
        return RemainingLengthModel(torch.tensor(data["w_mu"], dtype=torch.float32),
                                    torch.tensor(data["w_conc"], dtype=torch.float32), tok_mu, tok_conc)

    @staticmethod
    def load(path: Path, token_texts: list[str]) -> RemainingLengthModel:
        """:meth:`from_artifact` on a JSON file."""
        return RemainingLengthModel.from_artifact(json.loads(Path(path).read_text()), token_texts)


def guidance_log_weights(model: RemainingLengthModel, feats: torch.Tensor, budget_left: torch.Tensor,
                         end_id: int) -> torch.Tensor:
    """``log Pr(L_remaining(v) <= budget_left)`` for every candidate ``v``: ``[R, V]``, in [LOG_W_FLOOR, 0].

    The end-of-thinking token has remaining length 1 by definition, so its
    weight is 1 whenever at least one token of budget is left (and still 1
    past the budget: ending is the best a row can do then). Dense reference
    form; the adapters use the equivalent :func:`sparse_log_weights`.
    """
    y = torch.log1p(budget_left.float().clamp(min=0.0))[:, None]
    logw = _logcdf(y, *model.params(feats))
    logw[:, end_id] = 0.0
    return logw


def _logcdf(y: torch.Tensor, alpha: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
    return torch.log(gamma_cdf(y, alpha, rate).clamp(min=1e-30)).clamp(min=LOG_W_FLOOR)


@dataclass(frozen=True)
class SparseTable:
    """Per-model constants of the sparse rule, built once by :meth:`RemainingLengthModel.sparse_table`.

    ``ids`` [K]: tokens whose weight can differ from their row's common weight;
    ``t_mu``/``t_conc`` [1, U+1]: the distinct offset pairs after a leading 0
    (the common, offset-free token); ``is_end`` [1, K]: which of ``ids`` is the
    end marker; ``col`` [K]: the column of ``t_mu``/``t_conc`` of each id.
    """

    ids: torch.Tensor
    t_mu: torch.Tensor
    t_conc: torch.Tensor
    is_end: torch.Tensor
    col: torch.Tensor


def sparse_log_weights(model: RemainingLengthModel, feats: torch.Tensor, budget_left: torch.Tensor,
                       table: SparseTable) -> tuple[torch.Tensor, torch.Tensor]:
    """(``base`` [R, 1], ``logw_ids`` [R, K]): the same weights as :func:`guidance_log_weights`, compactly.

    Every token outside ``table.ids`` has log weight ``base``. Costs
    ``R x (1 + U)`` CDFs (U distinct offset pairs among the K ids) instead of
    ``R x V``, in one pass (column 0 is the offset-free token).
    """
    y = torch.log1p(budget_left.float().clamp(min=0.0))[:, None]
    both = _logcdf(y, *model._params(feats, table.t_mu, table.t_conc))
    return both[:, :1], both[:, table.col].masked_fill(table.is_end, 0.0)


def guide_logits(logits: torch.Tensor, rows: torch.Tensor, model: RemainingLengthModel, feats: torch.Tensor,
                 budget_left: torch.Tensor, strength: torch.Tensor, end_id: int,
                 table: SparseTable | None = None) -> torch.Tensor:
    """Reweight ``logits[rows]`` by ``w ** strength`` in place and return ``logits``.

    ``rows`` [R] int64 indexes the guided rows (line starts inside thinking);
    ``feats`` [R, F], ``budget_left`` [R], ``strength`` [R] belong to them.
    ``logits`` is ``[B, V]``; other rows are untouched. ``-inf`` logits (masked
    by earlier stages such as grammars) stay ``-inf``.

    With ``table`` (``model.sparse_table(end_id)``) only ``logits[rows][:, table.ids]``
    change: the common weight of all other tokens is subtracted instead of
    added everywhere, which leaves every softmax (and so top-k/top-p/min-p and
    sampling) exactly as the dense rule would, at ``O(R x K)`` cost.
    """
    if rows.numel() == 0:
        return logits
    s = strength.float()[:, None]
    if table is None:
        logits[rows] = logits[rows] + s * guidance_log_weights(model, feats, budget_left, end_id)
        return logits
    base, logw = sparse_log_weights(model, feats, budget_left, table)
    r, c = rows[:, None], table.ids[None, :]
    logits[r, c] = logits[r, c] + s * (logw - base)
    return logits


#: Assumed line length (tokens) before two lines have been seen.
DEFAULT_LINE_TOKENS = 16.0
#: Shape of the next-line Gamma on log(len + 1): sd ~ 15% of the log-mean (lines of one trace are alike).
LINE_SHAPE = 40.0


def next_line_log_weight(n: torch.Tensor, lines: torch.Tensor, budget_left: torch.Tensor,
                         last: torch.Tensor | None = None) -> torch.Tensor:
    """``log Pr(next line + </think> <= budget_left)`` per row, ``[R]`` (the ``line`` horizon).

    The next line's length is Gamma on ``log(len + 1)`` with shape
    :data:`LINE_SHAPE` and mean ``log1p(est)``. ``est`` is the mean line length
    so far (``n / lines`` once two lines exist, else :data:`DEFAULT_LINE_TOKENS`),
    raised to ``last``, the length of the last completed line, when given:
    lines often grow as a solution proceeds (running totals gain digits) and the
    mean includes the prompt's short ``\n`` after ``<think>``, so the mean alone
    runs past the budget (measured: reports/guidance/README.md).
    """
    n, lines = n.float(), lines.float()
    est = torch.where(lines >= 2, n / lines.clamp(min=1.0), torch.full_like(n, DEFAULT_LINE_TOKENS))
    if last is not None:
        est = torch.maximum(est, last.float())
    mu = torch.log1p(est)
    alpha = torch.full_like(mu, LINE_SHAPE)
    y = torch.log1p((budget_left.float() - 1.0).clamp(min=0.0))  # one token stays for </think>
    return _logcdf(y, alpha, alpha / mu)


def guide_logits_line(logits: torch.Tensor, rows: torch.Tensor, n: torch.Tensor, lines: torch.Tensor,
                      budget_left: torch.Tensor, strength: torch.Tensor, end_id: int,
                      last: torch.Tensor | None = None) -> torch.Tensor:
    """The ``line`` horizon: every continuation gets weight ``w``, ``</think>`` weight 1; in place.

    A weight shared by all continuations is the same as ``w ** -strength`` on
    ``</think>`` alone (the softmax normalises), so only one column moves.
    """
    if rows.numel():
        logits[rows, end_id] -= strength.float() * next_line_log_weight(n, lines, budget_left, last)
    return logits


def suppress_end(logits: torch.Tensor, rows: torch.Tensor, end_id: int) -> torch.Tensor:
    """s1-style budget forcing (``extend``): forbid ``end_id`` on ``rows`` in place; return ``logits``."""
    if rows.numel():
        logits[rows, end_id] = float("-inf")
    return logits
