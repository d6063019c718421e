"""CLI: ``ketaweight store load | export | summary``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table as RichTable

from ketaweight.cli import app
from ketaweight.cli._common import console, run_cli
from ketaweight.privacy import mask_count
from ketaweight.store import Store

store_app = typer.Typer(help="Create, load, export and summarise the canonical DuckDB store.", no_args_is_help=True)
app.add_typer(store_app, name="store")


def print_store_summary(store: Store) -> None:
    """Rows per table and measurements per kind (counts under 11 masked)."""
    table = RichTable(title=f"Store {store.path.name}")
    table.add_column("table")
    table.add_column("rows", justify="right")
    table.add_column("patients", justify="right")
    for name, rows in store.counts().items():
        patients = store.con.execute(f'SELECT count(DISTINCT patient_id) FROM "{name}"').fetchone()[0]
        table.add_row(name, mask_count(rows), mask_count(patients))
    console.print(table)
    kinds = store.query("SELECT kind, unit, count(*) AS n, count(DISTINCT patient_id) AS patients FROM measurements GROUP BY 1, 2 ORDER BY 1")
    if len(kinds):
        t2 = RichTable(title="Measurements by kind")
        for col in ("kind", "unit", "rows", "patients"):
            t2.add_column(col, justify="right" if col in ("rows", "patients") else "left")
        for row in kinds.itertuples():
            t2.add_row(row.kind, row.unit, mask_count(row.n), mask_count(row.patients))
        console.print(t2)


@store_app.command("load")
def load_command(
    folder: Path = typer.Argument(..., help="Folder with patients.csv|parquet, exposures…, measurements…, lifestyle…, adverse_events…"),
    store: Path = typer.Option(..., "--store", help="DuckDB store file (created if missing)."),
) -> None:
    """Validate and load a folder of CSV/Parquet tables; all-or-nothing."""
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
    out: Path = typer.Option(..., "--out", help="Folder for <table>.csv or <table>.parquet."),
    fmt: str = typer.Option("parquet", "--format", help="csv or parquet."),
) -> None:
    """Export every canonical table (canonical units) to CSV or Parquet."""
    def action():
        with Store(store, read_only=True) as st:
            return st.export(out, fmt)
    for name, path in run_cli(action).items():
        console.print(f"{name}: {path}")


@store_app.command("summary")
def summary_command(store: Path = typer.Option(..., "--store", help="DuckDB store file.")) -> None:
    """Rows and patients per table (counts under 11 shown as <11)."""
    def action():
        with Store(store, read_only=True) as st:
            print_store_summary(st)
    run_cli(action)
