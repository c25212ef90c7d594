"""Train a testbed reasoning model from scratch on CPU (Qwen2 architecture, HF format).

Recipe (one run = one model, seeded):

* data: problems of the ``train`` split of :mod:`testbed.tasks`, difficulties
  uniform; each is rendered in a random style (concise / step / careful), and
  a share of examples has its thinking cut at a random character and closed
  with ``</think>`` (forced end of thinking), including the empty-thinking
  mode (cut at 0); the answer after ``</think>`` is always the true one, so
  the model learns its best guess from whatever thinking it has;
* loss on the assistant part only (the prompt's digits are not predictable);
* AdamW, linear warm-up then cosine decay, bf16 autocast (fp32 master
  weights; Sapphire Rapids' AMX makes bf16 matmuls several times faster),
  batches of roughly ``--tokens-per-batch`` tokens grouped by length.

Usage (the exact commands of the shipped models are in ``recipe.json`` next
to their weights)::

    nice -n 10 python -m testbed.train --size small --out testbed/models/tg-small --minutes 14
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

from testbed import tasks

__all__ = ["SIZES", "MixConfig", "build_model", "make_example", "main", "train"]

#: Model sizes: hidden size, layers, attention heads (head_dim = hidden / heads), MLP width.
SIZES: dict[str, dict[str, int]] = {
    "small": {"hidden_size": 128, "num_hidden_layers": 3, "num_attention_heads": 4, "intermediate_size": 384},
    "large": {"hidden_size": 192, "num_hidden_layers": 4, "num_attention_heads": 6, "intermediate_size": 576},
}
MAX_POSITIONS = 1024


class MixConfig:
    """How training examples are drawn (shares are probabilities per example)."""

    def __init__(
        self,
        style_weights: tuple[float, float, float] = (0.3, 0.55, 0.15),
        p_empty: float = 0.07,
        p_cut: float = 0.15,
    ) -> None:
        if len(style_weights) != len(tasks.STYLES) or min(style_weights) < 0:
            raise ValueError(f"style_weights: need {len(tasks.STYLES)} non-negative weights")
        if not (0 <= p_empty and 0 <= p_cut and p_empty + p_cut <= 1):
            raise ValueError("p_empty, p_cut: must be >= 0 and sum to <= 1")
        self.style_weights = style_weights
        self.p_empty = p_empty
        self.p_cut = p_cut

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (recorded in recipe.json)."""
        return {"style_weights": list(self.style_weights), "p_empty": self.p_empty, "p_cut": self.p_cut}


def make_example(problem: tasks.Problem, rng: random.Random, mix: MixConfig) -> tuple[str, str]:
    """Return (prompt text incl. the ``<think>\\n`` generation prompt, completion text) for one problem."""
    from testbed.tokenizer import CHAT_TEMPLATE  # noqa: F401  (the prompt below mirrors it)

    prompt = f"<|im_start|>user\n{problem.text}<|im_end|>\n<|im_start|>assistant\n<think>\n"
    style = rng.choices(tasks.STYLES, weights=mix.style_weights)[0]
    u = rng.random()
    if u < mix.p_empty:
        cut: int | None = 0
    elif u < mix.p_empty + mix.p_cut:
        cut = rng.randint(0, len(tasks.render_thinking(problem, style)))
    else:
        cut = None
    return prompt, tasks.render_completion(problem, style, cut)


def _draw_train_problem(rng: random.Random, max_difficulty: int | None = None) -> tasks.Problem:
    choices = tasks.DIFFICULTIES if max_difficulty is None else [d for d in tasks.DIFFICULTIES if d <= max_difficulty]
    d = rng.choice(choices)
    while True:
        p = tasks.make_problem(d, rng)
        if tasks.split_of(p) == "train":
            return p


