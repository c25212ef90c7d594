"""``thinkgate up``: start the embedded stack (standard-library imports only at top)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add ``up`` to the ``thinkgate`` parser."""
    p = sub.add_parser(
        "up", help="start the embedded stack: testbed models on vLLM CPU + the gateway",
        description="Start one vLLM CPU server per testbed model and the gateway in front of them; "
                    "wait until ready, then serve until Ctrl-C or SIGTERM (everything is stopped cleanly).",
        epilog="examples:\n  thinkgate up --demo\n  thinkgate up --models tg-small --port 9000\n"
               "  thinkgate up --demo --exit   # start, send the demo requests, stop",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--models", help="comma-separated testbed models (default: all shipped)")
    p.add_argument("--port", type=int, default=None, help="gateway port (default 8080)")
    p.add_argument("--vllm-base-port", type=int, default=None, help="first vLLM port (default 8101)")
    p.add_argument("--run-dir", help="folder for logs and the generated config (default runs/up-<time>)")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the servers to be ready")
    p.add_argument("--demo", action="store_true", help="send a first request and show its decision")
    p.add_argument("--exit", action="store_true", help="stop the stack after start-up (and the demo)")
    p.set_defaults(func=_up)


def _up(args: argparse.Namespace) -> int:
    from testbed.up import run_up

    return run_up(args)
