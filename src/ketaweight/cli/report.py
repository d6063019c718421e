"""CLI: ketaweight report — the graded answer and the report page from a results folder."""

from __future__ import annotations

from pathlib import Path

import typer

from ketaweight.cli import app
from ketaweight.cli._common import console, run_cli


@app.command("report")
def report_command(
    results: Path = typer.Option(..., "--results", "-r", help="Results folder of one run (the weight study JSON and "
                                 "whatever else ran: depression study, signals, responsible use, mediation ...)."),
    out: Path = typer.Option(Path("report.html"), "--out", "-o", help="HTML file to write; report.md and "
                             "report.json (same stem) are written beside it."),
    replace: bool = typer.Option(False, "--replace", help="Replace an earlier report of the same name."),
    figures: Path | None = typer.Option(None, "--figures", help="Also write every figure as SVG and PNG into this "
                                        "folder (<section>-<n>.svg|png)."),
) -> None:
    """Grade the evidence and write the report (self-contained HTML, Markdown, JSON)."""
    from ketaweight.report.render import write_report

    paths = run_cli(lambda: write_report(results, out, replace=replace, figures_dir=figures))
    if figures is not None:
        console.print(f"Figures: [bold]{figures}[/] (SVG and PNG)")
    console.print(f"Report: [bold]{paths.html}[/] (also {paths.markdown.name}, {paths.json.name})")
    console.print(f"Answer: {paths.sentence}", highlight=False)
