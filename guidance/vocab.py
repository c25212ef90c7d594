"""Per-model constants both adapters need: marker ids, the line-start mask, the remaining-length model.

Built once per logits-processor instance (inside the vLLM worker), never at import.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from guidance.core import FEATURES, RemainingLengthModel

__all__ = ["ARTIFACT_ENV", "SHIPPED_ARTIFACT", "Vocab", "load_model", "prior_only_model", "vocab_from_config",
           "vocab_from_texts"]

log = logging.getLogger("thinkgate.guidance")

#: Environment variable naming a remaining-length artifact that overrides the shipped one.
ARTIFACT_ENV = "THINKGATE_REMAINING_LENGTH"
SHIPPED_ARTIFACT = Path(__file__).resolve().parent / "remaining_length.json"
THINK_START = "<think>"
THINK_END = "</think>"


@dataclass(frozen=True)
class Vocab:
    """``start_id``/``end_id``: thinking markers (-1: absent, the plugin then stays off);
    ``newline`` [V] bool: tokens whose text contains a newline; ``texts``: decoded text per id."""

    start_id: int
    end_id: int
    newline: torch.Tensor
    texts: list[str]

    @property
    def enabled(self) -> bool:
        """Whether the model has both markers (guidance is meaningless otherwise)."""
        return self.start_id >= 0 and self.end_id >= 0


def vocab_from_texts(texts: list[str], start_id: int, end_id: int) -> Vocab:
    """A :class:`Vocab` from decoded token texts (tests and the adapters share this)."""
    newline = torch.tensor(["\n" in t for t in texts], dtype=torch.bool)
    return Vocab(start_id, end_id, newline, texts)


def vocab_from_config(vllm_config: Any) -> Vocab:
    """Decode every id of the served model's tokenizer; markers from the reasoning config or the vocab."""
    from vllm.tokenizers import cached_tokenizer_from_config

    mc = vllm_config.model_config
    size = mc.get_vocab_size()
    tok = cached_tokenizer_from_config(mc)
    texts = [""] * size
    if tok is not None:
        n = min(size, len(tok))
        texts[:n] = [tok.decode([i]) for i in range(n)]
    start_id = end_id = -1
    rc = getattr(vllm_config, "reasoning_config", None)
    starts = getattr(rc, "reasoning_start_token_ids", None) if rc is not None else None
    ends = getattr(rc, "natural_reasoning_end_token_ids", None) if rc is not None else None
    if starts and ends and len(starts) == 1 and len(ends) == 1:
        start_id, end_id = starts[-1], ends[-1]
    elif tok is not None:
        # Without a reasoning config, fall back to the R1/Qwen3 markers when they are single tokens.
        ids = [tok.convert_tokens_to_ids(s) for s in (THINK_START, THINK_END)]
        unk = getattr(tok, "unk_token_id", None)
        if all(isinstance(i, int) and i >= 0 and i != unk for i in ids):
            start_id, end_id = ids
    if start_id < 0 or end_id < 0:
        log.warning("thinkgate guidance: no single-token <think>/</think> markers; plugin disabled")
    return vocab_from_texts(texts, start_id, end_id)


def prior_only_model(vocab_size: int) -> RemainingLengthModel:
    """Fallback when no artifact exists: remaining length from the prior alone, no per-token offsets.

    ``mu = softplus(log_prior_rem)`` ≈ where the prior says the thinking ends,
    with shape 1 + softplus(10) ≈ 11 (log-space sd ≈ 30% of the mean).
    """
    w_mu = torch.zeros(len(FEATURES))
    w_mu[FEATURES.index("log_prior_rem")] = 1.0
    w_conc = torch.zeros(len(FEATURES))
    w_conc[FEATURES.index("bias")] = 10.0
    return RemainingLengthModel(w_mu, w_conc, torch.zeros(vocab_size), torch.zeros(vocab_size))


def load_model(vocab: Vocab, device: torch.device | str) -> RemainingLengthModel:
    """The remaining-length model for ``vocab``: ``$THINKGATE_REMAINING_LENGTH``, else the shipped
    artifact, else :func:`prior_only_model` (with a warning). A named but unreadable file raises."""
    path = os.environ.get(ARTIFACT_ENV)
    if path:
        model = RemainingLengthModel.load(Path(path), vocab.texts)
    elif SHIPPED_ARTIFACT.is_file():
        model = RemainingLengthModel.load(SHIPPED_ARTIFACT, vocab.texts)
    else:
        log.warning("thinkgate guidance: no remaining-length artifact; using the prior-only model")
        model = prior_only_model(len(vocab.texts))
    return model.to(device)
