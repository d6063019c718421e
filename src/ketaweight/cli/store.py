"""CLI: ``ketaweight store load | export | summary``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ketaweight.cli import app
from ketaweight.cli._common import console, run_cli
from ketaweight.core.privacy import mask_count

if TYPE_CHECKING:
    from ketaweight.store import Store

store_app = typer.Typer(help="Create, load, export and summarise the canonical DuckDB store.", no_args_is_help=True)
app.add_typer(store_app, name="store")


def print_store_summary(store: Store) -> None:
    """Rows per table and measurements per kind (counts under 11 masked)."""
    from ketaweight.cli.tables import store_tables
    from ketaweight.store.summary import store_summary

    for table in store_tables(store_summary(store), store.path.name):
        console.print(table)


@store_app.command("load")
def load_command(
    folder: Path = typer.Argument(..., help="Folder with patients.csv|parquet, exposures..., measurements..., lifestyle..., adverse_events..."),
    store: Path = typer.Option(..., "--store", help="DuckDB store file (created if missing)."),
) -> None:
    """Validate and load a folder of CSV/Parquet tables; all-or-nothing."""
    from ketaweight.store import Store

    def action():
        with Store(store) as st:
            return st.load_folder(folder)
    report = run_cli(action)
    for name, n in report.rows.items():
        console.print(f"loaded {mask_count(n)} rows into {name} from {report.sources[name]}")
    for conversion, n in report.conversions.items():
        console.print(f"converted {mask_count(n)} rows, {conversion}")


@store_app.command("export")
def export_command(
    store: Path = typer.Option(..., "--store", help="DuckDB store file."),
    out: Path = typer.Option(..., "--out", help="Folder for <table>.csv or <table>.parquet (and provenance.json)."),
    fmt: str = typer.Option("parquet", "--format", help="csv or parquet."),
) -> None:
    """Export every canonical table (canonical units) to CSV or Parquet, with the data's provenance."""
    from ketaweight.store import Store

    def action():
        with Store(store, read_only=True) as st:
            return st.export(out, fmt)
    for name, path in run_cli(action).items():
        console.print(f"{name}: {path}")


@store_app.command("summary")
def summary_command(store: Path = typer.Option(..., "--store", help="DuckDB store file.")) -> None:
    """Rows and patients per table (counts under 11 shown as <11)."""
    from ketaweight.store import Store

    def action():
        with Store(store, read_only=True) as st:
            print_store_summary(st)
    run_cli(action)
