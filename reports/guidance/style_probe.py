"""Force each worked-solution style by prefilling its first line; greedy accuracy and thinking length.

Runs the testbed model with transformers on CPU (no vLLM), 96 test-split
problems of difficulties 3-10 (seed 5), ``max_new_tokens`` 400:

    HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 python reports/guidance/style_probe.py tg-small
    HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 python reports/guidance/style_probe.py tg-large
    HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 python reports/guidance/style_probe.py /path/to/a/model/folder
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from testbed import tasks  # noqa: E402


def prefix(p: tasks.Problem, style: str) -> str:
    """The start of the first thinking line in ``style`` ('' lets the model choose)."""
    lab, v = p.labels[0], p.terms[0]
    return {"free": "", "concise": f"{lab}:", "step": f"{lab}{v} 0+{v}=", "careful": f"{lab}{v} 0+{v}:"}[style]


def main(name: str) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    # A shipped model's name, or a model folder (e.g. a training run's --out folder).
    mdir = Path(name) if Path(name).is_dir() else Path(__file__).resolve().parents[2] / "testbed" / "models" / name
    tok = AutoTokenizer.from_pretrained(mdir)
    model = AutoModelForCausalLM.from_pretrained(mdir, dtype=torch.float32).eval()
    probs = tasks.sample_problems(96, "test", seed=5, difficulties=list(range(3, 11)))
    end = tok.convert_tokens_to_ids("</think>")
    for style in ("free", "concise", "step", "careful"):
        prompts = [tok.apply_chat_template([{"role": "user", "content": p.text}], tokenize=False,
                                           add_generation_prompt=True) + prefix(p, style) for p in probs]
        rows = []
        for i in range(0, len(prompts), 32):
            enc = tok(prompts[i:i + 32], return_tensors="pt", padding=True)
            with torch.no_grad():
                out = model.generate(**enc, max_new_tokens=400, do_sample=False, pad_token_id=0,
                                     eos_token_id=tok.eos_token_id)
            for j, seq in enumerate(out):
                gen = seq[enc["input_ids"].shape[1]:].tolist()
                text = tok.decode(gen, skip_special_tokens=False)
                n_think = gen.index(end) + 1 if end in gen else len(gen)
                rows.append((probs[i + j].difficulty, tasks.grade(probs[i + j], text.split("</think>")[-1]), n_think))
        by_third = collections.defaultdict(list)
        for d, ok, _ in rows:
            by_third[(d - 1) // 4].append(ok)
        print(f"{name} {style}: accuracy {sum(r[1] for r in rows) / len(rows):.3f}, "
              f"mean thinking {sum(r[2] for r in rows) / len(rows):.1f}, by third "
              f"{ {k: round(sum(v) / len(v), 2) for k, v in sorted(by_third.items())} }", flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tg-small")
