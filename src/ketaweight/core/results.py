"""The one results envelope every stage writes (simulation truth, causal results, signals).

A results file is JSON with a stable top level::

    {
      "schema_version": "2",
      "kind": "causal" | "mechanisms" | "signals" | "simulation_truth" | ...,
      "ketaweight_version": "0.1.0",
      "created_utc": "2026-11-25T12:00:00Z",
      "counts": "masked below 11" | "exact",
      "provenance": {"origin": "simulated", "source": "ketaweight simulator, scenario 'article'",
                     "period": null, "synthetic": true, "label": "...", "seed": 7, ...},
      "results": ...            # the kind's result type, serialised (core.protocol); schemas in docs/schemas/
    }

:func:`write_result` writes a typed result (:class:`ketaweight.core.protocol.Result`) and masks
every count under 11 unless asked for exact counts; :func:`read_result` reads it back into its
type.

Files are written atomically (temporary file, then rename) so a crash never leaves a
half-written result.  ``created_utc`` is the only field that varies between identical runs;
pass ``created_utc=None``-free comparisons via :func:`strip_volatile`.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass
import tempfile
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ketaweight.core.outputs import check_file_target
from ketaweight.core.privacy import mask_counts
from ketaweight.core.protocol import RESULT_KINDS, Result, to_plain
from ketaweight.core.provenance import Provenance
from ketaweight.core.version import __version__

SCHEMA_VERSION = "2"
"""2: typed payloads (core.protocol), ``counts`` and a typed provenance core in the envelope."""


def make_envelope(kind: str, results: Any, provenance: dict[str, Any], *, counts: str = "masked below 11") -> dict[str, Any]:
    """Wrap a stage's payload in the common envelope (see module docstring)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        "ketaweight_version": __version__,
        "created_utc": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "counts": counts,
        "provenance": to_plain(provenance),
        "results": to_plain(results),
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
    text = json.dumps(to_plain(document), indent=2, sort_keys=False, allow_nan=False) + "\n"
    return write_text_atomic(path, text)


def write_results(path: str | Path, kind: str, results: Any, provenance: dict[str, Any], *,
                  counts: str = "masked below 11") -> Path:
    """Write an already serialised payload in the common envelope; returns its path (prefer :func:`write_result`)."""
    return write_json_atomic(path, make_envelope(kind, results, provenance, counts=counts))


def write_result(path: str | Path, result: Result, provenance: Provenance | dict[str, Any], *,
                 exact_counts: bool = False, replace: bool = True, **extra: Any) -> Path:
    """Write a typed result of a registered kind; every count under 11 is masked (``"<11"``) unless
    ``exact_counts`` (for internal reproducibility checks only).  ``extra`` joins the provenance
    (seed, store, study, …).  A file ketaweight did not write is never overwritten; an earlier
    results file only with ``replace``."""
    check_file_target(path, replace=replace)
    if result.kind is None:
        raise TypeError(f"{type(result).__name__} is not the payload of a results file (it has no kind)")
    payload = result.to_dict()
    prov = provenance.to_dict() if isinstance(provenance, Provenance) else dict(provenance)
    return write_results(path, result.kind, payload if exact_counts else mask_counts(payload), {**prov, **extra},
                         counts="exact" if exact_counts else "masked below 11")


@dataclass(frozen=True)
class ResultsFile:
    """A results file read back: the envelope's fields and the typed payload."""

    path: Path
    kind: str
    ketaweight_version: str
    created_utc: str
    counts: str
    provenance: dict[str, Any]
    results: Any  # the kind's Result type

    @property
    def data(self) -> Provenance | None:
        """Where the data came from (None for files about no data, such as validation runs without it)."""
        return Provenance.from_dict(self.provenance) if "origin" in self.provenance else None

    @property
    def label(self) -> str:
        """How to label numbers from this file (simulated, synthetic reports, or the named real source)."""
        data = self.data
        return data.label if data is not None else str(self.provenance.get("source", "unknown source"))


def read_result(path: str | Path, cls: type[Result] | None = None) -> ResultsFile:
    """Read a results file into its typed payload (its ``kind`` must be registered, or ``cls`` given)."""
    return parse_results(read_results(path, kind=cls.kind if cls is not None else None), path, cls)


def parse_results(doc: dict[str, Any], path: str | Path = "<memory>", cls: type[Result] | None = None) -> ResultsFile:
    """A results document already parsed from JSON (e.g. received from a site, or edited in a test),
    typed as :func:`read_result` does."""
    kind = doc["kind"]
    target = cls or RESULT_KINDS.get(kind)
    if target is None:
        raise ValueError(f"{path}: results kind {kind!r} has no registered type (known: {', '.join(sorted(RESULT_KINDS))})")
    try:
        payload = target.from_dict(doc["results"])
    except ValidationError as exc:
        raise ValueError(f"{path}: the '{kind}' payload does not match its schema: {exc}") from exc
    return ResultsFile(Path(path), kind, doc.get("ketaweight_version", ""), doc.get("created_utc", ""),
                       doc.get("counts", "masked below 11"), doc.get("provenance", {}), payload)


def envelope_schema(kind: str) -> dict[str, Any]:
    """JSON Schema of a whole results file of ``kind`` (envelope + the payload's generated schema)."""
    payload = RESULT_KINDS[kind].json_schema()
    defs = payload.pop("$defs", {})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"ketaweight results file, kind '{kind}'",
        "type": "object",
        "required": ["schema_version", "kind", "ketaweight_version", "created_utc", "counts", "provenance", "results"],
        "properties": {
            "schema_version": {"const": SCHEMA_VERSION},
            "kind": {"const": kind},
            "ketaweight_version": {"type": "string"},
            "created_utc": {"type": "string", "format": "date-time"},
            "counts": {"enum": ["masked below 11", "exact"]},
            "provenance": {"type": "object", "properties": {
                "origin": {"enum": ["simulated", "synthetic", "real"]}, "source": {"type": "string"},
                "period": {"type": ["string", "null"]}, "synthetic": {"type": "boolean"}, "label": {"type": "string"}}},
            "results": payload,
        },
        "$defs": defs,
    }


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