def build_model(size: str, vocab_size: int, pad_id: int, eos_id: int, seed: int) -> Any:
    """A freshly initialised ``Qwen2ForCausalLM`` of the named size (fp32, tied embeddings)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    if size not in SIZES:
        raise ValueError(f"size: unknown {size!r}, available: {', '.join(SIZES)}")
    torch.manual_seed(seed)
    dims = SIZES[size]
    config = Qwen2Config(
        vocab_size=vocab_size,
        num_key_value_heads=dims["num_attention_heads"],
        max_position_embeddings=MAX_POSITIONS,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        pad_token_id=pad_id,
        eos_token_id=eos_id,
        bos_token_id=None,
        use_sliding_window=False,
        torch_dtype="float32",
        **dims,
    )
    return Qwen2ForCausalLM(config)


def _batches(rng: random.Random, tok: Any, mix: MixConfig, tokens_per_batch: int, pool: int,
             state: dict[str, Any] | None = None) -> Any:
    """Yield (input_ids, labels, attention_mask) tensors forever, grouped by length to limit padding."""
    import torch

    while True:
        max_d = None if state is None else state.get("max_difficulty")
        pairs = [make_example(_draw_train_problem(rng, max_d), rng, mix) for _ in range(pool)]
        enc_p = tok([p for p, _ in pairs], add_special_tokens=False)["input_ids"]
        enc_c = tok([c for _, c in pairs], add_special_tokens=False)["input_ids"]
        seqs = [(p + c, len(p)) for p, c in zip(enc_p, enc_c, strict=True)]
        seqs.sort(key=lambda s: len(s[0]))
        groups: list[list[tuple[list[int], int]]] = []
        cur: list[tuple[list[int], int]] = []
        for s in seqs:
            # Sorted ascending, so the newest sequence is the longest in the group.
            if cur and (len(cur) + 1) * len(s[0]) > tokens_per_batch:
                groups.append(cur)
                cur = []
            cur.append(s)
        if cur:
            groups.append(cur)
        rng.shuffle(groups)
        for g in groups:
            width = max(len(s) for s, _ in g)
            ids = torch.full((len(g), width), tok.pad_token_id, dtype=torch.long)
            labels = torch.full((len(g), width), -100, dtype=torch.long)
            mask = torch.zeros((len(g), width), dtype=torch.long)
            for i, (s, plen) in enumerate(g):
                ids[i, : len(s)] = torch.tensor(s)
                labels[i, plen : len(s)] = torch.tensor(s[plen:])
                mask[i, : len(s)] = 1
            yield ids, labels, mask


def train(
    size: str,
    out: Path,
    steps: int | None = None,
    minutes: float | None = None,
    replay: list[float] | None = None,
    seed: int = 0,
    lr: float = 3e-3,
    tokens_per_batch: int = 8192,
    warmup: int = 100,
    threads: int = 2,
    max_minutes: float = 30.0,
    mix: MixConfig | None = None,
    bf16: bool = False,
    init_from: Path | None = None,
    command: str = "",
    curriculum: float = 0.0,
) -> dict[str, Any]:
    """Train one model and save it (safetensors, config, generation config, tokenizer, recipe.json) to ``out``.

    The learning-rate schedule (linear warm-up over ``warmup`` steps, then cosine
    to 10%) runs on a progress variable in [0, 1]: ``step / steps`` with
    ``steps``, elapsed wall time / ``minutes`` with ``minutes`` (so a run on a
    busy shared CPU still completes its schedule in time), or the per-step
    progress list ``replay`` recorded in a previous recipe.json (which
    reproduces a time-budgeted run step for step). Training ends when progress
    reaches 1 or ``max_minutes`` pass. ``curriculum`` > 0: over that fraction of
    the schedule the largest difficulty drawn rises linearly from 3 to the
    task's maximum (short problems first), uniform over all difficulties after.
    Returns the recipe dict.
    """
    import torch
    from transformers import GenerationConfig

    from testbed.tokenizer import build_tokenizer, save_tokenizer

    if sum(x is not None for x in (steps, minutes, replay)) != 1:
        raise ValueError("give exactly one of --steps, --minutes, --replay")
    if steps is not None and steps < 1:
        raise ValueError(f"--steps: must be >= 1, got {steps}")
    if minutes is not None and minutes <= 0:
        raise ValueError(f"--minutes: must be > 0, got {minutes}")
    if not 0.0 <= curriculum < 1.0:
        raise ValueError(f"--curriculum: must be in [0, 1), got {curriculum}")
    mix = mix or MixConfig()
    torch.set_num_threads(threads)
    random.seed(seed)
    rng = random.Random(seed)
    tok = build_tokenizer()
    previous: dict[str, Any] | None = None
    if init_from is None:
        model = build_model(size, len(tok), tok.pad_token_id, tok.eos_token_id, seed)
    else:
        # Second stage: continue from a saved model of the same size (its recipe is kept in ours).
        from transformers import Qwen2ForCausalLM

        previous = json.loads((init_from / "recipe.json").read_text())
        if previous.get("size") != size:
            raise ValueError(f"--init-from: {init_from} is size {previous.get('size')!r}, not {size!r}")
        model = Qwen2ForCausalLM.from_pretrained(str(init_from), dtype=torch.float32)
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr,
        betas=(0.9, 0.98),
    )

    def lr_at(step: int, progress: float) -> float:
        if step < warmup:
            return lr * (step + 1) / warmup
        return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))

    def progress_at(step: int, elapsed: float) -> float:
        if replay is not None:
            return replay[step] if step < len(replay) else 1.0
        if steps is not None:
            return step / steps
        assert minutes is not None
        return elapsed / (minutes * 60)

    top = tasks.DIFFICULTIES[-1]
    state: dict[str, Any] = {"max_difficulty": 3 if curriculum > 0 else None}
    batches = _batches(rng, tok, mix, tokens_per_batch, pool=512, state=state)
    model.train()
    t0 = time.time()
    done = 0
    ema = None
    log: list[dict[str, float]] = []
    trace: list[float] = []
    step = 0
    while True:
        progress = round(progress_at(step, time.time() - t0), 5)
        if progress >= 1.0:
            break
        trace.append(progress)
        if curriculum > 0:
            state["max_difficulty"] = min(top, 3 + int((top - 3) * progress / curriculum)) if progress < curriculum else None
        for group in opt.param_groups:
            group["lr"] = lr_at(step, progress)
        ids, labels, mask = next(batches)
        # bf16 pays off from ~256 wide (AMX); below that the casts cost more than they save.
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        done = step + 1
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        elapsed = time.time() - t0
        if step % 50 == 0:
            log.append({"step": done, "loss": round(ema, 4), "minutes": round(elapsed / 60, 2)})
            lr_now = opt.param_groups[0]["lr"]
            print(
                f"step {done} progress {progress:.3f} loss {ema:.4f} lr {lr_now:.2e} {elapsed / 60:.1f} min",
                flush=True,
            )
        step += 1
        if elapsed > max_minutes * 60:
            print(f"stopping at step {done}: --max-minutes {max_minutes} reached", flush=True)
            break
    minutes = (time.time() - t0) / 60
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    GenerationConfig(
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, do_sample=False, max_new_tokens=768
    ).save_pretrained(str(out))
    save_tokenizer(tok, out)
    recipe = {
        "command": command,
        "size": size,
        "dims": SIZES[size],
        "parameters": n_params,
        "seed": seed,
        "steps_planned": steps,
        "minutes_planned": minutes,
        "steps_done": done,
        "lr": lr,
        "warmup": warmup,
        "tokens_per_batch": tokens_per_batch,
        "threads": threads,
        "mix": mix.as_dict(),
        "bf16_autocast": bf16,
        "curriculum": curriculum,
        "train_minutes": round(minutes, 2),
        "final_loss_ema": round(ema or float("nan"), 4),
        "torch": torch.__version__,
        "init_from": previous,
        "log": log,
        # Progress of the lr schedule at every step: `--replay recipe.json` reruns it exactly.
        "progress_trace": trace,
    }
    (out / "recipe.json").write_text(json.dumps(recipe, indent=2) + "\n")
    return recipe


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: ``python -m testbed.train --size small --out DIR --steps N``."""
    ap = argparse.ArgumentParser(prog="python -m testbed.train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", required=True, choices=sorted(SIZES))
    ap.add_argument("--out", required=True, type=Path, help="output model folder")
    budget = ap.add_mutually_exclusive_group(required=True)
    budget.add_argument("--steps", type=int, help="fixed number of optimizer steps")
    budget.add_argument(
        "--minutes", type=float, help="wall-time budget; the lr schedule follows elapsed time"
    )
    budget.add_argument(
        "--replay", type=Path, help="recipe.json of a previous run: replay its schedule exactly"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--tokens-per-batch", type=int, default=8192)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (at most 2 on the shared box)")
    ap.add_argument(
        "--bf16", action="store_true", help="bf16 autocast (faster for the large size on AMX CPUs)"
    )
    ap.add_argument("--init-from", type=Path, help="continue from this model folder (a second training stage)")
    ap.add_argument("--max-minutes", type=float, default=30.0, help="wall-time cap")
    ap.add_argument("--curriculum", type=float, default=0.0,
                    help="fraction of the schedule over which the largest difficulty rises from 3 to the maximum")
    args = ap.parse_args(argv)
    if args.threads < 1:
        ap.error("--threads: must be >= 1")
    if args.tokens_per_batch < 1024:
        ap.error("--tokens-per-batch: must be >= 1024 (the longest example is ~700 tokens)")
    command = "python -m testbed.train " + " ".join(sys.argv[1:] if argv is None else argv)
    replay = None
    if args.replay is not None:
        try:
            replay = json.loads(args.replay.read_text())["progress_trace"]
        except (OSError, ValueError, KeyError) as exc:
            ap.error(f"--replay: cannot read progress_trace from {args.replay}: {exc}")
    recipe = train(
        args.size,
        args.out,
        steps=args.steps,
        minutes=args.minutes,
        replay=replay,
        seed=args.seed,
        lr=args.lr,
        tokens_per_batch=args.tokens_per_batch,
        warmup=args.warmup,
        threads=args.threads,
        max_minutes=args.max_minutes,
        bf16=args.bf16, init_from=args.init_from,
        command=command, curriculum=args.curriculum,
    )
    print(json.dumps({k: v for k, v in recipe.items() if k != "log"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
