"""Predictor artifacts: one pickled :class:`Predictor` with a version header.

File layout (pickle protocol 5) is a dict::

    {"format": "thinkgate-predictor", "format_version": ARTIFACT_VERSION,
     "created": ISO-8601 UTC, "library_versions": {...}, "data_sha256": "...",
     "metadata": {...}, "predictor": Predictor}

:func:`load_predictor` checks the format name and version and raises
:class:`ArtifactError` naming the file and both versions on mismatch. Pickle
executes code on load: only load artifacts you built or trust.
"""

from __future__ import annotations

import datetime as _dt
import os
import pickle
from pathlib import Path
from typing import Any

from predictors.model import Predictor

__all__ = ["ARTIFACT_FORMAT", "ARTIFACT_VERSION", "ArtifactError", "load_predictor", "read_artifact_header", "save_predictor"]

ARTIFACT_FORMAT = "thinkgate-predictor"
#: Bump when the pickled classes change incompatibly.
ARTIFACT_VERSION = 1


class ArtifactError(RuntimeError):
    """A missing, unreadable or incompatible artifact; the message names the file."""


def _library_versions() -> dict[str, str]:
    import numpy
    import scipy
    import sklearn

    return {"numpy": numpy.__version__, "scipy": scipy.__version__, "scikit-learn": sklearn.__version__}


def save_predictor(predictor: Predictor, path: str | Path) -> Path:
    """Write ``predictor`` atomically to ``path`` (parent folders created); returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    blob = {
        "format": ARTIFACT_FORMAT,
        "format_version": ARTIFACT_VERSION,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "library_versions": _library_versions(),
        "data_sha256": predictor.metadata.get("data_sha256"),
        "metadata": predictor.metadata,
        "predictor": predictor,
    }
    tmp = p.with_name(p.name + f".tmp{os.getpid()}")
    with tmp.open("wb") as f:
        pickle.dump(blob, f, protocol=5)
    os.replace(tmp, p)
    return p


def _read(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ArtifactError(f"predictor artifact {p}: file not found (train one with `thinkgate predictors train`)")
    try:
        with p.open("rb") as f:
            blob = pickle.load(f)
    except Exception as exc:  # any unpickling failure means an unusable file
        raise ArtifactError(f"predictor artifact {p}: cannot be read ({type(exc).__name__}: {exc})") from exc
    if not isinstance(blob, dict) or blob.get("format") != ARTIFACT_FORMAT:
        raise ArtifactError(f"predictor artifact {p}: not a thinkgate predictor artifact")
    version = blob.get("format_version")
    if version != ARTIFACT_VERSION:
        raise ArtifactError(
            f"predictor artifact {p}: format version {version}, this thinkgate reads version {ARTIFACT_VERSION};"
            " retrain with `thinkgate predictors train`"
        )
    return blob


def read_artifact_header(path: str | Path) -> dict[str, Any]:
    """The header fields (everything but the predictor) after the same checks as loading."""
    return {k: v for k, v in _read(path).items() if k != "predictor"}


def load_predictor(path: str | Path) -> Predictor:
    """Load and check an artifact; raises :class:`ArtifactError` naming the file on any problem."""
    blob = _read(path)
    pred = blob.get("predictor")
    if not isinstance(pred, Predictor):
        raise ArtifactError(f"predictor artifact {path}: payload is {type(pred).__name__}, expected Predictor")
    return pred
