"""CLI: ``ketaweight store load | export | summary``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ketaweight.cli import app
from ketaweight.cli._common import console, run_cli
from ketaweight.core.privacy import mask_count

if TYPE_CHECKING:
    from ketaweight.pipelines.imports import ImportResult
    from ketaweight.store import Store

store_app = typer.Typer(help="Create, load, export and summarise the canonical DuckDB store.", no_args_is_help=True)
app.add_typer(store_app, name="store")


def print_store_summary(store: Store) -> None:
    """Rows per table and measurements per kind (counts under 11 masked)."""
    from ketaweight.cli.tables import store_tables
    from ketaweight.store.summary import store_summary

    for table in store_tables(store_summary(store), store.path.name):
        console.print(table)


def _rows(n: int) -> str:
    return f"{n:,} row" + ("" if n == 1 else "s")


@store_app.command("load")
def load_command(
    folder: Path = typer.Argument(..., help="Folder with patients.csv|parquet, exposures..., measurements..., lifestyle..., adverse_events..."),
    store: Path = typer.Option(..., "--store", help="DuckDB store file (created if missing)."),
) -> None:
    """Validate and load a folder of CSV/Parquet tables; all-or-nothing.

    Prints a receipt for the data owner: exact rows per table (loaded and now in the store), unit
    conversions, and every file of the folder that was not loaded, with why."""
    from ketaweight.store import Store

    def action():
        with Store(store) as st:
            return st.load_folder(folder)
    report = run_cli(action)
    console.print(f"loaded into {store} (the data owner's receipt: exact counts, not for sharing):", highlight=False)
    for name, n in report.rows.items():
        console.print(f"  {name}: {_rows(n)} from {report.sources[name]} ({report.store_rows.get(name, n):,} now in the store)",
                      highlight=False)
    for conversion, n in report.conversions.items():
        console.print(f"  converted {_rows(n)}, {conversion}", highlight=False)
    for name, why in report.skipped.items():
        console.print(f"  skipped {name}: {why}", highlight=False)


@store_app.command("export")
def export_command(
    store: Path = typer.Option(..., "--store", help="DuckDB store file."),
    out: Path = typer.Option(..., "--out", help="Folder for <table>.csv or <table>.parquet (and provenance.json)."),
    fmt: str = typer.Option("parquet", "--format", help="csv, parquet, omop (OMOP CDM 5.4) or fhir (FHIR R4)."),
    layout: str | None = typer.Option(None, "--layout", help="omop: csv (default) or duckdb; fhir: ndjson (default) or bundle."),
) -> None:
    """Export every canonical table (canonical units) to CSV, Parquet, an OMOP CDM or FHIR, with the data's provenance."""
    from ketaweight.pipelines.imports import export_store
    from ketaweight.store import Store

    def action():
        if fmt in ("omop", "fhir"):
            return export_store(store, out, fmt, layout=layout)  # type: ignore[arg-type]
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


def print_import(result: ImportResult, exact: bool) -> None:
    """The import report (counts under 11 masked unless ``exact``) and the store's conversions."""
    for line in result.report.lines(exact=exact):
        console.print(line, highlight=False, soft_wrap=False)
    for conversion, n in result.load.conversions.items():
        console.print(f"the store converted {mask_count(n)} rows, {conversion}", highlight=False)
    console.print(f"provenance: {result.provenance.label}", highlight=False)
    console.print(f"store: [bold]{result.store}[/]")


@store_app.command("import-omop")
def import_omop_command(
    source: str = typer.Argument(..., help="A DuckDB CDM file, a folder of CDM CSV files, or a postgresql:// URL (read-only); "
                                 "with --engine spark a folder of CDM Parquet tables or catalog:SCHEMA."),
    store: Path = typer.Option(..., "--store", help="DuckDB store file (created if missing)."),
    cdm_schema: str | None = typer.Option(None, "--cdm-schema", help="Schema of the CDM tables (PostgreSQL default: public; "
                                          "Spark: give catalog:SCHEMA as SOURCE)."),
    vocabulary_schema: str | None = typer.Option(None, "--vocabulary-schema", help="Schema of the vocabulary tables (default: the CDM schema)."),
    mapping: Path | None = typer.Option(None, "--mapping", help="TOML file extending the built-in concept sets."),
    all_persons: bool = typer.Option(False, "--all-persons", help="Import every person, not only those with depression or a ketamine/esketamine exposure."),
    report: Path | None = typer.Option(None, "--report", help="Also write the import report as JSON."),
    exact_counts: bool = typer.Option(False, "--exact-counts", help="Exact counts and example row ids (the data owner's receipt; not for sharing)."),
    engine: str = typer.Option("duckdb", "--engine", envvar="KETAWEIGHT_ENGINE",
                               help="spark: SOURCE is a folder of CDM Parquet tables or catalog:SCHEMA (the tables of a "
                                    "schema of Spark's catalog, e.g. Delta tables on Databricks) and the selection runs on "
                                    "Spark (docs/scale.md); duckdb: as SOURCE says."),
    spark_master: str = typer.Option("local[2]", "--spark-master", envvar="KETAWEIGHT_SPARK_MASTER",
                                     help="With --engine spark: the Spark master URL (local[N], spark://host:7077, yarn)."),
) -> None:
    """Import an OMOP CDM 5.4: concepts resolved from its vocabulary, selection pushed down, every left-out row counted."""
    from ketaweight.core.spark import check_master
    from ketaweight.core.vocabulary import ENGINES
    from ketaweight.pipelines.imports import import_omop

    def action():
        if engine not in ENGINES:
            raise ValueError(f"--engine {engine!r}: choose one of {', '.join(ENGINES)}")
        check_master(spark_master)
        return import_omop(store, source, cdm_schema=cdm_schema, vocabulary_schema=vocabulary_schema,
                           mapping_file=mapping, all_persons=all_persons, report_path=report,
                           exact_counts=exact_counts, on_stage=lambda t: console.print(t, highlight=False),
                           engine=engine, spark_master=spark_master)

    result = run_cli(action)
    print_import(result, exact_counts)


@store_app.command("import-fhir")
def import_fhir_command(
    source: Path = typer.Argument(..., help="A folder of bulk-export NDJSON files (one resource type per file) and/or Bundle .json files, or one file."),
    store: Path = typer.Option(..., "--store", help="DuckDB store file (created if missing)."),
    mapping: Path | None = typer.Option(None, "--mapping", help="TOML file extending the built-in concept sets."),
    validate: str = typer.Option("read", "--validate", help="read: every element ketaweight reads against its FHIR R4 type, and the "
                                 "names of all elements around them (compiled from fhir.resources' R4B models; fast); full: the "
                                 "whole resource with the R4B models (several times slower); none: only what reading needs."),
    report: Path | None = typer.Option(None, "--report", help="Also write the import report as JSON."),
    exact_counts: bool = typer.Option(False, "--exact-counts", help="Exact counts and example file lines (the data owner's receipt; not for sharing)."),
) -> None:
    """Import FHIR R4 resources: Patient, Observation, Medication*, Condition, AdverseEvent, Procedure."""
    from ketaweight.pipelines.imports import import_fhir

    result = run_cli(lambda: import_fhir(store, source, mapping_file=mapping, validate=validate, report_path=report,
                                         exact_counts=exact_counts, on_stage=lambda t: console.print(t, highlight=False)))
    print_import(result, exact_counts)
