"""Featurizers: registry, bad input (empty, invalid UTF-8, 1 MB), shapes and fitted state."""

from __future__ import annotations

import time
import zlib

import numpy as np
import pytest

from predictors.featurizers import (
    MAX_CHARS,
    HashedFeaturizer,
    StructuralFeaturizer,
    available_featurizers,
    clean_text,
    get_featurizer,
)


def test_registry_names_and_unknown_error():
    assert {"hashed", "structural", "minilm", "minilm8"} <= set(available_featurizers())
    with pytest.raises(ValueError, match=r"unknown featurizer 'tfidf', available: hashed, minilm"):
        get_featurizer("hashed+tfidf")
    with pytest.raises(ValueError, match="empty spec"):
        get_featurizer(" + ")
    f = get_featurizer("hashed+structural")
    assert f.name == "hashed+structural" and f.sparse
    assert f.dim == HashedFeaturizer().dim + StructuralFeaturizer().dim


def test_clean_text_invalid_utf8_surrogates_and_truncation():
    assert clean_text(b"caf\xc3\xa9 \xff\xfe ok") == "café \ufffd\ufffd ok"
    broken = b"abc\xff".decode("utf-8", errors="surrogateescape")
    assert clean_text(broken) == "abc\ufffd"
    long = "H" * (2 * MAX_CHARS) + "the question?"
    out = clean_text(long)
    assert len(out) == MAX_CHARS
    assert out.startswith("H" * 100) and out.endswith("the question?")
    assert clean_text("") == ""
    with pytest.raises(TypeError, match="prompt: expected str or bytes"):
        clean_text(None)  # type: ignore[arg-type]


def test_hashed_empty_and_invalid_rows():
    f = HashedFeaturizer(n_features=2**10).fit(["what is two plus two", "write a python function"])
    X = f.transform(["", b"\xff\xfe", "what is two plus two"])
    assert X.shape == (3, 2 * 2**10)
    assert X[0].nnz == 0  # empty prompt: all-zero n-gram row
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1))).ravel()
    assert norms[2] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="n_features"):
        HashedFeaturizer(n_features=1000)


def test_idf_downweights_common_ngrams():
    docs = ["the cat sat", "the dog ran", "the bird flew", "the fish swam"]
    f = HashedFeaturizer(n_features=2**12)
    before = f.transform(["the zebra"])
    f.fit(docs)
    after = f.transform(["the zebra"])
    # "the" occurs in every training doc: its share of the row shrinks once idf is fitted.
    the_col = int(zlib.crc32(b"the") & (2**12 - 1))
    assert after[0, the_col] < before[0, the_col]


def test_structural_features_are_informative_and_standardised():
    f = StructuralFeaturizer()
    raw = f.transform(["What is 2+2?", "def f(x):\n    return x;", ""])
    assert raw.shape == (3, f.dim) and np.isfinite(raw).all()
    assert raw[0, 0] == pytest.approx(np.log1p(len("What is 2+2?")))
    texts = [f"question {i} with {i * 7} apples?" for i in range(20)]
    z = f.fit(texts).transform(texts)
    varying = z.std(axis=0) > 0
    assert np.allclose(z.mean(axis=0)[varying], 0, atol=1e-4)


def test_one_megabyte_prompt_is_bounded():
    big = ("lorem ipsum 12 + 7 = ? " * 50_000)[:1_000_000]
    f = get_featurizer("hashed+structural").fit(["short prompt"])
    t = time.perf_counter()
    X = f.transform([big])
    assert X.shape[0] == 1
    assert time.perf_counter() - t < 5.0  # truncation keeps the cost of a 1 MB prompt small
    # Character count is of the original text, so the length feature still sees 1 MB.
    raw = StructuralFeaturizer().transform([big])
    assert raw[0, 0] == pytest.approx(np.log1p(1_000_000), rel=1e-5)


def test_hashed_featurizer_pickled_before_crc32_buckets_is_refused(tmp_path):
    import pickle

    from predictors.artifact import ArtifactError, load_predictor, save_predictor
    from predictors.synthetic import make_synthetic_table
    from predictors.train import train_predictor, training_set_from_table

    new = HashedFeaturizer(2**8).fit(["a b c", "b c d"])
    assert new.hashing == "crc32"
    again = pickle.loads(pickle.dumps(new))
    assert (again.transform(["a b"]) != new.transform(["a b"])).nnz == 0
    old = HashedFeaturizer(2**8).fit(["a b c"])
    del old.__dict__["hashing"]  # what a featurizer pickled by the HashingVectorizer version holds
    with pytest.raises(ValueError, match="trained with an older hashed featurizer.*retrain"):
        pickle.loads(pickle.dumps(old))
    pred = train_predictor(training_set_from_table(make_synthetic_table(40, seed=0)), "hashed+structural")
    del pred.featurizer.parts[0].__dict__["hashing"]
    path = save_predictor(pred, tmp_path / "old-hashed.pkl")
    with pytest.raises(ArtifactError, match=r"old-hashed\.pkl: .*older hashed featurizer.*retrain"):
        load_predictor(path)
