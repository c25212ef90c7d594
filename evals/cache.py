"""Append-only on-disk cache of endpoint responses, keyed by a hash of the request.

One JSONL file per cache directory (``responses.jsonl``): each line is
``{"key": ..., "value": ...}``, appended and flushed as soon as a response
arrives. A process killed mid-write leaves at most one broken last line, which
loading skips; the next run simply redoes that request.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import IO, Any

__all__ = ["ResponseCache", "request_key"]


def request_key(request: dict[str, Any], mode: str) -> str:
    """SHA-256 of the canonical JSON of the request body and endpoint mode.

    The base URL is deliberately not part of the key: the same model behind a
    restarted server (new port) must hit the same cache entries.
    """
    blob = json.dumps({"mode": mode, "request": request}, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    """Dict-like view of ``<directory>/responses.jsonl``; later entries win."""

    FILENAME = "responses.jsonl"

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / self.FILENAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._data: dict[str, Any] = {}
        self.skipped_lines = 0
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                    self._data[entry["key"]] = entry["value"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    self.skipped_lines += 1  # a torn write from a killed run
        self._fh: IO[str] | None = None

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def get(self, key: str) -> Any | None:
        """The cached value for ``key`` or ``None``."""
        return self._data.get(key)

    def put(self, key: str, value: Any) -> None:
        """Store and append durably (flushed) before returning."""
        if self._fh is None:
            # Start on a fresh line in case the previous run died mid-line.
            needs_nl = False
            if self.path.is_file() and self.path.stat().st_size > 0:
                with self.path.open("rb") as f:
                    f.seek(-1, 2)
                    needs_nl = f.read(1) != b"\n"
            self._fh = self.path.open("a", encoding="utf-8")
            if needs_nl:
                self._fh.write("\n")
        self._fh.write(json.dumps({"key": key, "value": value}, ensure_ascii=False) + "\n")
        self._fh.flush()
        self._data[key] = value

    def close(self) -> None:
        """Close the append handle (entries stay readable)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
