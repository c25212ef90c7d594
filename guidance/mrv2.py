"""The Model Runner V2 adapter (what vLLM 0.32 uses on GPUs), over :mod:`guidance.core`.

Per-slot state lives in device tensors so ``apply`` needs no device sync:

* ``add_request`` stages a slot's arguments on the host (slots are recycled
  with no removal callback, so every field is overwritten);
* ``apply_staged_writes`` copies them to the device and rescans the slot's
  committed tokens (prompt, or prompt + partial output after preemption)
  for the last ``<think>``/``</think>``;
* ``apply`` advances the counters from ``ctx.input_ids``/``ctx.pos`` (the
  token fed at each row is the one sampled last step) and guides rows at line
  starts. The Gamma CDF is computed for every row of a batch holding a
  guided request and masked, which avoids a ``nonzero`` sync; batches with
  no guided request return at once (host-side check).

Under speculative decoding a request owns several rows; counters then advance
only from rows at ``expanded_local_pos == 0`` (approximate for drafts).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from guidance import core
from guidance.params import MODES, parse_extra_args
from guidance.vocab import Vocab, load_model, vocab_from_config

__all__ = ["GuidanceMRV2"]

_MODE_CODE = {m: i for i, m in enumerate(MODES)}


class GuidanceMRV2:
    """MRV2 adapter body (methods named as in ``vllm.v1.worker.gpu.sample.logits_processor.LogitsProcessor``).

    ``req_states`` needs ``device``, ``max_num_reqs``, ``all_token_ids``
    (tensor-like ``[max_num_reqs, max_model_len]``, read through ``.gpu`` when
    present) and ``prefill_len`` (with a ``.np`` host view).
    """

    def __init__(self, vocab: Vocab, model: core.RemainingLengthModel, req_states: Any) -> None:
        self.vocab = vocab
        self.req_states = req_states
        self.device = torch.device(req_states.device)
        self.model = model.to(self.device)
        self.newline = vocab.newline.to(self.device)
        self.table = self.model.sparse_table(max(vocab.end_id, 0))
        n = req_states.max_num_reqs
        dev = self.device
        # Per-slot arguments (host staging + device copies).
        self.h_budget = np.full(n, -1, dtype=np.int64)  # -1: slot not ours
        self.h_mode = np.zeros(n, dtype=np.int64)
        self.h_strength = np.zeros(n, dtype=np.float32)
        self.h_prior = np.ones((n, 2), dtype=np.float32)
        self.h_horizon = np.zeros(n, dtype=np.int64)
        self.budget = torch.full((n,), -1, dtype=torch.int64, device=dev)
        self.mode = torch.zeros(n, dtype=torch.int64, device=dev)
        self.strength = torch.zeros(n, dtype=torch.float32, device=dev)
        self.prior = torch.ones((n, 2), dtype=torch.float32, device=dev)
        self.horizon = torch.zeros(n, dtype=torch.int64, device=dev)
        # Per-slot progress (device only).
        self.start_pos = torch.full((n,), -1, dtype=torch.int64, device=dev)
        self.done = torch.zeros(n, dtype=torch.bool, device=dev)
        self.lines = torch.zeros(n, dtype=torch.int64, device=dev)
        self.nl_pos = torch.full((n,), -1, dtype=torch.int64, device=dev)  # last newline (or <think>) position
        self.last_line = torch.zeros(n, dtype=torch.int64, device=dev)  # length of the last completed line
        self.last_pos = torch.full((n,), -1, dtype=torch.int64, device=dev)
        self._pending: set[int] = set()

    @classmethod
    def from_vllm(cls, vllm_config: Any, req_states: Any) -> GuidanceMRV2:
        """Build from a vLLM config and the runner's ``LogitsProcRequestState``."""
        vocab = vocab_from_config(vllm_config)
        return cls(vocab, load_model(vocab, req_states.device), req_states)

    def add_request(self, req_idx: int, sampling_params: Any) -> bool:
        """Stage slot ``req_idx``; return whether guidance modifies this request."""
        args = parse_extra_args(getattr(sampling_params, "extra_args", None)) if self.vocab.enabled else None
        if args is None or not args.active:
            self.h_budget[req_idx] = -1
        else:
            self.h_budget[req_idx] = args.budget
            self.h_mode[req_idx] = _MODE_CODE[args.mode]
            self.h_strength[req_idx] = args.strength
            self.h_prior[req_idx] = (args.prior_alpha, args.prior_rate)
            self.h_horizon[req_idx] = args.horizon
        self._pending.add(req_idx)
        return bool(self.h_budget[req_idx] >= 0)

    def _tokens(self) -> torch.Tensor:
        t = self.req_states.all_token_ids
        return getattr(t, "gpu", t)

    def apply_staged_writes(self) -> None:
        """Copy staged slots to the device and locate thinking markers in their committed tokens."""
        if not self._pending:
            return
        slots = sorted(self._pending)
        self._pending.clear()
        idx = torch.tensor(slots, dtype=torch.int64, device=self.device)
        self.budget[idx] = torch.from_numpy(self.h_budget[slots]).to(self.device)
        self.mode[idx] = torch.from_numpy(self.h_mode[slots]).to(self.device)
        self.strength[idx] = torch.from_numpy(self.h_strength[slots]).to(self.device)
        self.prior[idx] = torch.from_numpy(self.h_prior[slots]).to(self.device)
        self.horizon[idx] = torch.from_numpy(self.h_horizon[slots]).to(self.device)
        prefill = self.req_states.prefill_len.np[slots].astype(np.int64)
        width = int(prefill.max()) if len(slots) else 0
        toks = self._tokens()[idx, :width].long()
        ar = torch.arange(width, device=self.device)
        valid = ar[None, :] < torch.from_numpy(prefill).to(self.device)[:, None]
        last_start = torch.where(valid & (toks == self.vocab.start_id), ar, -1).max(dim=1).values
        last_end = torch.where(valid & (toks == self.vocab.end_id), ar, -1).max(dim=1).values
        open_ = last_start > last_end
        inside = valid & (ar[None, :] > last_start[:, None]) & open_[:, None]
        self.start_pos[idx] = torch.where(open_, last_start, -1)
        self.done[idx] = last_end > last_start
        nl = inside & self.newline[toks.clamp(min=0)]
        self.lines[idx] = nl.sum(dim=1)
        last_nl = torch.where(nl, ar, -1).max(dim=1).values
        prev_nl = torch.where(nl & (ar[None, :] < last_nl[:, None]), ar, last_start[:, None]).max(dim=1).values
        has_nl = last_nl >= 0
        self.nl_pos[idx] = torch.where(has_nl, last_nl, last_start)
        self.last_line[idx] = torch.where(has_nl, last_nl - prev_nl, 0)
        # The last prefill token is fed again as the first decode row's input: do not count it twice.
        self.last_pos[idx] = torch.from_numpy(prefill - 1).to(self.device)

    def apply(self, logits: torch.Tensor, ctx: Any) -> torch.Tensor:
        """Advance counters from this step's inputs and reweight guided rows in place."""
        if not (self.h_budget[ctx.idx_mapping_np] >= 0).any():
            return logits  # no guided request in this batch: no device work at all
        s = ctx.expanded_idx_mapping.long()
        tok = ctx.input_ids.long()
        pos = ctx.pos.long()
        on = self.budget[s] >= 0
        head = ctx.expanded_local_pos == 0
        fresh = on & head & (pos > self.last_pos[s])
        vs, ve = self.vocab.start_id, self.vocab.end_id
        start_pos = torch.where(fresh & (tok == vs), pos, self.start_pos[s])
        opened = start_pos >= 0
        done = self.done[s] | (fresh & opened & (tok == ve) & (pos > start_pos))
        is_nl = self.newline[tok.clamp(0, self.newline.numel() - 1)]
        new_line = fresh & opened & ~done & is_nl & (pos > start_pos)
        lines = self.lines[s] + new_line.long()
        began = fresh & (tok == vs)
        nl_pos = torch.where(began, pos, self.nl_pos[s])
        last_line = torch.where(new_line, pos - nl_pos, torch.where(began, 0, self.last_line[s]))
        nl_pos = torch.where(new_line, pos, nl_pos)
        self.start_pos[s] = start_pos
        self.done[s] = done
        self.lines[s] = lines
        self.nl_pos[s] = nl_pos
        self.last_line[s] = last_line
        self.last_pos[s] = torch.where(fresh, pos, self.last_pos[s])
        live = on & opened & ~done
        n = (pos - start_pos).clamp(min=0)
        budget = self.budget[s]
        mode = self.mode[s]
        line_start = is_nl | (tok == vs)
        soft = live & line_start & ((mode == _MODE_CODE["soft"]) | (mode == _MODE_CODE["soft+hard"]))
        by_line = self.horizon[s] == 1
        guided = soft & ~by_line
        prior = self.prior[s]
        feats = core.row_features(prior[:, 0], prior[:, 1], n, lines)
        # Only the guided ids move (the common weight cancels in the softmax, see core.guide_logits);
        # rows not guided this step get a zero delta, so no sync is needed to select rows.
        base, logw = core.sparse_log_weights(self.model, feats, budget - n, self.table)
        delta = torch.where(guided[:, None], self.strength[s][:, None] * (logw - base), 0.0)
        logits[:, self.table.ids] += delta
        line_logw = core.next_line_log_weight(n, lines, budget - n, last_line)
        logits[:, ve] -= torch.where(soft & by_line, self.strength[s] * line_logw, 0.0)
        extend = live & (mode == _MODE_CODE["extend"]) & (n < budget)
        logits[:, ve] = torch.where(extend, float("-inf"), logits[:, ve])
        return logits
