"""CLI: ketaweight schemas — write the JSON Schemas of every results kind and of the study spec."""

from __future__ import annotations

from pathlib import Path

import typer

from ketaweight.cli import app
from ketaweight.cli._common import console, run_cli


@app.command("schemas")
def schemas_command(
    out: Path = typer.Argument(Path("schemas"), help="Folder for <kind>.schema.json and study.schema.json."),
    reference: Path | None = typer.Option(None, "--reference", help="Also write the study TOML reference page "
                                          "(Markdown: every key, type, default and meaning) to this file."),
) -> None:
    """Write the JSON Schemas of every results file kind and of the study TOML (as shipped in docs/schemas/)."""
    from ketaweight.network import bundle, synthesis, validation  # noqa: F401  (register the network kinds)
    from ketaweight.pipelines.schemas import write_schemas

    from ketaweight.core.results import write_text_atomic
    from ketaweight.pipelines.schemas import study_reference

    for path in run_cli(lambda: write_schemas(out)):
        console.print(str(path), highlight=False)
    if reference is not None:
        console.print(str(write_text_atomic(reference, study_reference())), highlight=False)
