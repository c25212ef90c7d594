"""The ``thinkgate`` command line.

Each sub-command lives in the package that owns it and exposes
``register(subparsers) -> None``; that module imports only the standard library
at top level, so ``thinkgate --help`` stays fast and installing the SDK alone
never pulls in server dependencies. Heavy imports happen inside the handlers.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> module exposing register(subparsers). Order is the order in --help.
COMMANDS: dict[str, str] = {
    "serve": "thinkgate._cli_serve",
    "backends": "thinkgate._cli_serve",
    "up": "testbed.cli",
    "tenants": "budget.cli",
    "predictors": "predictors.cli",
    "eval": "evals.cli",
}


def build_parser() -> argparse.ArgumentParser:
    """Build the full parser; a sub-command whose package is absent is skipped."""
    parser = argparse.ArgumentParser(
        prog="thinkgate",
        description="OpenAI-compatible gateway that routes, budgets and steers reasoning models.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    seen: set[str] = set()
    for module_name in COMMANDS.values():
        if module_name in seen:
            continue
        seen.add(module_name)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # Only tolerate the owning package itself being missing (SDK-only
            # installs); a broken import inside it must surface.
            if exc.name and module_name.startswith(exc.name):
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``thinkgate`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        result = func(args)
    except KeyboardInterrupt:
        return 130
    except CliError as exc:
        print(f"thinkgate: error: {exc}", file=sys.stderr)
        return 2
    return int(result or 0)


class CliError(Exception):
    """A user error on the command line; the message names the flag."""


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
