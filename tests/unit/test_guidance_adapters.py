"""The V1 and MRV2 adapters on CPU tensors: counting, line starts, modes, batch moves, and V1 == MRV2."""

from __future__ import annotations

import enum
from types import SimpleNamespace

import numpy as np
import torch

from guidance.mrv2 import GuidanceMRV2
from guidance.v1 import GuidanceV1, ThinkingTracker
from guidance.vocab import prior_only_model, vocab_from_texts

TEXTS = ["<pad>", "<think>", "</think>", "\n", "a", "b", "1", "=", " ", "x\n", "<|im_end|>"]
START, END, NL, A, B, ONE, EQ, SP, XNL, EOS = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
V = len(TEXTS)
VOCAB = vocab_from_texts(TEXTS, START, END)
PROMPT = [4, 5, START, NL]  # "...<think>\n" as the chat templates write it


class Dir(enum.Enum):
    UNIDIRECTIONAL = 1
    SWAP = 2


def sp(**xargs):
    return SimpleNamespace(extra_args=xargs or None)


def batch(added=(), removed=(), moved=()):
    return SimpleNamespace(added=list(added), removed=list(removed), moved=list(moved))


def v1() -> GuidanceV1:
    return GuidanceV1(VOCAB, prior_only_model(V), "cpu")


def test_tracker_counts_from_prompt_think():
    from guidance.params import parse_extra_args

    a = parse_extra_args({"think_budget": 10})
    out: list[int] = []
    t = ThinkingTracker.start(a, PROMPT, out, VOCAB, VOCAB.newline.tolist())
    assert (t.open, t.n, t.lines, t.line_start) == (True, 1, 1, True)  # the prompt's "\n" counts, as in vLLM
    out += [A, EQ, ONE]
    t.advance(VOCAB)
    assert (t.n, t.lines, t.line_start) == (4, 1, False)
    out += [XNL]
    t.advance(VOCAB)
    assert (t.n, t.lines, t.line_start) == (5, 2, True)
    out += [-1]  # async placeholder: not consumed yet
    t.advance(VOCAB)
    assert t.seen == 4
    out[-1] = END
    t.advance(VOCAB)
    assert t.done and t.n == 6 and not t.line_start
    # Model that opens thinking itself; prompt closed thinking already -> done.
    out2 = [SP, START, B]
    t2 = ThinkingTracker.start(a, [A], out2, VOCAB, VOCAB.newline.tolist())
    t2.advance(VOCAB)
    assert t2.open and t2.n == 1
    t3 = ThinkingTracker.start(a, [START, A, END], [], VOCAB, VOCAB.newline.tolist())
    assert t3.done


def test_v1_guides_only_its_rows_at_line_starts():
    g = v1()
    outs = [[], [], []]
    g.update_state(batch(added=[(0, sp(think_budget=3), PROMPT, outs[0]),
                                (1, sp(), PROMPT, outs[1]),
                                (2, sp(think_budget=3, think_mode=0), PROMPT, outs[2])]))
    assert set(g.reqs) == {0}  # no xargs and hard mode are not tracked
    logits = torch.zeros(3, V)
    g.apply(logits)
    assert torch.equal(logits[1:], torch.zeros(2, V))
    # 2 tokens left at a line start: ending becomes far more likely than any continuation.
    assert (logits[0, END] - logits[0, [A, B, ONE]] > 1).all()
    # Mid-line: untouched.
    outs[0].append(A)
    logits = torch.zeros(3, V)
    g.apply(logits)
    assert torch.equal(logits, torch.zeros(3, V))
    # After </think>: untouched for good.
    outs[0] += [NL, END, NL]
    g.apply(torch.zeros(3, V))
    logits = torch.zeros(3, V)
    g.apply(logits)
    assert torch.equal(logits, torch.zeros(3, V))


def test_v1_batch_moves_follow_vllm_semantics():
    g = v1()
    g.update_state(batch(added=[(0, sp(think_budget=5), PROMPT, []), (1, sp(think_budget=7), PROMPT, [])]))
    g.update_state(batch(moved=[(0, 1, Dir.SWAP)]))
    assert g.reqs[0].args.budget == 7 and g.reqs[1].args.budget == 5
    g.update_state(batch(moved=[(1, 0, Dir.UNIDIRECTIONAL)]))
    assert set(g.reqs) == {0} and g.reqs[0].args.budget == 5
    g.update_state(batch(removed=[0]))
    assert g.reqs == {}
    g.update_state(batch(added=[(0, sp(think_budget=5), PROMPT, [])]))
    g.update_state(batch(added=[(0, sp(), PROMPT, [])]))  # slot reused by an untracked request
    assert g.reqs == {}
    g.update_state(None)


