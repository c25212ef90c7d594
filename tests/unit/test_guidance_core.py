"""Pure tensor math of budget guidance (guidance.core) and its agreement with the trainer's features."""

from __future__ import annotations

import math

import pytest
import torch

from guidance import core
from guidance.vocab import prior_only_model

END = 2


def _model(vocab: int = 6) -> core.RemainingLengthModel:
    return prior_only_model(vocab)


def test_gamma_cdf_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    y = torch.tensor([0.0, 0.5, 2.0, 5.0, 9.0])
    a = torch.tensor([1.0, 2.5, 7.0, 30.0, 3.0])
    r = torch.tensor([1.0, 0.7, 3.0, 6.0, 0.5])
    got = core.gamma_cdf(y, a, r)
    want = [stats.gamma.cdf(float(yy), float(aa), scale=1 / float(rr)) for yy, aa, rr in zip(y, a, r, strict=True)]
    assert torch.allclose(got, torch.tensor(want, dtype=torch.float32), atol=1e-5)


def test_row_features_match_trainer_features():
    from predictors.remaining_length import FEATURES, features

    assert tuple(FEATURES) == core.FEATURES
    rows = [((30.0, 6.0), 0.0, 0.0), ((12.0, 3.0), 17.0, 2.0), ((400.0, 80.0), 300.0, 11.0)]
    x = core.row_features(torch.tensor([r[0][0] for r in rows]), torch.tensor([r[0][1] for r in rows]),
                          torch.tensor([r[1] for r in rows]), torch.tensor([r[2] for r in rows]))
    want = torch.tensor([features(p, n, li) for p, n, li in rows], dtype=torch.float32)
    assert torch.allclose(x, want, atol=1e-5)


def test_params_mean_is_mu():
    m = core.RemainingLengthModel(torch.tensor([2.0, 0.0]), torch.tensor([1.0, 0.0]),
                                  torch.tensor([0.0, 1.0, -50.0]), torch.tensor([0.0, 0.0, 0.0]))
    alpha, rate = m.params(torch.tensor([[1.0, 0.0]]))
    mean = alpha / rate
    sp = torch.nn.functional.softplus
    assert torch.allclose(mean[0, :2], sp(torch.tensor([2.0, 3.0])))
    assert mean[0, 2] == pytest.approx(1e-3)  # clamped, never 0
    assert (alpha >= 1).all()


def test_log_weights_end_token_free_and_monotone_in_budget():
    m = _model()
    x = core.row_features(torch.tensor([30.0, 30.0, 30.0]), torch.tensor([6.0, 6.0, 6.0]),
                          torch.tensor([10.0, 10.0, 10.0]), torch.tensor([2.0, 2.0, 2.0]))
    logw = core.guidance_log_weights(m, x, torch.tensor([2, 40, 4000]), END)
    assert logw.shape == (3, 6)
    assert (logw[:, END] == 0).all()
    assert (logw <= 0).all() and (logw >= core.LOG_W_FLOOR).all()
    others = [i for i in range(6) if i != END]
    # More budget left -> every continuation fits at least as well.
    assert (logw[0, others] <= logw[1, others]).all() and (logw[1, others] <= logw[2, others]).all()
    assert logw[0, others].max() < -3  # 2 tokens left vs ~140 expected: continuing is very unlikely
    assert logw[2, others].min() > -0.05  # 4000 left: almost no pressure


def test_guide_logits_is_the_product_rule_on_given_rows_only():
    m = _model()
    logits = torch.randn(3, 6)
    logits[1, 4] = float("-inf")
    before = logits.clone()
    rows = torch.tensor([1])
    x = core.row_features(torch.tensor([30.0]), torch.tensor([6.0]), torch.tensor([100.0]), torch.tensor([4.0]))
    left = torch.tensor([20])
    out = core.guide_logits(logits, rows, m, x, left, torch.tensor([1.0]), END)
    assert out is logits
    assert torch.equal(logits[0], before[0]) and torch.equal(logits[2], before[2])
    assert logits[1, 4] == float("-inf")
    w = core.guidance_log_weights(m, x, left, END).exp()[0]
    p = before[1].softmax(-1) * w
    assert torch.allclose(logits[1].softmax(-1), p / p.sum(), atol=1e-6)
    # Ending became relatively more likely than any continuation.
    assert logits[1].softmax(-1)[END] > before[1].softmax(-1)[END]


