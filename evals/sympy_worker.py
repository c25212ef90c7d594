"""Symbolic equality in a killable worker process.

Why a process: sympy has no cancellation, and a model can emit answers whose
evaluation never finishes (``9**9**9**9``) or allocates gigabytes. A thread
cannot be stopped and ``SIGALRM`` only works on the main thread, so the check
runs in one long-lived child process that is killed and restarted on
overrun. One worker is shared per process behind a lock.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

__all__ = ["SympyWorker", "sympy_equal"]

_STARTUP_TIMEOUT_S = 120.0  # spawning + importing sympy on a loaded 2-core box


def _compare(expr_a: str, expr_b: str) -> bool | None:
    """True/False when sympy can decide, ``None`` when either side does not parse."""
    import sympy
    from sympy.parsing.sympy_parser import (
        convert_xor,
        implicit_multiplication_application,
        parse_expr,
        standard_transformations,
    )

    transforms = standard_transformations + (implicit_multiplication_application, convert_xor)
    try:
        a = parse_expr(expr_a, transformations=transforms, evaluate=True)
        b = parse_expr(expr_b, transformations=transforms, evaluate=True)
    except Exception:  # noqa: BLE001 - any parse failure means "cannot decide"
        return None
    try:
        if sympy.simplify(a - b) == 0:
            return True
    except Exception:  # noqa: BLE001 - e.g. comparing a set with a number
        return None
    # Numeric fallback: catches forms simplify leaves apart (nested radicals).
    try:
        va, vb = complex(sympy.N(a, 30)), complex(sympy.N(b, 30))
    except (TypeError, ValueError):
        return False
    return abs(va - vb) <= 1e-9 * max(1.0, abs(va), abs(vb))


def _worker_main() -> None:
    """Child loop: import sympy once, then answer JSON-line ``[a, b]`` requests until EOF."""
    import sympy  # noqa: F401 - warm the import before announcing readiness

    print(json.dumps("ready"), flush=True)
    for line in sys.stdin:
        try:
            a, b = json.loads(line)
            reply: list[Any] = ["ok", _compare(str(a), str(b))]
        except Exception as exc:  # noqa: BLE001 - report, never die on one bad input
            reply = ["error", repr(exc)]
        print(json.dumps(reply), flush=True)


class SympyWorker:
    """A restartable child process answering symbolic-equality questions with a time limit.

    The child is a plain ``python -m evals.sympy_worker`` speaking JSON lines on
    stdin/stdout, so it works whatever the parent's ``__main__`` is (stdin
    scripts, notebooks, console scripts), unlike multiprocessing's spawn.
    """

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()
        self.timeouts = 0  # how many calls were cut off

    def _readline(self, timeout_s: float) -> str | None:
        assert self._proc is not None and self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], timeout_s)
        if not ready:
            return None
        return self._proc.stdout.readline()

    def _start(self) -> None:
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "evals.sympy_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
            env=env,
        )
        line = self._readline(_STARTUP_TIMEOUT_S)
        if not line or json.loads(line) != "ready":
            self._kill()
            raise RuntimeError("sympy worker did not start")

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(5)
            for stream in (self._proc.stdin, self._proc.stdout):
                if stream is not None:
                    stream.close()
        self._proc = None

    def equal(self, expr_a: str, expr_b: str, timeout_s: float) -> bool | None:
        """Symbolic equality of two sympy-syntax strings; ``None`` on timeout or unparseable input.

        The time limit covers the comparison only, not the worker's first start.
        """
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._kill()
                self._start()
            assert self._proc is not None and self._proc.stdin is not None
            self._proc.stdin.write(json.dumps([expr_a, expr_b]) + "\n")
            self._proc.stdin.flush()
            line = self._readline(timeout_s)
            if not line:
                self.timeouts += 1
                self._kill()
                return None
            status, value = json.loads(line)
            return value if status == "ok" else None

    def close(self) -> None:
        """Stop the child process."""
        with self._lock:
            self._kill()


_shared: SympyWorker | None = None
_shared_lock = threading.Lock()


def shared_worker() -> SympyWorker:
    """The process-wide worker, created on first use (nothing starts at import)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = SympyWorker()
        return _shared


def sympy_equal(expr_a: str, expr_b: str, timeout_s: float = 3.0) -> bool | None:
    """Symbolic equality via the shared worker; see :meth:`SympyWorker.equal`."""
    if timeout_s <= 0:
        raise ValueError("timeout_s: must be > 0")
    return shared_worker().equal(expr_a, expr_b, timeout_s)


if __name__ == "__main__":
    _worker_main()
