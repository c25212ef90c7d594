"""Where the shipped testbed models live and how to serve them (standard library only).

Other packages (``thinkgate up``, evals, tests) call this module; it imports
nothing heavy so it is safe at CLI start-up.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = [
    "MODELS_DIR",
    "REASONING_PARSER",
    "list_models",
    "median_thinking_tokens",
    "model_path",
    "thinking_stats",
    "vllm_args",
    "vllm_args_for_path",
]

MODELS_DIR: Path = Path(__file__).resolve().parent / "models"
#: vLLM reasoning parser that splits ``<think>...</think>`` from the answer for these models.
REASONING_PARSER = "deepseek_r1"
#: The longest prompt + trace is ~700 tokens; 1024 leaves headroom and keeps the KV cache small.
MAX_MODEL_LEN = 1024
STATS_FILE = "thinking_stats.json"


def list_models() -> list[str]:
    """Names of the models shipped under ``MODELS_DIR`` (folders with a config.json), sorted."""
    if not MODELS_DIR.is_dir():
        return []
    return sorted(p.name for p in MODELS_DIR.iterdir() if (p / "config.json").is_file())


def model_path(name: str) -> Path:
    """Folder of model ``name``; raises ``ValueError`` naming the available models if unknown."""
    available = list_models()
    if name not in available:
        raise ValueError(f"model: unknown {name!r}, available: {', '.join(available) or '(none)'}")
    return MODELS_DIR / name


def vllm_args(name: str, port: int | None = None) -> list[str]:
    """Arguments for ``python -m vllm.entrypoints.openai.api_server`` serving model ``name`` on CPU.

    ``--reasoning-parser deepseek_r1`` enables both the thinking/answer split and
    the native ``thinking_token_budget``; the forced end string is left at the
    parser's ``</think>`` (a longer wrap-up phrase is only safe on vLLM's V2
    model runner, which the CPU backend does not use). fp32 because the models
    are tiny and trained in fp32. Set ``VLLM_CPU_KVCACHE_SPACE=1`` (GiB) in
    the environment to keep the KV cache small.
    """
    return vllm_args_for_path(model_path(name), name, port)


def vllm_args_for_path(path: Path, name: str, port: int | None = None) -> list[str]:
    """Like :func:`vllm_args` for a model folder anywhere (e.g. one still being trained)."""
    args = [
        "--model", str(path),
        "--served-model-name", name,
        "--reasoning-parser", REASONING_PARSER,
        "--max-model-len", str(MAX_MODEL_LEN),
        "--dtype", "float32",
    ]
    if port is not None:
        if not 0 < port < 65536:
            raise ValueError(f"port: {port} out of range 1..65535")
        args += ["--port", str(port)]
    return args


def thinking_stats(name: str) -> dict[str, Any] | None:
    """Measured thinking lengths of model ``name`` (written by ``testbed.evaluate --write-stats``), or None."""
    path = model_path(name) / STATS_FILE
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def median_thinking_tokens(name: str) -> int | None:
    """Median number of thinking tokens of ``name`` with unlimited thinking (greedy, test split), or None."""
    stats = thinking_stats(name)
    if stats is None:
        return None
    return int(stats["median_thinking_tokens"])