def test_strength_zero_is_identity_and_strength_scales():
    m = _model()
    x = core.row_features(torch.tensor([30.0]), torch.tensor([6.0]), torch.tensor([100.0]), torch.tensor([4.0]))
    base = torch.randn(1, 6)
    z = core.guide_logits(base.clone(), torch.tensor([0]), m, x, torch.tensor([10]), torch.tensor([0.0]), END)
    assert torch.equal(z, base)
    one = core.guide_logits(base.clone(), torch.tensor([0]), m, x, torch.tensor([10]), torch.tensor([1.0]), END)
    three = core.guide_logits(base.clone(), torch.tensor([0]), m, x, torch.tensor([10]), torch.tensor([3.0]), END)
    assert torch.allclose(three - base, 3 * (one - base), atol=1e-5)


def test_suppress_end():
    logits = torch.zeros(3, 6)
    core.suppress_end(logits, torch.tensor([0, 2]), END)
    assert logits[0, END] == -math.inf and logits[2, END] == -math.inf and logits[1, END] == 0
    assert torch.isfinite(logits[:, [0, 1, 3, 4, 5]]).all()


def test_artifact_round_trip_and_feature_check(tmp_path):
    art = {"features": list(core.FEATURES), "w_mu": [0.5] * len(core.FEATURES),
           "w_conc": [0.1] * len(core.FEATURES), "token_offsets": {"a": [1.5, -0.5], "</think>": [-2.0, 1.0]}}
    m = core.RemainingLengthModel.from_artifact(art, ["<pad>", "a", "</think>", "zz"])
    assert m.tok_mu.tolist() == [0.0, 1.5, -2.0, 0.0]
    assert m.tok_conc.tolist() == [0.0, -0.5, 1.0, 0.0]
    with pytest.raises(ValueError, match="features"):
        core.RemainingLengthModel.from_artifact({**art, "features": ["bias"]}, ["a"])


def test_shipped_artifact_predicts_testbed_traces_better_than_prior():
    import json

    from guidance.vocab import SHIPPED_ARTIFACT

    if not SHIPPED_ARTIFACT.is_file():
        pytest.skip("guidance/remaining_length.json not built (python -m predictors.remaining_length)")
    art = json.loads(SHIPPED_ARTIFACT.read_text())
    met = art["metrics_val"]
    assert met["nll"] < met["nll_prior_only"]
    assert 0.75 <= met["coverage_90"] <= 1.0


def test_row_features_list_matches_tensor_version():
    for a, r, n, li in [(30.0, 6.0, 0.0, 0.0), (12.0, 3.0, 17.0, 2.0), (400.0, 80.0, 300.0, 11.0)]:
        x = core.row_features(torch.tensor([a]), torch.tensor([r]), torch.tensor([n]), torch.tensor([li]))[0]
        assert torch.allclose(x, torch.tensor(core.row_features_list(a, r, n, li)), atol=1e-5)


def test_sparse_rule_gives_the_same_distribution_as_dense():
    gen = torch.Generator().manual_seed(1)
    vocab = 40
    tok_mu = torch.zeros(vocab)
    tok_conc = torch.zeros(vocab)
    tok_mu[[3, 7, 11]] = torch.tensor([1.0, -0.5, 2.0])
    tok_conc[[7, 20]] = torch.tensor([0.3, -1.0])
    m = core.RemainingLengthModel(torch.tensor([0.5, 0.1, 0.0, 0.2, 0.8, 0.1, 0.0]),
                                  torch.tensor([2.0, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0]), tok_mu, tok_conc)
    ids = m.guided_ids(END)
    assert ids.tolist() == [2, 3, 7, 11, 20]
    x = core.row_features(torch.tensor([30.0, 50.0, 9.0]), torch.tensor([6.0, 9.0, 2.0]),
                          torch.tensor([10.0, 80.0, 3.0]), torch.tensor([2.0, 9.0, 1.0]))
    logits = torch.randn(5, vocab, generator=gen)
    logits[4, 3] = float("-inf")
    rows = torch.tensor([0, 2, 4])
    args = (m, x, torch.tensor([5, 60, 1]), torch.tensor([1.0, 2.5, 0.7]), END)
    dense = core.guide_logits(logits.clone(), rows, *args)
    sparse = core.guide_logits(logits.clone(), rows, *args, table=m.sparse_table(END))
    assert torch.allclose(dense.softmax(-1), sparse.softmax(-1), atol=1e-6)
    assert not torch.allclose(dense.softmax(-1), logits.softmax(-1))
    changed = (sparse != logits).any(dim=0).nonzero().flatten().tolist()
    assert set(changed) <= set(ids.tolist())
    assert sparse[4, 3] == float("-inf")


