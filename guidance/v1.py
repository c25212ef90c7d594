"""The legacy V1 logits-processor adapter (what vLLM CPU 0.32 runs), over :mod:`guidance.core`.

State lives per persistent-batch row in a dict updated by ``update_state``
(removed, then added, then moved, as vLLM's contract orders them). Token
counting happens in ``apply``: vLLM hands processors a *live reference* to
each request's output list, and with async scheduling the newest entries
are placeholders until just before sampling, so ``update_state`` must not
count (see the V1 interface notes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from guidance import core
from guidance.params import GuidanceArgs, parse_extra_args
from guidance.vocab import Vocab, load_model, vocab_from_config

__all__ = ["GuidanceV1", "ThinkingTracker"]


@dataclass
class ThinkingTracker:
    """Where one request stands in its thinking, advanced one token at a time.

    ``n`` counts tokens after ``<think>`` (prompt included, as vLLM's native
    budget does); ``lines`` counts newline tokens among them; ``last_line`` is
    the length of the last completed line (its newline included, 0 before the
    first one); ``line_start`` is true right after ``<think>`` or a newline token.
    """

    args: GuidanceArgs
    output: list[int]
    seen: int = 0
    open: bool = False
    done: bool = False
    n: int = 0
    lines: int = 0
    last_line: int = 0
    cur_line: int = 0
    line_start: bool = False
    newline: list[bool] = field(default_factory=list, repr=False)

    @classmethod
    def start(cls, args: GuidanceArgs, prompt: list[int] | None, output: list[int], vocab: Vocab,
              newline: list[bool]) -> ThinkingTracker:
        """Scan the prompt for the last ``<think>``/``</think>``; keep ``output`` (live) for :meth:`advance`."""
        t = cls(args, output, newline=newline)
        prompt = prompt or []
        last_start = max((i for i, x in enumerate(prompt) if x == vocab.start_id), default=-1)
        last_end = max((i for i, x in enumerate(prompt) if x == vocab.end_id), default=-1)
        if last_start > last_end:
            inside = prompt[last_start + 1:]
            t.open = True
            for x in inside:  # n, lines and line lengths as if decoded
                t._count(x)
            t.line_start = not inside or t._is_nl(inside[-1])
        elif last_end >= 0:
            t.done = True  # thinking already closed in the prompt: the answer is not ours to steer
        return t

    def _is_nl(self, tok: int) -> bool:
        return 0 <= tok < len(self.newline) and self.newline[tok]

    def _count(self, tok: int) -> bool:
        """Count one thinking token (not ``</think>``); return whether it ends a line."""
        self.n += 1
        self.cur_line += 1
        nl = self._is_nl(tok)
        if nl:
            self.lines += 1
            self.last_line, self.cur_line = self.cur_line, 0
        return nl

    def advance(self, vocab: Vocab) -> None:
        """Consume output tokens not yet seen (normally one per step)."""
        out = self.output
        while self.seen < len(out):
            tok = out[self.seen]
            if tok < 0:  # async placeholder: not yet known, look again next step
                return
            self.seen += 1
            if self.done:
                continue
            if not self.open:
                if tok == vocab.start_id:
                    self.open, self.line_start = True, True
                    self.n = self.lines = self.last_line = self.cur_line = 0
                continue
            if tok == vocab.end_id:
                self.n += 1
                self.done, self.line_start = True, False
                continue
            self.line_start = self._count(tok)


class GuidanceV1:
    """V1 adapter body (methods named as in ``vllm.v1.sample.logits_processor.LogitsProcessor``).

    Kept free of vLLM base classes so it can be unit-tested with a
    :class:`guidance.vocab.Vocab` built from plain strings; the plugin class
    in :mod:`guidance.plugin` wires it into vLLM.
    """

    def __init__(self, vocab: Vocab, model: core.RemainingLengthModel, device: torch.device | str) -> None:
        self.vocab = vocab
        self.model = model
        self.device = torch.device(device)
        self.newline = vocab.newline.tolist()
        self.table = model.to(self.device).sparse_table(vocab.end_id) if vocab.enabled else None
        self.reqs: dict[int, ThinkingTracker] = {}

    @classmethod
    def from_vllm(cls, vllm_config: Any, device: torch.device) -> GuidanceV1:
        """Build from a vLLM config: tokenizer vocab, markers, remaining-length artifact."""
        vocab = vocab_from_config(vllm_config)
        return cls(vocab, load_model(vocab, device), device)

    def _new(self, params: Any, prompt: list[int] | None, output: list[int]) -> ThinkingTracker | None:
        if not self.vocab.enabled:
            return None
        args = parse_extra_args(getattr(params, "extra_args", None))
        if args is None or not args.active:
            return None
        return ThinkingTracker.start(args, prompt, output, self.vocab, self.newline)

    def update_state(self, batch_update: Any) -> None:
        """Apply vLLM's ``BatchUpdate`` (removed, added, moved); ``None`` means no change."""
        if batch_update is None:
            return
        for index in batch_update.removed:
            self.reqs.pop(index, None)
        for index, params, prompt, output in batch_update.added:
            tracker = self._new(params, prompt, output)
            if tracker is None:
                self.reqs.pop(index, None)
            else:
                self.reqs[index] = tracker
        for a, b, direction in batch_update.moved:
            ta, tb = self.reqs.pop(a, None), self.reqs.pop(b, None)
            if ta is not None:
                self.reqs[b] = ta
            # SWAP puts b's request at a; a one-way move overwrites b and leaves a empty.
            if tb is not None and getattr(direction, "name", str(direction)) == "SWAP":
                self.reqs[a] = tb

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        """Advance trackers, then guide line-start rows and suppress early ends (``extend``) in place."""
        if not self.reqs:
            return logits  # the common no-op: no request in the batch asked for guidance
        guided: list[int] = []
        # One list of numbers per guided row, turned into ONE tensor: per-step host->tensor
        # conversions dominate the cost on CPU.
        nums: list[list[float]] = []
        extend: list[int] = []
        line_rows: list[int] = []
        line_nums: list[list[float]] = []
        for row, t in self.reqs.items():
            t.advance(self.vocab)
            if not t.open or t.done or row >= logits.shape[0]:
                continue
            a = t.args
            if a.mode == "extend":
                if t.n < a.budget:
                    extend.append(row)
            elif t.line_start and a.horizon == 1:
                line_rows.append(row)
                line_nums.append([t.n, t.lines, a.budget - t.n, a.strength, t.last_line])
            elif t.line_start:
                guided.append(row)
                nums.append([*core.row_features_list(a.prior_alpha, a.prior_rate, t.n, t.lines),
                             a.budget - t.n, a.strength])
        if guided:
            f = torch.tensor(nums, dtype=torch.float32, device=self.device)
            nf = len(core.FEATURES)
            core.guide_logits(logits, torch.tensor(guided, device=logits.device), self.model, f[:, :nf], f[:, nf],
                              f[:, nf + 1], self.vocab.end_id, self.table)
        if line_rows:
            f = torch.tensor(line_nums, dtype=torch.float32, device=self.device)
            core.guide_logits_line(logits, torch.tensor(line_rows, device=logits.device), f[:, 0], f[:, 1], f[:, 2],
                                   f[:, 3], self.vocab.end_id, f[:, 4])
        if extend:
            core.suppress_end(logits, torch.tensor(extend, device=logits.device), self.vocab.end_id)
        return logits
