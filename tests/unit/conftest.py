"""Fixtures shared by the in-process unit tests."""

from __future__ import annotations

import pytest

from tests.helpers import free_port, instant_backend, stop


@pytest.fixture(scope="session")
def upstream(tmp_path_factory):
    """URL of one instant OpenAI-compatible backend (model ``instant``), shared by the session (stateless)."""
    port = free_port()
    proc = instant_backend(port, tmp_path_factory.mktemp("b") / "b.log")
    yield f"http://127.0.0.1:{port}"
    stop(proc)
