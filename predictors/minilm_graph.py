"""The all-MiniLM-L6-v2 encoder written as an ONNX graph with ONNX Runtime's fused CPU operators.

Same arithmetic as sentence-transformers (BERT encoder, 6 layers, 384 hidden,
12 heads, exact erf GELU, post-LayerNorm; then mean pooling over real tokens and
L2 normalisation), but expressed with the ``com.microsoft`` contrib operators
that ONNX Runtime's CPU provider implements as single kernels:

* ``EmbedLayerNormalization``: word + position (+ token type 0, folded into the
  position table) embedding lookup, LayerNorm, and the per-row token count;
* ``Attention``: one fused Q/K/V projection (``[384, 1152]`` weight), scaled
  dot-product attention over the first ``count`` keys of each row (right
  padding), all heads in one kernel;
* ``BiasGelu``: bias add + exact GELU in one pass;
* ``SkipLayerNormalization``: bias add + residual add + LayerNorm in one pass.

Why: at the lengths of user questions (tens of tokens) the element-wise passes
of an unfused graph (reshape/transpose per head, mask add, softmax, 5 passes
for GELU, separate bias and residual adds) cost as much as the matrix products
themselves. Fusing them leaves the graph dominated by its matrix products, which
dynamic int8 quantisation (``quantize_dynamic``: ``MatMul`` and ``Attention``
become integer kernels, VNNI/AMX where the CPU has them) then speeds up.
Agreement with the torch reference is tested in ``tests/unit/test_predictors_minilm.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["HIDDEN", "build_fused_model"]

HIDDEN, HEADS, LAYERS, EPS = 384, 12, 6, 1e-12
_MS = "com.microsoft"


def build_fused_model(weights_path: Path) -> Any:
    """Return an ``onnx.ModelProto``: ``(input_ids, attention_mask)`` int64 ``[batch, seq]`` -> ``embedding``.

    ``embedding`` is float32 ``[batch, 384]``, mean-pooled over positions where
    the mask is 1 and L2-normalised. Padding must be on the right (the fused
    attention masks keys by the row's token count).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from safetensors.numpy import load_file

    w = load_file(str(weights_path))
    inits: list[Any] = []
    nodes: list[Any] = []

    def const(name: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def node(op: str, inputs: list[str], outputs: list[str] | str, domain: str = "", **attrs: Any) -> str:
        outs = [outputs] if isinstance(outputs, str) else outputs
        nodes.append(helper.make_node(op, inputs, outs, name=f"{op}_{len(nodes)}", domain=domain or None, **attrs))
        return outs[0]

    def weight(prefix: str) -> str:
        return const(f"{prefix}.wT", w[f"{prefix}.weight"].T.astype(np.float32))

    def vec(name: str, key: str) -> str:
        return const(name, w[key].astype(np.float32))

    # Embeddings. Token type ids are all zero, so token_type_embeddings[0] is a
    # constant row: folding it into the position table gives the same sum.
    ids32 = node("Cast", ["input_ids"], "ids32", to=TensorProto.INT32)
    mask32 = node("Cast", ["attention_mask"], "mask32", to=TensorProto.INT32)
    pos = w["embeddings.position_embeddings.weight"] + w["embeddings.token_type_embeddings.weight"][0][None, :]
    h, mask_index = "emb", "mask_index"
    node(
        "EmbedLayerNormalization",
        [ids32, "", const("word_emb", w["embeddings.word_embeddings.weight"]), const("pos_emb", pos.astype(np.float32)),
         "", vec("emb_g", "embeddings.LayerNorm.weight"), vec("emb_b", "embeddings.LayerNorm.bias"), mask32],
        [h, mask_index], domain=_MS, epsilon=EPS,
    )

    for i in range(LAYERS):
        p, t = f"encoder.layer.{i}", f"l{i}"
        a = f"{p}.attention.self"
        qkv_w = np.concatenate([w[f"{a}.{m}.weight"].T for m in ("query", "key", "value")], axis=1).astype(np.float32)
        qkv_b = np.concatenate([w[f"{a}.{m}.bias"] for m in ("query", "key", "value")]).astype(np.float32)
        ctx = node("Attention", [h, const(f"{t}.qkv_w", qkv_w), const(f"{t}.qkv_b", qkv_b), mask_index],
                   f"{t}ctx", domain=_MS, num_heads=HEADS)
        ao = node("MatMul", [ctx, weight(f"{p}.attention.output.dense")], f"{t}ao")
        h = node("SkipLayerNormalization",
                 [ao, h, vec(f"{t}.ln1_g", f"{p}.attention.output.LayerNorm.weight"),
                  vec(f"{t}.ln1_b", f"{p}.attention.output.LayerNorm.bias"), vec(f"{t}.ao_b", f"{p}.attention.output.dense.bias")],
                 f"{t}h1", domain=_MS, epsilon=EPS)
        x = node("MatMul", [h, weight(f"{p}.intermediate.dense")], f"{t}in")
        g = node("BiasGelu", [x, vec(f"{t}.in_b", f"{p}.intermediate.dense.bias")], f"{t}gelu", domain=_MS)
        o = node("MatMul", [g, weight(f"{p}.output.dense")], f"{t}out")
        h = node("SkipLayerNormalization",
                 [o, h, vec(f"{t}.ln2_g", f"{p}.output.LayerNorm.weight"),
                  vec(f"{t}.ln2_b", f"{p}.output.LayerNorm.bias"), vec(f"{t}.out_b", f"{p}.output.dense.bias")],
                 f"{t}h2", domain=_MS, epsilon=EPS)

    # Mean pooling over real tokens, then L2 normalisation (sentence-transformers modules 1 and 2).
    const("axes_1", np.array([1], dtype=np.int64))
    const("axes_m1", np.array([-1], dtype=np.int64))
    const("eps_pool", np.array(1e-9, dtype=np.float32))
    const("eps_norm", np.array(1e-12, dtype=np.float32))
    m3 = node("Unsqueeze", [node("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT), "axes_m1"], "mask3")
    summed = node("ReduceSum", [node("Mul", [h, m3], "masked"), "axes_1"], "summed", keepdims=0)
    count = node("Max", [node("ReduceSum", [m3, "axes_1"], "count0", keepdims=0), "eps_pool"], "count")
    mean = node("Div", [summed, count], "mean")
    sq = node("ReduceSum", [node("Mul", [mean, mean], "sq"), "axes_m1"], "sqsum", keepdims=1)
    node("Div", [mean, node("Max", [node("Sqrt", [sq], "l2"), "eps_norm"], "l2c")], "embedding")

    graph = helper.make_graph(
        nodes,
        "minilm_l6_fused_mean_pool",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", HIDDEN])],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(_MS, 1)], producer_name="thinkgate"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
