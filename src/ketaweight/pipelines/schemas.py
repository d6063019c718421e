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


def _toml_value(value: Any) -> str:
    """A default as it would be written in the study TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return "(none: leave the key out)" if value is None else str(value)


def _type_name(annotation: Any) -> str:
    text = str(annotation).replace("typing.", "")
    return text.removeprefix("<class '").removesuffix("'>").replace(" | ", " or ")


def study_reference() -> str:
    """The study TOML reference page (docs/study-reference.md): every section and key with its type,
    default and meaning (units are in the meaning), generated from the pydantic study model."""
    lines = ["<!-- generator: ketaweight -->", "# Study spec reference (TOML)", "",
             "Every key a study file may set, generated from `ketaweight.study.spec.Study` (a test keeps this page "
             "current; regenerate with `ketaweight schemas docs/schemas --reference docs/study-reference.md`). "
             "Keys not listed are refused, naming the file and the key. The JSON Schema of the same structure is "
             "[`schemas/study.schema.json`](schemas/study.schema.json); the shipped studies are in "
             "`src/ketaweight/study/studies/`.", ""]

    def section(model: type, path: str) -> None:
        nested = []
        rows = []
        for name, field in model.model_fields.items():
            ann = field.annotation
            if isinstance(ann, type) and hasattr(ann, "model_fields"):
                nested.append((name, ann))
                continue
            default = "required" if field.is_required() else f"`{_toml_value(field.get_default(call_default_factory=True))}`"
            doc = (field.description or "").replace("|", "\\|").replace("\n", " ")
            rows.append(f"| `{name}` | `{_type_name(ann)}` | {default} | {doc} |")
        if rows:
            doc = (model.__dict__.get("__doc__") or "").strip().split("\n\n")[0].replace("\n", " ")
            lines.extend([f"## `[{path}]`", "", *([doc, ""] if doc else []),
                          "| key | type | default | meaning |", "|---|---|---|---|", *rows, ""])
        for name, sub_model in nested:
            section(sub_model, f"{path}.{name}" if path else name)

    section(Study, "")
    return "\n".join(line for line in lines) + "\n"


def write_schemas(folder: str | Path) -> list[Path]:
    """Write every schema into ``folder`` (created if missing); returns the paths."""
    root = Path(folder)
    return [write_text_atomic(root / name, render(schema)) for name, schema in all_schemas().items()]
