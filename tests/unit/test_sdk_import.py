"""``import thinkgate`` stays light: no server, ML or CLI module is pulled in."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEAVY = (
    "fastapi",
    "starlette",
    "uvicorn",
    "torch",
    "sklearn",
    "numpy",
    "scipy",
    "vllm",
    "thinkgate.cli",
    "server",
)


def modules_after(code: str) -> set[str]:
    """Run ``code`` in a fresh interpreter (repo on the path) and return the loaded module names."""
    script = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_bare_import_loads_nothing_but_the_package() -> None:
    loaded = modules_after("import thinkgate")
    assert "thinkgate" in loaded
    # Lazy: not even openai until a name is used.
    assert "openai" not in loaded
    assert not [m for m in HEAVY if m in loaded]


def test_using_the_sdk_pulls_in_no_server_dependency() -> None:
    loaded = modules_after(
        "import thinkgate\n"
        "c = thinkgate.Client(base_url='http://127.0.0.1:9/v1', api_key='k')\n"
        "thinkgate.AsyncClient(base_url='http://127.0.0.1:9/v1', api_key='k')\n"
        "thinkgate.Decision, thinkgate.BudgetExceeded, thinkgate.RetryPolicy, thinkgate.DecisionStream"
    )
    assert "openai" in loaded and "thinkgate.client" in loaded  # the check is meaningful
    heavy = [m for m in HEAVY if m in loaded]
    assert heavy == []


def test_public_names_resolve_and_unknown_names_fail() -> None:
    import pytest

    import thinkgate

    for name in thinkgate.__all__:
        assert getattr(thinkgate, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        thinkgate.Nope  # noqa: B018
