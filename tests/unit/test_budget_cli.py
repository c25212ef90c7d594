"""``thinkgate tenants ...`` end to end against a temporary SQLite ledger."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from thinkgate.cli import main


def run(capsys, *argv):
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_tenants_add_list_set_budget_status(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/l.db"
    rc, out, _ = run(capsys, "tenants", "add", "acme", "--budget-usd", "5", "--window", "month", "--ledger", url, "--json")
    assert rc == 0
    added = json.loads(out)
    assert added["budget_usd"] == 5.0 and added["window"] == "month" and added["api_key"]
    rc, out, _ = run(capsys, "tenants", "add", "beta", "--budget-tokens", "1000", "--policy", "degrade", "--ledger", url)
    assert rc == 0 and "api key (shown once" in out
    rc, out, _ = run(capsys, "tenants", "list", "--ledger", url, "--json")
    assert [t["name"] for t in json.loads(out)] == ["acme", "beta"]
    rc, out, _ = run(capsys, "tenants", "set-budget", "acme", "--budget-usd", "none", "--budget-tokens", "7",
                     "--ledger", url, "--json")
    t = json.loads(out)
    assert rc == 0 and t["budget_usd"] is None and t["budget_tokens"] == 7 and t["id"] == added["id"]
    rc, out, _ = run(capsys, "tenants", "status", added["id"], "--ledger", url, "--json")
    st = json.loads(out)
    assert st["limit_tokens"] == 7 and st["remaining_tokens"] == 7 and st["spent_usd"] == 0


@pytest.mark.parametrize(
    "argv, msg",
    [
        (["tenants", "set-budget", "acme", "--budget-usd", "-3"], "--budget-usd"),
        (["tenants", "set-budget", "nobody", "--window", "day"], "TENANT"),
        (["tenants", "set-budget", "acme"], "at least one"),
        (["tenants", "add", "acme"], "NAME"),
        (["tenants", "add", "x", "--budget-tokens", "1.5"], "--budget-tokens"),
    ],
)
def test_user_errors_name_the_flag(tmp_path, capsys, argv, msg):
    url = f"sqlite:///{tmp_path}/l.db"
    assert main(["tenants", "add", "acme", "--ledger", url]) == 0
    capsys.readouterr()
    rc, _, err = run(capsys, *argv, "--ledger", url)
    assert rc == 2 and msg in err


def test_ledger_url_from_environment(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("THINKGATE_LEDGER_URL", f"sqlite:///{tmp_path}/env.db")
    assert main(["tenants", "add", "e"]) == 0
    assert (tmp_path / "env.db").exists()
    rc, _, err = run(capsys, "tenants", "list", "--ledger", "foo://x")
    assert rc == 2 and "--ledger" in err


def test_cli_module_imports_only_stdlib():
    code = "import sys, budget.cli; print(sorted(m for m in ('numpy', 'sqlite3', 'redis') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout
    assert out.strip() == "[]"