def test_v1_extend_suppresses_end_until_minimum():
    g = v1()
    out: list[int] = []
    g.update_state(batch(added=[(0, sp(think_budget=4, think_mode="extend"), PROMPT, out)]))
    for step in range(6):
        logits = torch.zeros(1, V)
        g.apply(logits)
        n = 1 + step
        assert (logits[0, END] == float("-inf")) == (n < 4), step
        assert torch.isfinite(logits[0, [A, NL]]).all()
        out.append(A)


def test_v1_soft_pressure_grows_as_budget_runs_out():
    g = v1()
    out: list[int] = []
    g.update_state(batch(added=[(0, sp(think_budget=60, think_prior_alpha=50.0, think_prior_rate=10.0),
                                 PROMPT, out)]))
    gaps = []
    for _ in range(5):
        logits = torch.zeros(1, V)
        g.apply(logits)
        gaps.append(float(logits[0, END] - logits[0, A]))
        out += [A, EQ, ONE, SP, B, EQ, ONE, SP, A, NL]  # one 10-token line
    assert all(b >= a for a, b in zip(gaps, gaps[1:], strict=False)) and gaps[-1] > gaps[0] + 1


class StubReqStates:
    """The parts of vLLM's LogitsProcRequestState the MRV2 adapter reads, on CPU."""

    def __init__(self, max_num_reqs: int = 4, max_len: int = 64) -> None:
        self.device = torch.device("cpu")
        self.max_num_reqs = max_num_reqs
        self.vocab_size = V
        self.all_token_ids = torch.zeros(max_num_reqs, max_len, dtype=torch.int32)
        self.prefill_len = SimpleNamespace(np=np.zeros(max_num_reqs, dtype=np.int32))

    def fill(self, slot: int, tokens: list[int]) -> None:
        self.all_token_ids[slot, : len(tokens)] = torch.tensor(tokens)
        self.prefill_len.np[slot] = len(tokens)


def ctx_for(rows: list[tuple[int, int, int]]):
    """rows: (slot, input token, position)."""
    slots = torch.tensor([r[0] for r in rows])
    return SimpleNamespace(expanded_idx_mapping=slots, idx_mapping=slots, idx_mapping_np=slots.numpy(),
                           expanded_local_pos=torch.zeros(len(rows), dtype=torch.int64),
                           input_ids=torch.tensor([r[1] for r in rows]), pos=torch.tensor([r[2] for r in rows]),
                           seq_lens_upper_bound_np=np.array([r[2] + 1 for r in rows]))


def run_both(requests: list[tuple[dict, list[int], list[int]]], seed: int = 0):
    """Decode the given (xargs, prompt, forced continuation) requests through both adapters step by step."""
    gen = torch.Generator().manual_seed(seed)
    a = v1()
    rs = StubReqStates(max_num_reqs=6)
    b = GuidanceMRV2(VOCAB, prior_only_model(V), rs)
    outs: list[list[int]] = [[] for _ in requests]
    adds = []
    for i, (x, prompt, _) in enumerate(requests):
        adds.append((i, sp(**x), prompt, outs[i]))
        rs.fill(i, prompt)
        b.add_request(i, sp(**x))
    a.update_state(batch(added=adds))
    b.apply_staged_writes()
    steps = max(len(c) for _, _, c in requests)
    for t in range(steps + 1):
        logits = torch.randn(len(requests), V, generator=gen)
        la, lb = a.apply(logits.clone()), None
        rows = []
        for i, (_, prompt, _) in enumerate(requests):
            seq = prompt + outs[i]
            rows.append((i, seq[-1], len(seq) - 1))
        lb = b.apply(logits.clone(), ctx_for(rows))
        yield t, logits, la, lb
        for i, (_, _, cont) in enumerate(requests):
            if t < len(cont):
                outs[i].append(cont[t])


def test_mrv2_matches_v1_step_by_step():
    line = [A, EQ, ONE, SP, B, NL]
    reqs = [({"think_budget": 14, "think_strength": 2.0}, PROMPT, line * 3 + [END, ONE, EOS]),
            ({}, PROMPT, line * 3),
            ({"think_budget": 9, "think_mode": "extend"}, PROMPT, line * 2 + [END]),
            ({"think_budget": 20, "think_mode": 2, "think_prior_alpha": 50.0, "think_prior_rate": 20.0},
             [A, B, EQ], [SP, START, A, XNL, B, NL, END]),
            ({"think_budget": 16, "think_horizon": 1, "think_strength": 3.0}, PROMPT, line * 4 + [END])]
    changed = 0
    for t, raw, la, lb in run_both(reqs):
        assert torch.allclose(la, lb, atol=1e-5, equal_nan=True), t
        changed += int(not torch.equal(la, raw))
        assert torch.equal(la[1], raw[1])  # the request without xargs is never touched
    assert changed >= 5