def test_next_line_weight_uses_mean_line_length():
    # 40 tokens over 4 lines -> ~10-token lines: 30 left fits easily, 6 left does not.
    lw = core.next_line_log_weight(torch.tensor([40.0, 40.0, 40.0]), torch.tensor([4.0, 4.0, 4.0]),
                                   torch.tensor([30, 12, 6]))
    assert lw[0] > -0.01 and lw[2] < -3 and lw[0] >= lw[1] >= lw[2]
    # Before two lines exist the default line length applies.
    early = core.next_line_log_weight(torch.tensor([1.0, 1.0]), torch.tensor([1.0, 1.0]), torch.tensor([60, 8]))
    assert early[0] > -0.01 and early[1] < -3
    logits = torch.zeros(2, 6)
    core.guide_logits_line(logits, torch.tensor([1]), torch.tensor([40.0]), torch.tensor([4.0]),
                           torch.tensor([6]), torch.tensor([1.0]), END)
    assert logits[1, END] > 3 and (logits[0] == 0).all() and (logits[1, [0, 1, 3, 4, 5]] == 0).all()


def test_traces_are_split_into_the_testbed_tokenizers_tokens():
    from predictors.remaining_length import DEFAULT_TOKENIZER, task_traces, token_splitter

    split = token_splitter(DEFAULT_TOKENIZER)
    assert split("a6 0+6=6\nb:15\n") == ["a6", " ", "0", "+", "6", "=", "6", "\n", "b", ":", "1", "5", "\n"]
    assert token_splitter(None)("a6\n") == ["a", "6", "\n"]
    traces = task_traces(4, "val", 0, DEFAULT_TOKENIZER)
    assert len(traces) == 12  # 4 problems x 3 styles
    first = [toks[1] for _, toks in traces]  # toks[0] is the prompt's "\n"
    # concise lines start with a bare label, step and careful with a label+digit token
    assert [len(t) for t in first] == [1, 2, 2] * 4
    assert all(toks[-1] == "</think>" for _, toks in traces)


def test_shipped_artifact_tells_the_short_style_from_the_long_one_at_the_first_line():
    import json

    from guidance.vocab import SHIPPED_ARTIFACT

    if not SHIPPED_ARTIFACT.is_file():
        pytest.skip("guidance/remaining_length.json not built (python -m predictors.remaining_length)")
    art = json.loads(SHIPPED_ARTIFACT.read_text())
    texts = ["<pad>", "</think>", "a", "a6"]
    m = core.RemainingLengthModel.from_artifact(art, texts)
    # prior of a difficulty-6 problem: total ~65 thinking tokens, first line start (n=1, one line)
    prior = (math.log(66.0) ** 2 / 0.04, math.log(66.0) / 0.04)
    x = core.row_features(torch.tensor([prior[0]]), torch.tensor([prior[1]]), torch.tensor([1.0]),
                          torch.tensor([1.0]))
    alpha, rate = m.params(x)
    mean_log_rem = (alpha / rate)[0]
    assert mean_log_rem[2] < mean_log_rem[3] - 0.3  # "a" (concise) expects a clearly shorter remainder
    # the concise start fits a 40-token budget far more often than the step start
    cdf = core.gamma_cdf(torch.full((4,), math.log1p(39.0)), alpha[0], rate[0])
    assert cdf[2] > 0.5 > cdf[3]


def test_sparse_table_shares_cdf_columns_between_equal_offsets_exactly():
    vocab = 30
    tok_mu = torch.zeros(vocab)
    tok_conc = torch.zeros(vocab)
    tok_mu[[3, 4, 5, 9]] = torch.tensor([-0.4, -0.4, -0.4, 1.2])  # 3-5 tied, like a1..a9
    tok_conc[[3, 4, 5, 9, 12]] = torch.tensor([0.1, 0.1, 0.1, -0.3, 0.5])
    m = core.RemainingLengthModel(torch.tensor([0.5, 0.1, 0.0, 0.2, 0.8, 0.1, 0.0]),
                                  torch.tensor([2.0, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0]), tok_mu, tok_conc)
    table = m.sparse_table(END)
    assert table.ids.tolist() == [2, 3, 4, 5, 9, 12]
    assert table.t_mu.shape == (1, 4)  # offset-free (also END's), the tied trio, 9, 12
    assert table.t_mu[0, 0] == 0 and table.t_conc[0, 0] == 0
    assert table.col.tolist()[1] == table.col.tolist()[2] == table.col.tolist()[3]
    x = core.row_features(torch.tensor([30.0, 9.0]), torch.tensor([6.0, 2.0]), torch.tensor([10.0, 3.0]),
                          torch.tensor([2.0, 1.0]))
    logits = torch.randn(3, vocab, generator=torch.Generator().manual_seed(2))
    args = (m, x, torch.tensor([5, 60]), torch.tensor([1.0, 0.7]), END)
    dense = core.guide_logits(logits.clone(), torch.tensor([0, 2]), *args)
    sparse = core.guide_logits(logits.clone(), torch.tensor([0, 2]), *args, table=table)
    assert torch.allclose(dense.softmax(-1), sparse.softmax(-1), atol=1e-6)
