"""The one results envelope every stage writes (simulation truth, causal results, signals).

A results file is JSON with a stable top level::

    {
      "schema_version": "1",
      "kind": "causal" | "signals" | "simulation_truth" | ...,
      "ketaweight_version": "0.1.0",
      "created_utc": "2026-11-25T12:00:00Z",
      "provenance": {"data": ..., "spec": ..., "seed": ...,
                      "synthetic": true, "source": "ketaweight simulator, scenario 'article'"},
      "results": ...            # stage-specific payload, documented in docs/results-schema.md
    }

Files are written atomically (temporary file, then rename) so a crash never leaves a
half-written result.  ``created_utc`` is the only field that varies between identical runs;
pass ``created_utc=None``-free comparisons via :func:`strip_volatile`.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ketaweight.core.version import __version__

SCHEMA_VERSION = "1"


def _to_jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays, paths and non-finite floats into plain JSON values.

    NaN and infinities become ``null`` (JSON has no NaN); the caller records why a value is
    missing in its diagnostics.
    """
    if isinstance(value, dict):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_to_jsonable(v) for v in value.tolist()]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, Path):
        return str(value)
    return value


def make_envelope(kind: str, results: Any, provenance: dict[str, Any]) -> dict[str, Any]:
    """Wrap a stage's payload in the common envelope (see module docstring)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        "ketaweight_version": __version__,
        "created_utc": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "provenance": _to_jsonable(provenance),
        "results": _to_jsonable(results),
    }


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically: a temporary file beside it, then rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results and reports are meant to be shared
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def write_json_atomic(path: str | Path, document: Any) -> Path:
    """Write ``document`` as pretty JSON to ``path`` atomically (temp file + rename)."""
    text = json.dumps(_to_jsonable(document), indent=2, sort_keys=False, allow_nan=False) + "\n"
    return write_text_atomic(path, text)


def write_results(path: str | Path, kind: str, results: Any, provenance: dict[str, Any]) -> Path:
    """Write a results file in the common envelope; returns its path."""
    return write_json_atomic(path, make_envelope(kind, results, provenance))


def read_results(path: str | Path, *, kind: str | None = None) -> dict[str, Any]:
    """Read a results file, checking its schema version and (optionally) its kind."""
    p = Path(path)
    doc = json.loads(p.read_text(encoding="utf-8"))
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(
            f"{p}: results schema_version {doc.get('schema_version')!r} is not {SCHEMA_VERSION!r}; "
            "re-run the analysis with this ketaweight version"
        )
    if kind is not None and doc.get("kind") != kind:
        raise ValueError(f"{p}: expected a '{kind}' results file, found kind {doc.get('kind')!r}")
    return doc


def strip_volatile(document: dict[str, Any]) -> dict[str, Any]:
    """A copy without fields that legitimately differ between identical runs (timestamps)."""
    return {k: v for k, v in document.items() if k != "created_utc"}