def test_mrv2_slot_reuse_and_preemption_resume():
    rs = StubReqStates()
    b = GuidanceMRV2(VOCAB, prior_only_model(V), rs)
    rs.fill(0, PROMPT + [A, NL, A, NL])  # resumed after preemption: 5 thinking tokens, 3 lines
    assert b.add_request(0, sp(think_budget=6))
    b.apply_staged_writes()
    assert int(b.start_pos[0]) == 2 and int(b.lines[0]) == 3 and not bool(b.done[0])
    logits = torch.zeros(1, V)
    b.apply(logits, ctx_for([(0, NL, 7)]))
    assert (logits[0, A] < logits[0, END]).item()
    # Slot recycled for a request without xargs: untouched, and no device work (host check).
    rs.fill(0, [A, B])
    assert not b.add_request(0, sp())
    b.apply_staged_writes()
    logits = torch.zeros(1, V)
    b.apply(logits, ctx_for([(0, B, 1)]))
    assert torch.equal(logits, torch.zeros(1, V))
    # Thinking closed in the prompt: done.
    rs.fill(1, [START, A, END, B])
    b.add_request(1, sp(think_budget=2))
    b.apply_staged_writes()
    assert bool(b.done[1])


def test_line_horizon_continues_while_the_next_line_fits():
    g = v1()
    out: list[int] = []
    g.update_state(batch(added=[(0, sp(think_budget=30, think_horizon=1, think_strength=1.0), PROMPT, out)]))
    gaps = []
    line = [A, EQ, ONE, SP, B, NL]  # 6-token lines
    for _ in range(4):
        out += line
        logits = torch.zeros(1, V)
        g.apply(logits)
        gaps.append(float(logits[0, END] - logits[0, A]))
    # n = 7, 13, 19, 25 of 30: the next 6-token line fits the first three times, not the last.
    assert max(gaps[:3]) < 0.5 and gaps[3] > 1 and gaps == sorted(gaps)


def test_tracker_keeps_the_last_line_length():
    from guidance.params import parse_extra_args

    a = parse_extra_args({"think_budget": 40, "think_horizon": 1})
    out: list[int] = []
    t = ThinkingTracker.start(a, PROMPT, out, VOCAB, VOCAB.newline.tolist())
    assert t.last_line == 1  # the prompt's "\n" right after <think> is a one-token line
    out += [A, EQ, NL]
    t.advance(VOCAB)
    assert (t.last_line, t.lines) == (3, 2)
    out += [A, EQ, ONE, SP, B, NL]
    t.advance(VOCAB)
    assert (t.last_line, t.lines, t.n) == (6, 3, 10)
    # Resumed from a prompt that already holds lines (preemption): the same numbers.
    t2 = ThinkingTracker.start(a, PROMPT + out, [], VOCAB, VOCAB.newline.tolist())
    assert (t2.last_line, t2.lines, t2.n) == (6, 3, 10)


def test_line_horizon_follows_growing_lines():
    """Lines that grow (4, 8, 12 tokens): the next-line estimate follows the last line, not the mean."""
    g = v1()
    out: list[int] = []
    g.update_state(batch(added=[(0, sp(think_budget=34, think_horizon=1, think_strength=1.0), PROMPT, out)]))
    for k in (3, 7, 11):
        out += [A] * k + [NL]
    logits = torch.zeros(1, V)
    g.apply(logits)
    # n = 1 + 4 + 8 + 12 = 25, 9 left: a 12-token line does not fit; the mean line (25 / 4 ~ 6 tokens) would.
    from guidance import core

    mean_only = -float(core.next_line_log_weight(torch.tensor([25.0]), torch.tensor([4.0]), torch.tensor([9])))
    assert float(logits[0, END] - logits[0, A]) > 1.2 > 0.5 > mean_only


def test_mrv2_matches_v1_with_growing_lines_and_resume():
    lines = [A, NL] + [A, A, A, NL] + [A] * 7 + [NL] + [A] * 9 + [NL] + [END]
    reqs = [({"think_budget": 30, "think_horizon": 1, "think_strength": 2.0}, PROMPT, lines),
            ({"think_budget": 24, "think_horizon": 1, "think_strength": 1.0}, PROMPT + [A, A, NL, A, NL], lines)]
    changed = 0
    for t, raw, la, lb in run_both(reqs):
        assert torch.allclose(la, lb, atol=1e-5, equal_nan=True), t
        changed += int(not torch.equal(la, raw))
    assert changed >= 2
