"""Train the remaining-thinking-length model used by decode-time guidance (``guidance/``).

Model (evaluated by :mod:`guidance.core`): at a line start inside thinking,
with candidate next token ``v``, ``y = log(L_remaining + 1) ~ Gamma(alpha, rate)``
with mean ``mu = softplus(x @ w_mu + tok_mu[v])`` and shape
``alpha = 1 + softplus(x @ w_conc + tok_conc[v])``. ``x`` holds what a logits
processor can see (``guidance.core.FEATURES``): the request's Gamma prior on
``log(L_total + 1)``, thinking tokens and lines so far. ``L_remaining`` counts
the candidate itself through ``</think>`` inclusive (Budget Guidance's target).

Traces come from the testbed task family's worked solutions
(:func:`testbed.tasks.render_thinking`, all three styles), split into the
tokens of the testbed tokenizer (``--tokenizer``; label+digit pairs such as
``a6`` are single tokens, so a ``step`` or ``careful`` line starts with ``a6``
and a ``concise`` line with a bare ``a``: the per-token offsets can then tell
the short style from the long ones at the first line start, which is what lets
guidance steer towards it). The prior of a trace is what a prompt-level
length predictor could know: a Gamma moment-matched to ``log(L_total + 1)`` over
the training traces of the same difficulty in ``--prior-style`` (default
``step``, the style greedy decoding follows, so the prior is the model's usual
length, as a length predictor trained on its outcomes reports it; ``mixed``
pools the three styles), its mean jittered so
the model learns to cope with imperfect priors, and its spread replaced by one
drawn log-uniformly from ``--prior-sd`` (a request's prior may be much
narrower than the mixed-style spread, e.g. one fitted to a model's greedy
runs; without this the model extrapolates wildly on narrow priors). Fitted by Gamma NLL (Adam, L2
on the per-token offsets). Output: a JSON artifact (weights, per-token offsets
keyed by token text, held-out metrics).

    python -m predictors.remaining_length --out guidance/remaining_length.json

numpy at import; torch only inside :func:`fit` (training needs gradients).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["DEFAULT_TOKENIZER", "Examples", "digit_group", "examples_from_traces", "fit", "main", "task_traces",
           "token_splitter"]

FEATURES: tuple[str, ...] = ("bias", "prior_mean", "prior_sd", "log_n", "log_prior_rem", "log_line_len",
                             "log_lines")
END = "</think>"


DEFAULT_TOKENIZER = Path(__file__).resolve().parents[1] / "testbed" / "models" / "tg-small" / "tokenizer.json"


def token_splitter(tokenizer_file: Path | None):  # noqa: ANN201 - returns a callable
    """``text -> [token text, ...]`` with the tokenizer's own split (decoded per token); characters if ``None``."""
    if tokenizer_file is None:
        return list
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_file))

    def split(text: str) -> list[str]:
        return [tok.decode([i], skip_special_tokens=False) for i in tok.encode(text, add_special_tokens=False).ids]

    return split


def task_traces(n_problems: int, split: str, seed: int,
                tokenizer_file: Path | None = None) -> list[tuple[int, list[str]]]:
    """(difficulty, thinking tokens) per problem and style: ``["\\n", *tokens, "</think>"]``.

    Tokens are the decoded texts of ``tokenizer_file``'s tokens (the keys the
    plugin looks offsets up by), or single characters when it is ``None``.
    The leading ``"\\n"`` is the one the chat template puts after ``<think>``
    in the prompt; vLLM's budget counts it, so the model does too.
    """
    from testbed import tasks

    splitter = token_splitter(tokenizer_file)
    out = []
    for p in tasks.sample_problems(n_problems, split, seed):
        for style in tasks.STYLES:
            out.append((p.difficulty, ["\n", *splitter(tasks.render_thinking(p, style)), END]))
    return out


def _gamma_moments(y: np.ndarray) -> tuple[float, float]:
    mean, var = float(y.mean()), float(max(y.var(), 1e-4))
    alpha = mean * mean / var
    return alpha, alpha / mean


@dataclass(frozen=True)
class Examples:
    """Line-start examples: features ``x`` [N, F], candidate text, target ``L_remaining`` [N]."""

    x: np.ndarray
    cand: list[str]
    rem: np.ndarray


def features(prior: tuple[float, float], n: float, lines: float) -> list[float]:
    """One row of ``guidance.core.row_features`` in numpy terms (kept identical; tested)."""
    a, r = prior
    mean, sd = a / r, math.sqrt(a) / r
    prior_rem = math.log1p(max(math.expm1(mean) - n, 0.0))
    return [1.0, mean, sd, math.log1p(n), prior_rem, math.log1p(n / max(lines, 1.0)), math.log1p(lines)]


