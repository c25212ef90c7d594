"""Prompt featurizers, pluggable by name.

A featurizer turns prompt texts into one row of features per text. Names in the
registry: ``hashed`` (word 1-2-grams + character 3-5-grams, hashed, sublinear TF-IDF;
no model), ``structural`` (cheap counts: length, digits, math symbols, code
markers, question marks, ...), ``minilm`` (all-MiniLM-L6-v2 sentence embeddings,
see :mod:`predictors.minilm`). Combine with ``+``: ``"minilm+hashed+structural"``.

Input contract (every featurizer): :func:`clean_text` is applied first, so

* ``bytes`` are decoded as UTF-8 with invalid sequences replaced by U+FFFD,
  and a ``str`` holding lone surrogates (e.g. from ``surrogateescape``) gets the
  same replacement;
* texts longer than :data:`MAX_CHARS` characters are truncated to their first
  ``MAX_CHARS * 3/4`` and last ``MAX_CHARS / 4`` characters (the question is
  usually at the end of a long prompt); MiniLM further truncates to 256 tokens;
* the empty prompt is valid and yields a well-defined row (all zeros for the
  n-gram block, the length features of an empty string, the embedding of an
  empty sentence).
"""

from __future__ import annotations

import math
import re
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = [
    "MAX_CHARS",
    "CombinedFeaturizer",
    "Featurizer",
    "HashedFeaturizer",
    "StructuralFeaturizer",
    "available_featurizers",
    "clean_text",
    "get_featurizer",
    "register_featurizer",
]

_SURROGATES = re.compile("[\ud800-\udfff]")

#: Characters kept per prompt for featurization (head 3/4 + tail 1/4).
MAX_CHARS = 16_384


def clean_text(text: str | bytes) -> str:
    """Return valid, bounded text for featurization (see the module docstring).

    Raises ``TypeError`` naming the argument when ``text`` is neither str nor bytes.
    """
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8", errors="replace")
    elif not isinstance(text, str):
        raise TypeError(f"prompt: expected str or bytes, got {type(text).__name__}")
    else:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            # Lone surrogates cannot be tokenized or hashed portably: replace them.
            text = _SURROGATES.sub("\ufffd", text)
    if len(text) > MAX_CHARS:
        head = MAX_CHARS * 3 // 4
        text = text[:head] + "\n" + text[len(text) - (MAX_CHARS - head - 1) :]
    return text


class Featurizer(ABC):
    """Texts -> feature rows. Subclasses implement :meth:`transform` (and :meth:`fit` if stateful)."""

    name: str = ""
    #: Whether :meth:`transform` returns a scipy CSR matrix (else a dense float32 array).
    sparse: bool = False
    #: Block weight used by :class:`CombinedFeaturizer` unless weights are given; it sets
    #: the block's share of a kernel (rows of hashed and minilm have norm ~1).
    default_weight: float = 1.0

    def fit(self, texts: Sequence[str]) -> Featurizer:
        """Fit any state on training texts; stateless featurizers return ``self``."""
        return self

    @abstractmethod
    def transform(self, texts: Sequence[str | bytes]) -> Any:
        """Return an ``(len(texts), dim)`` matrix (dense float32 ndarray or CSR)."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Number of output columns."""


# ---------------------------------------------------------------- hashed n-grams


_WORD = re.compile(r"\w+|[^\w\s]")


def _hash_block(grams: list[str], mask: int) -> tuple[np.ndarray, np.ndarray]:
    """Bucket ids (CRC-32 of the UTF-8 n-gram, stable across processes) and counts."""
    if not grams:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    ids = np.fromiter((zlib.crc32(g.encode("utf-8")) & mask for g in grams), dtype=np.int64, count=len(grams))
    uniq, counts = np.unique(ids, return_counts=True)
    return uniq, counts.astype(np.float32)


def _ngrams(text: str) -> tuple[list[str], list[str]]:
    """Word 1-2-grams (words and punctuation marks, lower-cased) and char 3-5-grams inside space-padded words."""
    t = text.lower()
    words = _WORD.findall(t)
    word_grams = words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
    char_grams: list[str] = []
    for w in t.split():
        padded = f" {w} "
        size = len(padded)
        for n in (3, 4, 5):
            char_grams.extend(padded[i : i + n] for i in range(size - n + 1))
    return word_grams, char_grams


