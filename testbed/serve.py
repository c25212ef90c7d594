"""Start, wait for and stop one vLLM CPU server for a testbed model (standard library only).

Used by ``testbed.evaluate``, the integration tests, and available to
``thinkgate up``. The server runs in its own process group so that stopping it
also ends vLLM's engine-core child processes (no orphans).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from testbed.models import vllm_args, vllm_args_for_path

__all__ = ["VllmServer", "free_port", "server_env"]


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(threads: int = 1) -> dict[str, str]:
    """Environment for a CPU vLLM server: offline hub, 1 GiB KV cache, ``threads`` OpenMP threads."""
    env = dict(os.environ)
    env.update(
        {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "VLLM_CPU_KVCACHE_SPACE": env.get("VLLM_CPU_KVCACHE_SPACE", "1"),
            "OMP_NUM_THREADS": str(threads),
            "VLLM_CPU_OMP_THREADS_BIND": env.get("VLLM_CPU_OMP_THREADS_BIND", "nobind"),
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
        }
    )
    return env


class VllmServer:
    """One ``vllm.entrypoints.openai.api_server`` process serving one testbed model.

    Use as a context manager (``with VllmServer("tg-small") as srv: srv.base_url``)
    or call :meth:`start` / :meth:`stop`. ``model_dir`` overrides the shipped
    folder (e.g. a model being trained).
    """

    def __init__(
        self,
        name: str,
        port: int | None = None,
        log_path: Path | None = None,
        model_dir: Path | None = None,
        threads: int = 1,
        extra_args: list[str] | None = None,
    ) -> None:
        self.name = name
        self.port = port or free_port()
        self.log_path = log_path or Path(f"/tmp/thinkgate-vllm-{name}-{self.port}.log")
        self.model_dir = model_dir
        self.threads = threads
        self.extra_args = list(extra_args or [])
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """OpenAI-compatible base URL, e.g. ``http://127.0.0.1:8123/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        """The full command line this server runs."""
        if self.model_dir is None:
            args = vllm_args(self.name, self.port)
        else:
            args = vllm_args_for_path(self.model_dir, self.name, self.port)
        return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", *args, *self.extra_args]

    def start(self, timeout_s: float = 300.0) -> VllmServer:
        """Launch the server and block until ``/v1/models`` answers; raises ``RuntimeError`` on failure."""
        if self.proc is not None:
            raise RuntimeError("server already started")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, env=server_env(self.threads),
            start_new_session=True,  # own process group: stop() can end the engine children too
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-3000:]
                self.proc = None
                raise RuntimeError(f"vLLM server for {self.name} exited during start-up; log tail:\n{tail}")
            if self.ready():
                return self
            time.sleep(2.0)
        self.stop()
        raise RuntimeError(f"vLLM server for {self.name} not ready after {timeout_s:.0f} s (log: {self.log_path})")

    def ready(self) -> bool:
        """True when the server lists its model."""
        try:
            with urllib.request.urlopen(self.base_url + "/models", timeout=2.0) as resp:
                data = json.loads(resp.read())
            return any(m.get("id") == self.name for m in data.get("data", []))
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM the process group, then SIGKILL after ``grace_s``; safe to call twice."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
        try:  # children may outlive the leader; the group id is the leader's pid
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=5)

    def __enter__(self) -> VllmServer:
        return self.start() if self.proc is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

