"""``thinkgate serve`` and ``thinkgate backends check`` (standard-library imports only at top)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(sub: Any) -> None:
    """Add ``serve`` and ``backends`` to the ``thinkgate`` parser."""
    p = sub.add_parser(
        "serve", help="run the gateway",
        description="Run the OpenAI-compatible gateway in front of the configured vLLM backends.",
        epilog="example: thinkgate serve --config thinkgate.toml --port 8080",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", help="TOML config file (default: $THINKGATE_CONFIG, else the embedded default)")
    p.add_argument("--host", help="bind address (overrides gateway.host)")
    p.add_argument("--port", type=int, help="port (overrides gateway.port)")
    p.add_argument("--workers", type=int, default=1,
                   help="gateway processes sharing the port (budgets stay exact through the shared ledger; "
                        "/metrics then reports the worker that answers the scrape)")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=_serve)

    b = sub.add_parser("backends", help="inspect the configured backends")
    bsub = b.add_subparsers(dest="backends_command", metavar="COMMAND", required=True)
    c = bsub.add_parser(
        "check", help="reachability, served model names, whether the thinking cap is enforced",
        epilog="example: thinkgate backends check --config thinkgate.toml --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("--config", help="TOML config file")
    c.add_argument("--timeout", type=float, default=30.0, help="seconds per probe request")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(func=_check)


def _settings(args: argparse.Namespace, **overrides: Any) -> Any:
    from thinkgate.cli import CliError
    from thinkgate.config import load_settings

    try:
        return load_settings(args.config, **overrides)
    except FileNotFoundError as exc:
        raise CliError(f"--config: {exc}") from None
    except ValueError as exc:
        raise CliError(f"--config: {exc}") from None


def _serve(args: argparse.Namespace) -> int:
    from thinkgate.cli import CliError

    gateway: dict[str, Any] = {}
    if args.host:
        gateway["host"] = args.host
    if args.port is not None:
        if not 0 < args.port < 65536:
            raise CliError(f"--port: must be in 1..65535, got {args.port}")
        gateway["port"] = args.port
    if args.workers < 1:
        raise CliError(f"--workers: must be >= 1, got {args.workers}")
    settings = _settings(args, **({"gateway": gateway} if gateway else {}))
    if not settings.backends:
        raise CliError("--config: no backends configured (add [[backends]] entries)")
    import uvicorn

    print(f"thinkgate: serving on http://{settings.gateway.host}:{settings.gateway.port} "
          f"({len(settings.backends)} backend(s), strategy {settings.router.strategy}, "
          f"{args.workers} worker(s))", file=sys.stderr)
    opts = dict(host=settings.gateway.host, port=settings.gateway.port, log_level=args.log_level,
                access_log=False, loop="uvloop", http="httptools", timeout_graceful_shutdown=5,
                # thinkgate never reads client addresses: skip the per-request proxy-headers wrapper.
                proxy_headers=False, server_header=False)
    if args.workers == 1:
        from server import create_app

        uvicorn.run(create_app(settings), **opts)
        return 0
    # Worker processes rebuild the app from the same settings (passed as JSON).
    import os

    os.environ["THINKGATE_SETTINGS_JSON"] = settings.model_dump_json()
    uvicorn.run("server:app_from_env", factory=True, workers=args.workers, **opts)
    return 0


def _check(args: argparse.Namespace) -> int:
    import asyncio

    from thinkgate.gateway.probe import check_backends

    settings = _settings(args)
    results = asyncio.run(check_backends(settings.backends, args.timeout))
    if args.json:
        print(json.dumps({"backends": results}))
    else:
        for r in results:
            state = "ok" if r["reachable"] else "DOWN"
            cap = {True: "enforced", False: "NOT enforced", None: "unknown"}[r["thinking_cap"]]
            print(f"{r['name']:<20} {state:<5} model={r['model']} served={','.join(r['served_models']) or '-'} "
                  f"thinking cap {cap}" + (f"  ({r['error']})" if r["error"] else ""))
    return 0 if all(r["reachable"] and r["model_served"] for r in results) else 1
