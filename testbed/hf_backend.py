"""Greedy generation with a thinking budget in plain transformers (no vLLM needed).

Mirrors vLLM 0.32's ``thinking_token_budget`` as measured against a live CPU
server with these models: vLLM counts every token after the last ``<think>``,
prompt included, so the ``\\n`` that ends our generation prompt
(``<think>\\n``) is the first counted token and the model may emit ``B - 1``
thinking tokens before ``</think>`` is forced (``B = 0`` and ``B = 1`` force it
first); decoding then goes on to the answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["PROMPT_THINKING_TOKENS", "Generation", "HFGenerator"]

#: Thinking tokens vLLM counts in our generation prompt (the ``\\n`` after ``<think>``).
PROMPT_THINKING_TOKENS = 1


@dataclass(frozen=True)
class Generation:
    """One completion split at the first ``</think>``."""

    reasoning: str
    content: str
    thinking_tokens: int
    completion_tokens: int
    forced: bool


class HFGenerator:
    """Loads a testbed model folder once and decodes batches greedily on CPU."""

    def __init__(self, model_dir: Path, threads: int = 1) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(threads)
        self.tok = AutoTokenizer.from_pretrained(str(model_dir))
        self.tok.padding_side = "left"
        self.model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
        self.model.eval()
        self.end_id = self.tok.convert_tokens_to_ids("</think>")
        self.eos_id = self.tok.eos_token_id

    def prompt(self, question: str) -> str:
        """The chat prompt (ending in ``<think>\\n``) for one user question."""
        text: str = self.tok.apply_chat_template(
            [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
        )
        return text

    def generate(
        self, questions: list[str], budget: int | None, max_new_tokens: int = 768, batch_size: int = 64
    ) -> list[Generation]:
        """Greedy completions for ``questions``; ``budget=None`` means unlimited thinking."""
        if budget is not None and budget < 0:
            raise ValueError(f"budget: must be >= 0 or None, got {budget}")
        out: list[Generation] = []
        for i in range(0, len(questions), batch_size):
            out.extend(self._generate_batch(questions[i : i + batch_size], budget, max_new_tokens))
        return out

    def _generate_batch(self, questions: list[str], budget: int | None, max_new_tokens: int) -> list[Generation]:
        import torch
        from transformers import LogitsProcessor, LogitsProcessorList

        enc = self.tok([self.prompt(q) for q in questions], return_tensors="pt", padding=True,
                       add_special_tokens=False)
        plen = enc["input_ids"].shape[1]
        end_id = self.end_id

        class ForceEnd(LogitsProcessor):
            # Rows that produced `budget` tokens without `</think>` get `</think>` forced.
            def __call__(self, input_ids: Any, scores: Any) -> Any:
                if budget is None:
                    return scores
                gen = input_ids[:, plen:]
                closed = (gen == end_id).any(dim=1)
                force = (~closed) & (gen.shape[1] + PROMPT_THINKING_TOKENS >= budget)
                if force.any():
                    scores[force] = float("-inf")
                    scores[force, end_id] = 0.0
                return scores

        with torch.no_grad():
            seqs = self.model.generate(
                **enc, do_sample=False, max_new_tokens=max_new_tokens,
                logits_processor=LogitsProcessorList([ForceEnd()]),
                eos_token_id=self.eos_id, pad_token_id=self.tok.pad_token_id,
            )
        results = []
        for row in seqs[:, plen:].tolist():
            if self.eos_id in row:
                row = row[: row.index(self.eos_id)]
            row = [t for t in row if t != self.tok.pad_token_id]
            if end_id in row:
                k = row.index(end_id)
                think, answer = row[:k], row[k + 1 :]
                forced = budget is not None and k + PROMPT_THINKING_TOKENS >= budget
            else:
                think, answer, forced = row, [], False
            results.append(Generation(
                reasoning=self.tok.decode(think), content=self.tok.decode(answer),
                thinking_tokens=len(think), completion_tokens=len(row), forced=forced,
            ))
        return results
