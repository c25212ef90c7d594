"""Training, calibration, leave-one-out algebra, length heads, artifacts and the predictor API."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from predictors.artifact import (
    ARTIFACT_VERSION,
    ArtifactError,
    load_predictor,
    read_artifact_header,
    save_predictor,
)
from predictors.evaluate import auroc, ece, evaluate_predictor, quantile_calibration
from predictors.model import Calibrator, OptionEstimate
from predictors.synthetic import SYNTHETIC_COSTS, make_synthetic_records, make_synthetic_table
from predictors.train import (
    _dual_ridge_loo,
    _EigenCache,
    _fit_calibrator,
    train_predictor,
    training_set_from_records,
    training_set_from_table,
)


@pytest.fixture(scope="module")
def trained():
    train = training_set_from_records(make_synthetic_records(200, samples=2, seed=1))
    test = training_set_from_table(make_synthetic_table(120, seed=2))
    pred = train_predictor(train, "hashed+structural", option_costs=SYNTHETIC_COSTS)
    return pred, train, test


def test_loo_closed_form_matches_explicit_refits():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 5))
    Y = rng.normal(size=(30, 2))
    dual, loo, alpha = _dual_ridge_loo(_EigenCache(X).get(np.arange(30)), Y, [0.5])
    for i in (0, 7, 29):
        keep = np.arange(30) != i
        mean = Y.mean(axis=0)  # the intercept is the full-data mean, as in the closed form
        Xk = X[keep]
        a = np.linalg.solve(Xk @ Xk.T + 0.5 * np.eye(29), Y[keep] - mean)
        assert np.allclose(X[i] @ Xk.T @ a + mean, loo[i], atol=1e-8)
    assert alpha == 0.5


def test_isotonic_calibration_fixes_miscalibrated_scores():
    rng = np.random.default_rng(1)
    z = rng.normal(size=4000)
    p_true = 1 / (1 + np.exp(-3 * z))
    y = (rng.random(4000) < p_true).astype(float)
    raw = 1 / (1 + np.exp(-z))  # too flat: miscalibrated
    cal = _fit_calibrator(z[:2000], y[:2000], "isotonic")
    assert cal.kind == "isotonic"
    p = cal(z[2000:])
    assert ece(p, y[2000:]) < 0.05 < ece(raw[2000:], y[2000:])
    assert np.all(np.diff(cal(np.sort(z))) >= -1e-12)  # monotone
    platt = _fit_calibrator(z[:2000], y[:2000], "platt")
    assert platt.kind == "platt" and platt.x[0] == pytest.approx(3.0, rel=0.25)
    assert _fit_calibrator(z[:50], y[:50], "auto").kind == "platt"
    with pytest.raises(ValueError, match="calibration: unknown"):
        _fit_calibrator(z, y, "beta")
    assert Calibrator("constant", y=np.array([0.3]))(np.zeros(2)).tolist() == [0.3, 0.3]


def test_success_model_learns_and_is_calibrated(trained):
    pred, _, test = trained
    r = evaluate_predictor(pred, test, SYNTHETIC_COSTS)
    assert r["mean_auroc"] > 0.75
    assert r["mean_ece"] < 0.12
    for o, v in r["options"].items():
        assert abs(v["mean_p"] - v["mean_score"]) < 0.12, o
    assert r["oracle_score"] >= r["best_single_score"]
    assert r["best_single_cost"] == SYNTHETIC_COSTS[r["routing"]["best_single"]]


def test_metric_functions():
    assert auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(0.75)
    assert auroc(np.array([0.1, 0.2]), np.array([1, 1])) is None
    assert ece(np.array([0.0, 1.0]), np.array([0.0, 1.0])) == 0.0


def test_quantile_calibration_of_integer_lengths():
    rng = np.random.default_rng(0)
    # Continuous-like outcomes: the true 0.9-quantile is calibrated, a p90 far above or below is not.
    y = rng.integers(0, 1000, 5000).astype(float)
    q = np.full_like(y, np.quantile(y, 0.9))
    cov, strict, ok = quantile_calibration(y, q, 0.9)
    assert abs(cov - 0.9) < 0.01 and ok
    assert not quantile_calibration(y, np.full_like(y, 999.0), 0.9)[2]  # over-reserves: strict ~1
    assert not quantile_calibration(y, np.full_like(y, 500.0), 0.9)[2]  # under-covers
    # A point mass (greedy length, or every length at the cap): q equal to it is the exact quantile.
    y = np.full(100, 51.0)
    assert quantile_calibration(y, y.copy(), 0.9) == (1.0, 0.0, True)
    assert quantile_calibration(y, y + 1, 0.9) == (1.0, 1.0, False)  # one token above every outcome
    assert quantile_calibration(y, y - 1, 0.9) == (0.0, 0.0, False)
    with pytest.raises(ValueError, match="quantile_calibration"):
        quantile_calibration(np.array([]), np.array([]), 0.9)


def test_predict_api_shapes_options_and_budget_cap(trained):
    pred, _, _ = trained
    pred.warm_up()
    est = pred.predict("Q: prove the lemma olympiad inequality ?")
    assert [e.option for e in est] == pred.options and all(isinstance(e, OptionEstimate) for e in est)
    assert all(0 < e.p_correct < 1 for e in est)
    capped = {e.option: e for e in est}["small@256"]
    assert capped.thinking_tokens_p90 is not None and capped.thinking_tokens_p90 <= 256
    assert capped.thinking_tokens_mean <= capped.thinking_tokens_p90
    sub = pred.predict("compute the sum", options=["large", "small"])
    assert [e.option for e in sub] == ["large", "small"]
    with pytest.raises(ValueError, match="unknown option 'huge'"):
        pred.predict("x", options=["huge"])
    batch = pred.predict_batch(["", b"\xff bad bytes", "simple trivia capital"])
    assert len(batch) == 3 and all(len(b) == 4 for b in batch)
    assert pred.predict_batch([]) == []
    # Harder prompts get a lower success estimate (the synthetic ground truth).
    easy = sum(e.p_correct for e in pred.predict("Q7: capital the simple river a of year 12 ?"))
    hard = sum(e.p_correct for e in pred.predict("Q7: prove olympiad the lemma a and of then the a of integer 12 ?"))
    assert hard < easy


def test_features_and_cheapest_head(trained):
    pred, _, _ = trained
    v = pred.features("What is 2 + 2?")
    assert v.ndim == 1 and v.shape == (pred.featurizer.parts[1].dim,) and np.isfinite(v).all()
    assert pred.featurizer.weights == [1.0, 0.05]
    choice, scores = pred.predict_cheapest("simple trivia capital")
    assert choice is None or choice in pred.options
    assert set(scores) <= set(pred.options) | {"<none>"}


def test_artifact_round_trip_and_errors(trained, tmp_path):
    pred, train, _ = trained
    path = save_predictor(pred, tmp_path / "sub" / "p.pkl")
    loaded = load_predictor(path)
    a = pred.predict_batch(["simple code python", "olympiad proof"])
    b = loaded.predict_batch(["simple code python", "olympiad proof"])
    assert a == b
    header = read_artifact_header(path)
    assert header["format_version"] == ARTIFACT_VERSION and header["data_sha256"] == train.data_hash()
    with pytest.raises(ArtifactError, match=r"missing\.pkl: file not found"):
        load_predictor(tmp_path / "missing.pkl")
    with open(path, "rb") as f:
        blob = pickle.load(f)
    blob["format_version"] = ARTIFACT_VERSION + 1
    old = tmp_path / "future.pkl"
    old.write_bytes(pickle.dumps(blob))
    with pytest.raises(ArtifactError, match=rf"future\.pkl: format version {ARTIFACT_VERSION + 1}, this thinkgate reads version {ARTIFACT_VERSION}"):
        load_predictor(old)
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"not a pickle")
    with pytest.raises(ArtifactError, match=r"junk\.pkl: cannot be read"):
        load_predictor(junk)


def test_rbf_kernel_and_bad_arguments():
    train = training_set_from_table(make_synthetic_table(120, seed=3))
    pred = train_predictor(train, "hashed", kernel="rbf", gamma=2.0)
    assert pred.kernel == "rbf" and pred.coef.shape == (120, 4)
    assert len(pred.predict("simple trivia")) == 4
    with pytest.raises(ValueError, match="kernel: unknown"):
        train_predictor(train, "hashed", kernel="poly")
    with pytest.raises(ValueError, match="alphas"):
        train_predictor(train, "hashed", alphas=[-1.0])
    with pytest.raises(ValueError, match="folds"):
        train_predictor(train, "hashed", folds=1)
    with pytest.raises(ValueError, match="kernel: rbf needs at most"):
        train_predictor(train, "hashed", kernel="rbf", max_dual=50)


def test_linear_rbf_blend_averages_calibrated_members(tmp_path):
    train = training_set_from_table(make_synthetic_table(120, seed=3))
    test = training_set_from_table(make_synthetic_table(40, seed=5))
    lin = train_predictor(train, "hashed+structural", kernel="linear")
    rbf = train_predictor(train, "hashed+structural", kernel="rbf", gamma=2.0)
    blend = train_predictor(train, "hashed+structural", kernel="linear+rbf", gamma=2.0)
    assert blend.metadata["kernel"] == "linear+rbf" and "linear+rbf" in repr(blend)
    P = lambda pr: np.array([[e.p_correct for e in row] for row in pr.predict_batch(test.prompts)])  # noqa: E731
    p_lin, p_rbf, p_blend = P(lin), P(rbf), P(blend)
    assert not np.allclose(p_lin, p_rbf)  # the members differ, so the average is a real blend
    np.testing.assert_allclose(p_blend, (p_lin + p_rbf) / 2, atol=1e-9)
    # Lengths and the cheapest head are the linear member's.
    e_lin, e_blend = lin.predict(test.prompts[0]), blend.predict(test.prompts[0])
    assert [e.thinking_tokens_p90 for e in e_blend] == [e.thinking_tokens_p90 for e in e_lin]
    # The blend survives the artifact round trip and shares one featurizer.
    path = tmp_path / "blend.tgp"
    save_predictor(blend, path)
    back = load_predictor(path)
    assert back.blend and back.blend[0].featurizer is back.featurizer
    np.testing.assert_allclose(P(back), p_blend, atol=1e-9)
    assert lin.blend == ()  # class default: plain artifacts carry no blend


def test_primal_path_and_soft_labels():
    recs = make_synthetic_records(80, samples=3, seed=4)  # 3 samples: fractional scores
    train = training_set_from_records(recs)
    assert np.any((train.scores > 0) & (train.scores < 1))
    pred = train_predictor(train, "hashed+structural", max_dual=10)  # forces the primal ridge path
    assert pred.metadata["chosen_alpha"] == [0.3]
    p = np.array([[e.p_correct for e in row] for row in pred.predict_batch(train.prompts[:20])])
    assert np.isfinite(p).all() and (p > 0).all() and (p < 1).all()


def test_costs_fall_back_to_the_model_price(trained):
    pred, _, test = trained
    r = evaluate_predictor(pred, test, {"small": 0.1, "large": 1.0})  # no per-budget entries
    assert r["best_single_cost"] in (0.1, 1.0)
    assert r["routing"]["sweep"] is not None


def test_training_costs_fall_back_to_the_model_price():
    from predictors.records import resolve_costs

    assert resolve_costs({"small": 0.1, "large@1024": 0.4}, ["small@256", "small", "large@1024", "large"]) == {
        "small@256": 0.1,
        "small": 0.1,
        "large@1024": 0.4,
    }
    train = training_set_from_table(make_synthetic_table(120, seed=5))
    train.costs = {}
    pred = train_predictor(train, "hashed+structural", option_costs={"small": 0.1, "large": 1.0})  # no per-budget entries
    assert pred.option_costs == {"small": 0.1, "large": 1.0, "small@256": 0.1, "large@1024": 1.0}
    # The cheapest-sufficient labels range over the budget options too (they tie with their model, cheaper first in order).
    assert pred.cheapest_classes is not None and {"small@256", "large@1024"} & set(pred.cheapest_classes)
