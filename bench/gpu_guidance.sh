#!/usr/bin/env bash
# Guidance plugin checks for a machine with an NVIDIA GPU and the GPU `vllm==0.32.*` package
# (Model Runner V2, Triton). Prepared on a CPU-only box and NOT yet run there. Budget: < 10 min.
#
#   bash bench/gpu_guidance.sh            # from the repository root; results under ${OUT:-/tmp/gpu-guidance}
#
# Steps (each prints PASS/FAIL; the script exits non-zero if any failed):
#  1. MRV2 adapter on CUDA tensors == the same adapter on CPU (guidance.mrv2, stubbed request state).
#  2. The plugin's integration suite against a vLLM GPU server (MRV2 is the default runner there):
#     tests/integration/test_guidance_vllm.py (tiny random model built locally, no download).
#  3. The native wrap-up phrase on MRV2: a model that ends thinking by itself before the budget must not
#     get the phrase injected into its answer (the V1 pitfall described in notes/decode-time.md).
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/gpu-guidance}"
mkdir -p "$OUT"
PY="${PYTHON:-python}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fail=0

if ! "$PY" -c "import torch, vllm; assert torch.cuda.is_available(); print('vllm', vllm.__version__, torch.cuda.get_device_name())"; then
  echo "SKIP: needs torch with CUDA and the GPU vllm package (pip install 'vllm==0.32.*')"; exit 2
fi

echo "== 1. MRV2 adapter, CUDA vs CPU"
timeout 120 "$PY" - <<'EOF' > "$OUT/mrv2_cuda.txt" 2>&1 && echo PASS || { echo FAIL; fail=1; }
import numpy as np, torch
from types import SimpleNamespace
from guidance.mrv2 import GuidanceMRV2
from guidance.vocab import prior_only_model, vocab_from_texts
texts = ["<pad>", "<think>", "</think>", "\n", "a", "b", "1", "=", " "]
vocab = vocab_from_texts(texts, 1, 2)
def make(dev):
    rs = SimpleNamespace(device=torch.device(dev), max_num_reqs=4, vocab_size=len(texts),
                         all_token_ids=torch.zeros(4, 64, dtype=torch.int32, device=dev),
                         prefill_len=SimpleNamespace(np=np.zeros(4, dtype=np.int32)))
    return rs, GuidanceMRV2(vocab, prior_only_model(len(texts)), rs)
prompt = [4, 5, 1, 3]
cont = [4, 7, 6, 8, 5, 3] * 4 + [2]
res = {}
for dev in ("cpu", "cuda"):
    rs, g = make(dev)
    for slot, x in enumerate(({"think_budget": 14, "think_strength": 2.0}, {}, {"think_budget": 9, "think_mode": 3})):
        rs.all_token_ids[slot, :4] = torch.tensor(prompt, device=dev); rs.prefill_len.np[slot] = 4
        g.add_request(slot, SimpleNamespace(extra_args=x or None))
    g.apply_staged_writes()
    gen = torch.Generator().manual_seed(0); outs = []
    seq = list(prompt)
    for t in range(len(cont)):
        logits = torch.randn(3, len(texts), generator=gen).to(dev)
        slots = torch.tensor([0, 1, 2], device=dev)
        ctx = SimpleNamespace(expanded_idx_mapping=slots, idx_mapping=slots, idx_mapping_np=np.array([0, 1, 2]),
                              expanded_local_pos=torch.zeros(3, dtype=torch.int64, device=dev),
                              input_ids=torch.tensor([seq[-1]] * 3, device=dev),
                              pos=torch.tensor([len(seq) - 1] * 3, device=dev), seq_lens_upper_bound_np=None)
        outs.append(g.apply(logits, ctx).cpu()); seq.append(cont[t])
    res[dev] = torch.stack(outs)
assert torch.allclose(res["cpu"], res["cuda"], atol=1e-4, equal_nan=True), (res["cpu"] - res["cuda"]).abs().max()
print("mrv2 cuda == cpu over", len(cont), "steps")
EOF

echo "== 2. integration suite on a GPU vLLM server (MRV2)"
timeout 420 "$PY" -m pytest -x -q tests/integration/test_guidance_vllm.py > "$OUT/integration.txt" 2>&1 \
  && echo PASS || { echo FAIL; fail=1; tail -n 30 "$OUT/integration.txt"; }

echo "== 3. wrap-up phrase on MRV2: natural end before the budget gets no injected phrase"
timeout 300 "$PY" reports/guidance/wrapup_check.py > "$OUT/wrapup.txt" 2>&1 \
  && echo PASS || { echo FAIL; fail=1; tail -n 30 "$OUT/wrapup.txt"; }

echo "results in $OUT"; exit $fail
