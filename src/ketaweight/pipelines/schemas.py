"""The published JSON Schemas: one per results-file kind (envelope + typed payload, generated from the
result types) and one for the study TOML (generated from the pydantic study model), so that other
tools can validate what ketaweight writes and reads (``ketaweight schemas DIR``; shipped in
``docs/schemas/``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ketaweight.core.results import envelope_schema, write_text_atomic
from ketaweight.pipelines.results import kinds
from ketaweight.study.spec import Study


def all_schemas() -> dict[str, dict[str, Any]]:
    """File name → schema: ``<kind>.schema.json`` for every results kind, ``study.schema.json``."""
    out = {f"{kind}.schema.json": envelope_schema(kind) for kind in sorted(kinds())}
    study = Study.model_json_schema()
    study["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    study["title"] = "ketaweight study spec (TOML, validated as this JSON structure)"
    out["study.schema.json"] = study
    return out


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schemas(folder: str | Path) -> list[Path]:
    """Write every schema into ``folder`` (created if missing); returns the paths."""
    root = Path(folder)
    return [write_text_atomic(root / name, render(schema)) for name, schema in all_schemas().items()]
