"""Fixtures for the ledger contract suite: one store per backend, Redis from Debian's redis-server."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from budget.ledger import LedgerStore

from ._stores import make_store

REDIS_BIN = shutil.which("redis-server") or "/usr/bin/redis-server"


class FakeClock:
    """A settable clock; starts at the real time so Redis TTLs stay sensible."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(tmp: Path) -> tuple[subprocess.Popen, str]:
    """Start a throwaway redis-server on a free loopback port; returns (process, url)."""
    port = _free_port()
    proc = subprocess.Popen(
        [REDIS_BIN, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp),
         "--save", "", "--appendonly", "no", "--protected-mode", "yes"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"redis-server did not start on port {port}")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a session-wide redis-server; skips when the binary is missing."""
    if not Path(REDIS_BIN).exists():
        pytest.skip("redis-server binary not found (apt-get install redis-server)")
    proc, url = start_redis(tmp_path_factory.mktemp("redis"))
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str, str]:
    """(kind, target, prefix): a fresh SQLite file or a fresh key prefix on the shared Redis."""
    if request.param == "sqlite":
        return "sqlite", str(tmp_path / "ledger.db"), ""
    url = request.getfixturevalue("redis_url")
    return "redis", url, f"t{uuid.uuid4().hex[:8]}:"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest_asyncio.fixture(loop_scope="function")
async def store(backend: tuple[str, str, str], clock: FakeClock) -> AsyncIterator[LedgerStore]:
    s = make_store(*backend, clock=clock)
    yield s
    await s.close()
