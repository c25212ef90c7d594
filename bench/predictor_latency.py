"""Predictor latency: all options of one query, and a batch of 64 GSM8K-length questions.

Trains small predictors (synthetic outcome table with 9 options; latency does
not depend on what was learned) with the ``hashed+structural`` featurizer and
with ``minilm8`` / ``minilm`` (+hashed+structural), then times
``Predictor.predict`` on distinct GSM8K questions, so every MiniLM call is a
cache miss. Also checks the ONNX Runtime embeddings against sentence-transformers
on torch when that is installed (max abs difference, min cosine).

    python bench/predictor_latency.py [--n 200] [--threads 2] [--json]

With ``--json`` the last line is one JSON object with ``hashed_p50_ms``,
``minilm_p50_ms``, ``minilm_batch64_ms``: ``minilm`` there is the served fast
path, featurizer ``minilm8`` (int8 graph). The fp32 graph is reported as
``minilm_fp32_*``. ``*_cpu_ms`` are the process CPU times of the same calls
(all threads): on a shared machine they move much less with other jobs' load
than wall time. ``loadavg_start`` / ``loadavg_end`` are the 1-minute load
averages around the run. ``torch_*`` when sentence-transformers is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _questions(n: int) -> list[str]:
    data = Path(os.environ.get("THINKGATE_SHARED_DATA", ROOT / ".." / "shared" / "data")) / "gsm8k_test.jsonl"
    if data.is_file():
        qs = [json.loads(line)["question"] for line in data.read_text().splitlines() if line.strip()]
        return qs[:n]
    # Fallback: GSM8K-like length (~45 words) without the data set.
    return [f"Janet has {i} ducks that lay {i % 7 + 3} eggs per day. She eats three for breakfast every morning and bakes "
            f"muffins for her friends every day with {i % 5 + 2}. She sells the remainder at the farmers' market daily "
            f"for ${i % 4 + 2} per fresh duck egg. How much in dollars does she make every day at the market?" for i in range(n)]


def _predictor(featurizer: str):  # -> Predictor
    from predictors.records import OutcomeRow
    from predictors.synthetic import make_synthetic_table
    from predictors.train import train_predictor, training_set_from_table

    rows = make_synthetic_table(150, seed=0)
    # Nine options, as in the llmrouter data, reusing the four synthetic outcome columns.
    wide = [OutcomeRow(r.prompt, {f"opt{j}": list(r.scores.values())[j % 4] for j in range(9)}) for r in rows]
    return train_predictor(training_set_from_table(wide), featurizer)


def _time(fn, reps: int, cpu: list[float] | None = None) -> list[float]:
    """Wall milliseconds of ``fn(i)`` for ``i < reps``; process CPU milliseconds appended to ``cpu``."""
    out = []
    for i in range(reps):
        t, c = time.perf_counter(), time.process_time()
        fn(i)
        out.append((time.perf_counter() - t) * 1000)
        if cpu is not None:
            cpu.append((time.process_time() - c) * 1000)
    return out


def _p50(xs: list[float]) -> float:
    return round(statistics.median(xs), 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="single-query timings per featurizer")
    ap.add_argument("--batches", type=int, default=5, help="timed batches of 64")
    ap.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: default)")
    ap.add_argument("--skip-torch", action="store_true", help="skip the sentence-transformers comparison")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.threads:
        os.environ["THINKGATE_ORT_THREADS"] = str(args.threads)
    qs = _questions(args.n + 64 * (args.batches + 1) + 10)
    res: dict[str, float | str | None] = {"cpus": os.cpu_count(), "n_options": 9, "loadavg_start": os.getloadavg()[0]}

    hashed = _predictor("hashed+structural")
    hashed.predict(qs[0])
    res["hashed_p50_ms"] = _p50(_time(lambda i: hashed.predict(qs[i]), args.n))

    for name, key in (("minilm8", "minilm"), ("minilm", "minilm_fp32")):
        pred = _predictor(f"{name}+hashed+structural")
        emb = pred.featurizer.parts[0]
        pred.predict("warm up")
        pred.predict_batch(qs[-10:])
        cpu1: list[float] = []
        single = _time(lambda i, p=pred: p.predict(qs[10 + i]), args.n, cpu1)  # distinct: cache misses
        base = 10 + args.n

        def batch(i: int, p=pred, e=emb, base=base) -> None:
            e._cache.clear()
            p.predict_batch(qs[base + 64 * i : base + 64 * (i + 1)])

        cpu64: list[float] = []
        res[f"{key}_p50_ms"] = _p50(single)
        res[f"{key}_p50_cpu_ms"] = _p50(cpu1)
        res[f"{key}_batch64_ms"] = _p50(_time(batch, args.batches, cpu64))
        res[f"{key}_batch64_cpu_ms"] = _p50(cpu64)

    if not args.skip_torch:
        res.update(_torch_check(qs[:64]))
    res["loadavg_end"] = os.getloadavg()[0]
    rows = [(k, v) for k, v in res.items()]
    print(f"{'metric':<28} value")
    for k, v in rows:
        print(f"{k:<28} {v}")
    if args.json:
        print(json.dumps(res))


def _torch_check(qs: list[str]) -> dict[str, float | str | None]:
    """Agreement and speed of the torch reference (sentence-transformers), if installed."""
    try:
        import numpy as np
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        return {"torch_check": f"skipped: {exc.name} not installed"}
    from predictors.featurizers import clean_text
    from predictors.minilm import MiniLMEncoder, model_dir

    torch.set_num_threads(int(os.environ.get("THINKGATE_ORT_THREADS", "0")) or min(os.cpu_count() or 1, 4))
    st = SentenceTransformer(str(model_dir()), device="cpu")
    texts = [clean_text(q) for q in qs]
    ref = st.encode(texts, normalize_embeddings=True, batch_size=32)
    out: dict[str, float | str | None] = {}
    for int8 in (False, True):
        got = MiniLMEncoder(int8=int8).encode(texts)
        tag = "int8" if int8 else "fp32"
        out[f"{tag}_max_abs_diff"] = float(np.abs(got - ref).max())
        out[f"{tag}_min_cosine"] = float((got * ref).sum(axis=1).min())
    out["torch_p50_ms"] = _p50(_time(lambda i: st.encode([texts[i % len(texts)]]), 30))
    out["torch_batch64_ms"] = _p50(_time(lambda i: st.encode(texts), 3))
    return out


if __name__ == "__main__":
    main()