def examples_from_traces(traces: list[tuple[int, list[str]]], priors: dict[int, tuple[float, float]],
                         jitter: float, seed: int,
                         sd_range: tuple[float, float] | None = None) -> Examples:
    """Every line start of every trace: after ``<think>``'s newline and after each newline token."""
    rng = random.Random(seed)
    xs, cands, rems = [], [], []
    for diff, toks in traces:
        a, r = priors[diff]
        if jitter > 0:
            # Shift the prior's log-space mean by a random factor, keep its spread.
            mean = (a / r) * math.exp(rng.gauss(0.0, jitter))
            r = a / mean
        if sd_range is not None:
            # Keep the mean, draw the spread: sd of log(L + 1) log-uniform in sd_range.
            mean = a / r
            sd = math.exp(rng.uniform(math.log(sd_range[0]), math.log(sd_range[1])))
            a, r = (mean / sd) ** 2, mean / sd ** 2
        lines = 0
        for j, t in enumerate(toks[:-1]):
            if t != "\n":
                continue
            lines += 1
            n = j + 1
            xs.append(features((a, r), n, lines))
            cands.append(toks[j + 1])
            rems.append(len(toks) - n)
    return Examples(np.asarray(xs, dtype=np.float32), cands, np.asarray(rems, dtype=np.float32))


def _nll(x, tok_idx, y, w_mu, w_conc, t_mu, t_conc):  # noqa: ANN001, ANN202 - torch tensors, internal
    import torch

    sp = torch.nn.functional.softplus
    mu = sp(x @ w_mu + t_mu[tok_idx]).clamp(min=1e-3)
    alpha = 1.0 + sp(x @ w_conc + t_conc[tok_idx])
    rate = alpha / mu
    return -(alpha * torch.log(rate) - torch.lgamma(alpha) + (alpha - 1) * torch.log(y) - rate * y)


def digit_group(token: str) -> str:
    """Offset group of a token: letters followed by digits (``a6``, ``b12``) share ``"a#"``; others are their own.

    In the testbed's language ``a6`` starts a ``step`` or ``careful`` line for
    the term labelled ``a`` whatever its digit, so one offset per label is the
    right granularity; sharing also lets the plugin compute one Gamma CDF per
    group instead of per token (``guidance.core.RemainingLengthModel.sparse_table``).
    """
    m = re.fullmatch(r"([A-Za-z]+)[0-9]+", token)
    return f"{m.group(1)}#" if m else token