class HashedFeaturizer(Featurizer):
    """Hashed word 1-2-grams and character 3-5-grams with sublinear TF-IDF (idf fitted).

    Each n-gram is hashed with CRC-32 into ``n_features`` buckets per block; tf is
    ``1 + ln(count)``, times idf once fitted (1 before); each block is
    L2-normalised then scaled by 1/sqrt(2), so a row has norm 1 (0 if empty).
    Implemented directly on numpy because per-call overhead, not hashing, is what
    dominates a single short prompt.
    """

    name = "hashed"
    sparse = True

    def __init__(self, n_features: int = 2**17) -> None:
        if n_features <= 0 or n_features & (n_features - 1):
            raise ValueError(f"n_features: must be a power of two, got {n_features}")
        self.n_features = n_features
        self.idf_: list[np.ndarray] | None = None
        #: Bucket scheme; instances pickled without it used sklearn's HashingVectorizer buckets.
        self.hashing = "crc32"

    def __setstate__(self, state: dict[str, Any]) -> None:
        # The old scheme had the same attributes, so without this check an old artifact
        # would load and silently predict from features in the wrong buckets.
        if state.get("hashing") != "crc32":
            raise ValueError(
                "this artifact was trained with an older hashed featurizer"
                f" (buckets: {state.get('hashing', 'sklearn HashingVectorizer')}; this thinkgate uses crc32):"
                " retrain with `thinkgate predictors train`"
            )
        self.__dict__.update(state)

    def _rows(self, texts: Sequence[str | bytes]) -> list[list[tuple[np.ndarray, np.ndarray]]]:
        mask = self.n_features - 1
        return [[_hash_block(g, mask) for g in _ngrams(clean_text(t))] for t in texts]

    def fit(self, texts: Sequence[str]) -> HashedFeaturizer:
        """Fit smoothed idf weights per block: idf = ln((1 + n) / (1 + df)) + 1."""
        n = len(texts)
        df = [np.zeros(self.n_features, np.float64) for _ in range(2)]
        for row in self._rows(texts):
            for blk, (ids, _) in enumerate(row):
                df[blk][ids] += 1.0
        self.idf_ = [(np.log((1.0 + n) / (1.0 + d)) + 1.0).astype(np.float32) for d in df]
        return self

    def transform(self, texts: Sequence[str | bytes]) -> sp.csr_matrix:
        """Sparse CSR ``(n, 2 * n_features)``."""
        indptr = [0]
        indices: list[np.ndarray] = []
        data: list[np.ndarray] = []
        scale = np.float32(1.0 / math.sqrt(2.0))
        for row in self._rows(texts):
            for blk, (ids, counts) in enumerate(row):
                if ids.size == 0:
                    continue
                v = 1.0 + np.log(counts)
                if self.idf_ is not None:
                    v = v * self.idf_[blk][ids]
                v = v * (scale / np.float32(np.sqrt(np.dot(v, v))))
                indices.append(ids + blk * self.n_features)
                data.append(v.astype(np.float32))
            indptr.append(indptr[-1] + sum(ids.size for ids, _ in row))
        ind = np.concatenate(indices) if indices else np.zeros(0, np.int64)
        dat = np.concatenate(data) if data else np.zeros(0, np.float32)
        return sp.csr_matrix((dat, ind.astype(np.int32), np.asarray(indptr, np.int64)), shape=(len(texts), self.dim))

    @property
    def dim(self) -> int:
        """Two hashed blocks."""
        return 2 * self.n_features


# ---------------------------------------------------------------- structural


_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("digits", re.compile(r"\d")),
    ("numbers", re.compile(r"\d+(?:\.\d+)?")),
    ("math_symbols", re.compile(r"[=+\-*/^<>≤≥≠±×÷√∑∏∫π∞]")),
    ("latex", re.compile(r"\\[a-zA-Z]+|\$")),
    ("code_markers", re.compile(r"```|\bdef\b|\bclass\b|\bimport\b|\breturn\b|[{};]|\bSELECT\b|\bfunction\b")),
    ("questions", re.compile(r"\?")),
    ("choices", re.compile(r"(?m)^\s*\(?[A-Ea-e][).:]\s")),
    ("newlines", re.compile(r"\n")),
    ("uppercase", re.compile(r"[A-Z]")),
    ("non_ascii", re.compile(r"[^\x00-\x7f]")),
]


