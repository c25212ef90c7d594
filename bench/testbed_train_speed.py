"""Training-step throughput of a testbed size: fp32 against bf16 autocast, side by side in one run.

Builds a fresh model of the size, draws batches exactly as ``testbed.train``
does, and times ``--steps`` optimizer steps (after 5 warm-up steps) for every
configuration of threads x batch tokens, fp32 then bf16 autocast:

    python bench/testbed_train_speed.py --size large [--threads 1] [--tokens 2048,8192] [--json]

Prints steps/min and trained tokens/s per configuration; with ``--json`` the
last line is one JSON object with those rows and ``bf16_speedup`` per
(threads, tokens), bf16 steps/min divided by fp32 steps/min.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def measure(size: str, threads: int, bf16: bool, tokens: int, steps: int) -> dict[str, float]:
    """Steps/min and tokens/s of ``steps`` timed optimizer steps of a fresh model."""
    import torch

    from testbed.tokenizer import build_tokenizer
    from testbed.train import MixConfig, _batches, build_model

    torch.set_num_threads(threads)
    tok = build_tokenizer()
    model = build_model(size, len(tok), tok.pad_token_id, tok.eos_token_id, 0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batches = _batches(random.Random(0), tok, MixConfig(), tokens, pool=512)
    n_tok, t0 = 0, 0.0
    for i in range(5 + steps):
        ids, labels, mask = next(batches)
        if i == 5:
            n_tok, t0 = 0, time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 5:
            n_tok += int(mask.sum())
    dt = time.perf_counter() - t0
    return {"steps_per_min": round(steps / dt * 60, 1), "tokens_per_s": round(n_tok / dt)}


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="large", choices=("small", "large"))
    ap.add_argument("--threads", default="1", help="comma-separated torch thread counts (default: 1)")
    ap.add_argument("--tokens", default="2048,8192", help="comma-separated batch sizes in tokens")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per configuration (default: 20)")
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    a = ap.parse_args(argv)
    try:
        threads = [int(x) for x in a.threads.split(",")]
        tokens = [int(x) for x in a.tokens.split(",")]
    except ValueError:
        ap.error("--threads/--tokens: comma-separated integers")
    if a.steps < 1 or min(threads) < 1 or min(tokens) < 1024:
        ap.error("--steps >= 1, --threads >= 1, --tokens >= 1024")
    rows, speedup, load0 = [], {}, os.getloadavg()[0]
    for t in threads:
        for n in tokens:
            pair = {}
            for bf16 in (False, True):
                r = {"threads": t, "tokens": n, "bf16": bf16, **measure(a.size, t, bf16, n, a.steps)}
                pair[bf16] = r["steps_per_min"]
                rows.append(r)
                print(f"{a.size} threads={t} tokens={n} {'bf16' if bf16 else 'fp32'}: "
                      f"{r['steps_per_min']} steps/min, {r['tokens_per_s']} tokens/s", flush=True)
            speedup[f"{t}x{n}"] = round(pair[True] / pair[False], 3)
    if a.json:
        print(json.dumps({"size": a.size, "loadavg_start": load0, "loadavg_end": os.getloadavg()[0], "rows": rows,
                          "bf16_speedup": speedup}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