def fit(train: Examples, steps: int = 1500, lr: float = 0.05, l2_tok: float = 1e-3, seed: int = 0,
        group: Callable[[str], str] | None = digit_group) -> dict:
    """Fit by full-batch Adam on the mean Gamma NLL of ``log(L_rem + 1)``; return the artifact dict.

    ``group`` maps a token to the key whose offsets it shares (None: one offset per token); the
    artifact still lists every token, tied tokens with identical values.
    """
    import torch

    torch.manual_seed(seed)
    key = group or (lambda t: t)
    tokens = sorted(set(train.cand))
    groups = sorted({key(t) for t in tokens})
    gidx = {g: i for i, g in enumerate(groups)}
    index = {t: gidx[key(t)] for t in tokens}
    x = torch.from_numpy(train.x)
    tok = torch.tensor([index[c] for c in train.cand])
    y = torch.log1p(torch.from_numpy(train.rem))
    f = x.shape[1]
    w_mu = torch.zeros(f, requires_grad=True)
    w_conc = torch.zeros(f, requires_grad=True)
    with torch.no_grad():  # start at "the prior says where it ends", moderately concentrated
        w_mu[FEATURES.index("log_prior_rem")] = 1.0
        w_conc[0] = 2.0
    t_mu = torch.zeros(len(groups), requires_grad=True)
    t_conc = torch.zeros(len(groups), requires_grad=True)
    opt = torch.optim.Adam([w_mu, w_conc, t_mu, t_conc], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = _nll(x, tok, y, w_mu, w_conc, t_mu, t_conc).mean()
        loss = loss + l2_tok * (t_mu.square().sum() + t_conc.square().sum())
        loss.backward()
        opt.step()
    return {
        "features": list(FEATURES),
        "w_mu": w_mu.detach().tolist(),
        "w_conc": w_conc.detach().tolist(),
        "token_offsets": {t: [float(t_mu[index[t]].detach()), float(t_conc[index[t]].detach())] for t in tokens},
    }


def evaluate(art: dict, ex: Examples) -> dict[str, float]:
    """Held-out mean NLL of ``log(L_rem+1)``, its prior-only baseline, and 50/90% interval coverage."""
    import torch

    tokens = sorted(set(ex.cand) | set(art["token_offsets"]))
    idx = {t: i for i, t in enumerate(tokens)}
    zero = [0.0, 0.0]
    t_mu = torch.tensor([art["token_offsets"].get(t, zero)[0] for t in tokens])
    t_conc = torch.tensor([art["token_offsets"].get(t, zero)[1] for t in tokens])
    x = torch.from_numpy(ex.x)
    tok = torch.tensor([idx[c] for c in ex.cand])
    y = torch.log1p(torch.from_numpy(ex.rem))
    w_mu, w_conc = torch.tensor(art["w_mu"]), torch.tensor(art["w_conc"])
    nll = float(_nll(x, tok, y, w_mu, w_conc, t_mu, t_conc).mean())
    base_mu = torch.zeros_like(w_mu)
    base_mu[FEATURES.index("log_prior_rem")] = 1.0
    base_conc = torch.zeros_like(w_conc)
    base_conc[0] = 10.0  # same as guidance.vocab.prior_only_model
    zeros = torch.zeros(len(tokens))
    base = float(_nll(x, tok, y, base_mu, base_conc, zeros, zeros).mean())
    sp = torch.nn.functional.softplus
    mu = sp(x @ w_mu + t_mu[tok]).clamp(min=1e-3)
    alpha = 1.0 + sp(x @ w_conc + t_conc[tok])
    cdf = torch.special.gammainc(alpha, alpha / mu * y)
    return {"nll": nll, "nll_prior_only": base, "n": int(len(ex.rem)),
            "coverage_50": float(((cdf > 0.25) & (cdf <= 0.75)).float().mean()),
            "coverage_90": float(((cdf > 0.05) & (cdf <= 0.95)).float().mean())}


def main(argv: list[str] | None = None) -> int:
    """CLI: build traces, fit, evaluate on the validation split, write the artifact."""
    ap = argparse.ArgumentParser(prog="python -m predictors.remaining_length", description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="artifact path (JSON)")
    ap.add_argument("--problems", type=int, default=600, help="training problems (x3 styles)")
    ap.add_argument("--val-problems", type=int, default=240)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--jitter", type=float, default=0.1, help="sd of the log-factor jitter on the prior mean")
    ap.add_argument("--prior-sd", default="0.03,1.0",
                    help="LO,HI: range of the prior's sd of log(L + 1) drawn per trace (log-uniform); 'none' keeps the fitted sd")
    ap.add_argument("--prior-style", default="step", help="style the per-difficulty prior is fitted to, or 'mixed'")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tokenizer", type=Path, default=DEFAULT_TOKENIZER,
                    help="tokenizer.json whose tokens split the traces (default: the testbed models' tokenizer)")
    ap.add_argument("--chars", action="store_true", help="split traces into characters instead of --tokenizer")
    ap.add_argument("--untied", action="store_true",
                    help="one offset per token (default: letters+digits tokens such as a6 share one per letter)")
    a = ap.parse_args(argv)
    if a.problems <= 0 or a.val_problems <= 0:
        print("--problems/--val-problems: must be > 0", file=sys.stderr)
        return 2
    sd_range = None
    if a.prior_sd != "none":
        try:
            lo, hi = (float(v) for v in a.prior_sd.split(","))
        except ValueError:
            print(f"--prior-sd: expected LO,HI or 'none', got {a.prior_sd!r}", file=sys.stderr)
            return 2
        if not 0 < lo <= hi:
            print("--prior-sd: need 0 < LO <= HI", file=sys.stderr)
            return 2
        sd_range = (lo, hi)
    from testbed.tasks import STYLES

    if a.prior_style != "mixed" and a.prior_style not in STYLES:
        print(f"--prior-style: one of {', '.join(STYLES)} or 'mixed', got {a.prior_style!r}", file=sys.stderr)
        return 2
    tok_file = None if a.chars else a.tokenizer
    if tok_file is not None and not tok_file.is_file():
        print(f"--tokenizer: no such file: {tok_file}", file=sys.stderr)
        return 2
    t0 = time.time()
    train_tr = task_traces(a.problems, "train", a.seed, tok_file)
    by_diff: dict[int, list[float]] = {}
    for i, (d, toks) in enumerate(train_tr):  # task_traces yields each problem's styles in STYLES order
        if a.prior_style == "mixed" or STYLES[i % len(STYLES)] == a.prior_style:
            by_diff.setdefault(d, []).append(math.log1p(len(toks)))
    priors = {d: _gamma_moments(np.asarray(v)) for d, v in by_diff.items()}
    train = examples_from_traces(train_tr, priors, a.jitter, a.seed, sd_range)
    val = examples_from_traces(task_traces(a.val_problems, "val", a.seed + 1, tok_file), priors, a.jitter,
                               a.seed + 1, sd_range)
    art = fit(train, steps=a.steps, seed=a.seed, group=None if a.untied else digit_group)
    art["metrics_val"] = evaluate(art, val)
    art["source"] = {"traces": "testbed.tasks worked solutions, 3 styles", "problems": a.problems,
                     "tokens": "characters" if tok_file is None else f"{tok_file.parent.name}/{tok_file.name}",
                     "examples": int(len(train.rem)), "jitter": a.jitter, "tied": not a.untied, "prior_style": a.prior_style, "prior_sd": list(sd_range) if sd_range else None,
                     "seed": a.seed,
                     "priors_by_difficulty": {str(d): list(p) for d, p in sorted(priors.items())}}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(art, indent=1) + "\n")
    print(json.dumps({"out": str(a.out), "seconds": round(time.time() - t0, 1), **art["metrics_val"]}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