class StructuralFeaturizer(Featurizer):
    """Cheap counts, standardised with means/stds fitted on training texts.

    Columns: log1p(chars), log1p(words), mean word length, then for each pattern
    in ``_PATTERNS`` log1p(count) and count per character. Character count is of
    the original text (before truncation), the rest of the cleaned text.
    """

    name = "structural"
    sparse = False
    # ~23 standardised columns have norm ~5: 0.05 keeps them a small share of the kernel
    # (chosen on a split of the llmrouter training data, see reports/predictors.md).
    default_weight = 0.05

    def __init__(self) -> None:
        self.mean_: np.ndarray | None = None
        self.std_: np.ndarray | None = None

    @staticmethod
    def _row(text: str | bytes) -> list[float]:
        n_orig = len(text)
        t = clean_text(text)
        words = t.split()
        n = max(len(t), 1)
        row = [math.log1p(n_orig), math.log1p(len(words)), (sum(map(len, words)) / len(words)) if words else 0.0]
        for _, pat in _PATTERNS:
            c = len(pat.findall(t))
            row += [math.log1p(c), c / n]
        return row

    def _raw(self, texts: Sequence[str | bytes]) -> np.ndarray:
        return np.asarray([self._row(t) for t in texts], dtype=np.float32).reshape(len(texts), self.dim)

    def fit(self, texts: Sequence[str]) -> StructuralFeaturizer:
        """Fit per-column mean and std (std floored at 1e-6)."""
        raw = self._raw(texts)
        self.mean_ = raw.mean(axis=0)
        self.std_ = np.maximum(raw.std(axis=0), 1e-6)
        return self

    def transform(self, texts: Sequence[str | bytes]) -> np.ndarray:
        """Dense float32 ``(n, dim)``, standardised when fitted."""
        raw = self._raw(texts)
        if self.mean_ is not None and self.std_ is not None:
            raw = (raw - self.mean_) / self.std_
        return raw.astype(np.float32)

    @property
    def dim(self) -> int:
        """3 + 2 per pattern."""
        return 3 + 2 * len(_PATTERNS)


# ---------------------------------------------------------------- combination + registry


class CombinedFeaturizer(Featurizer):
    """Column-wise concatenation of several featurizers, each block scaled by a weight."""

    def __init__(self, parts: Sequence[Featurizer], weights: Sequence[float] | None = None) -> None:
        if not parts:
            raise ValueError("featurizer: at least one part is required")
        self.parts = list(parts)
        self.weights = list(weights) if weights is not None else [p.default_weight for p in self.parts]
        if len(self.weights) != len(self.parts):
            raise ValueError("featurizer weights: one weight per part is required")
        self.name = "+".join(p.name for p in self.parts)
        self.sparse = any(p.sparse for p in self.parts)

    def fit(self, texts: Sequence[str]) -> CombinedFeaturizer:
        """Fit every part."""
        for p in self.parts:
            p.fit(texts)
        return self

    def transform(self, texts: Sequence[str | bytes]) -> Any:
        """Concatenated blocks; CSR if any part is sparse, else dense float32 (each part cleans its texts)."""
        blocks = []
        for p, w in zip(self.parts, self.weights, strict=True):
            b = p.transform(texts)
            if sp.issparse(b):
                b.data *= np.float32(w)  # blocks are fresh matrices: scaling in place is safe
            else:
                b = b * np.float32(w)
            blocks.append(b)
        if self.sparse:
            return sp.hstack([b if sp.issparse(b) else sp.csr_matrix(b) for b in blocks], format="csr", dtype=np.float32)
        return np.hstack(blocks).astype(np.float32)

    def dense_transform(self, texts: Sequence[str | bytes]) -> np.ndarray | None:
        """Only the dense parts concatenated (``None`` if there are none); used as bandit context."""
        blocks = [p.transform(texts) * w for p, w in zip(self.parts, self.weights, strict=True) if not p.sparse]
        return np.hstack(blocks).astype(np.float32) if blocks else None

    @property
    def dim(self) -> int:
        """Sum of the parts' dims."""
        return sum(p.dim for p in self.parts)


def _make_minilm() -> Featurizer:
    from predictors.minilm import MiniLMFeaturizer

    return MiniLMFeaturizer()


def _make_minilm8() -> Featurizer:
    from predictors.minilm import MiniLMFeaturizer

    return MiniLMFeaturizer(int8=True)


_REGISTRY: dict[str, Callable[[], Featurizer]] = {
    "hashed": HashedFeaturizer,
    "structural": StructuralFeaturizer,
    "minilm": _make_minilm,
    "minilm8": _make_minilm8,
}


def register_featurizer(name: str, factory: Callable[[], Featurizer]) -> None:
    """Add a featurizer factory under ``name`` (no ``+`` allowed in names)."""
    if not name or "+" in name:
        raise ValueError(f"featurizer name: must be non-empty without '+', got {name!r}")
    _REGISTRY[name] = factory


def available_featurizers() -> list[str]:
    """Registered names, sorted."""
    return sorted(_REGISTRY)


def get_featurizer(spec: str, weights: Sequence[float] | None = None) -> CombinedFeaturizer:
    """Build an unfitted featurizer from ``"a+b+..."``; unknown names raise ``ValueError``.

    The result is always a :class:`CombinedFeaturizer` (possibly of one part) so
    callers have one type to deal with.
    """
    names = [n.strip() for n in spec.split("+") if n.strip()]
    if not names:
        raise ValueError(f"featurizer: empty spec {spec!r}, available: {', '.join(available_featurizers())}")
    parts = []
    for n in names:
        if n not in _REGISTRY:
            raise ValueError(f"unknown featurizer {n!r}, available: {', '.join(available_featurizers())}")
        parts.append(_REGISTRY[n]())
    return CombinedFeaturizer(parts, weights)
