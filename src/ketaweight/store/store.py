"""The canonical store: one DuckDB file holding patients, exposures, measurements,
lifestyle and adverse_events (see :mod:`ketaweight.core.schema`).

Loads are all-or-nothing: every incoming row of every table is validated first (with file,
line, column and reason for each problem), then all tables are inserted in one transaction.
A failed load leaves the store exactly as it was.

Each load also records its provenance (simulated or real records, the source, the period) in the
table ``_ketaweight_loads``, so every result computed from the store says where its data came
from (:meth:`Store.provenance`); an export writes it beside the tables.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from ketaweight.core.errors import InputError, Location
from ketaweight.core.provenance import Provenance, read_provenance_file, write_provenance_file
from ketaweight.sources.files import find_table_files, read_csv_as_text, read_parquet_as_text
from ketaweight.core.schema import TABLES, create_table_sql
from ketaweight.core.spark import normalise
from ketaweight.store.checks import insert_sql, unit_conversions, validate_staged

ExportFormat = str  # "csv" | "parquet"

LOADS_TABLE = "_ketaweight_loads"
"""One row per completed load: when, its provenance, and the rows it added per table."""

_LOADS_SQL = (f'CREATE TABLE IF NOT EXISTS "{LOADS_TABLE}" (load_no INTEGER, loaded_utc TIMESTAMP, origin VARCHAR, '
              "source VARCHAR, period VARCHAR, rows_json VARCHAR)")


@dataclass
class LoadReport:
    """What a load did: rows inserted per table and unit conversions applied."""

    rows: dict[str, int] = field(default_factory=dict)
    conversions: dict[str, int] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)


class Store:
    """A DuckDB file with the canonical tables.  Use as a context manager or call :meth:`close`."""

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        """Open (or create) the store at ``path``; ``":memory:"`` gives a throw-away in-memory store."""
        self.path = Path(path)
        in_memory = str(path) == ":memory:"
        if read_only and not in_memory and not self.path.exists():
            raise FileNotFoundError(f"{self.path}: store not found")
        if not in_memory:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.con = duckdb.connect(str(path), read_only=read_only and not in_memory)
        if not read_only:
            for table in TABLES.values():
                self.con.execute(create_table_sql(table))
            self.con.execute(_LOADS_SQL)

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    # ------------------------------------------------------------------ loading
    def load_folder(self, folder: str | Path, *, provenance: Provenance | None = None) -> LoadReport:
        """Load ``<table>.csv`` or ``<table>.parquet`` files from a folder (any subset of tables).

        ``provenance`` defaults to the folder's ``provenance.json`` (written by an export), else to
        real records from that folder."""
        folder = Path(folder)
        files = find_table_files(folder, TABLES)
        provenance = provenance or read_provenance_file(folder) or Provenance("real", f"records loaded from {folder.name}/")
        staged: dict[str, tuple[pd.DataFrame, str, str]] = {}
        for name, path in files.items():
            table = TABLES[name]
            if path.suffix == ".csv":
                staged[name] = (read_csv_as_text(path, table), str(path), "line")
            else:
                staged[name] = (read_parquet_as_text(path, table), str(path), "row")
        return self._load(staged, typed=False, provenance=provenance)

    def load_frames(self, frames: dict[str, pd.DataFrame | pa.Table], *, label: str = "data frame",
                    provenance: Provenance | None = None) -> LoadReport:
        """Load in-memory tables (pandas or Arrow, typed columns), e.g. from the simulator.

        ``provenance`` says where they came from (default: real records, described by ``label``)."""
        unknown = set(frames) - set(TABLES)
        if unknown:
            raise InputError([(Location(label), f"unknown table(s) {sorted(unknown)}; known: {', '.join(TABLES)}")])
        staged = {name: (frame, f"{label}: {name}", "row") for name, frame in frames.items()}
        return self._load(staged, typed=True, provenance=provenance or Provenance("real", f"records from {label}"))

    def _stage(self, name: str, frame: pd.DataFrame | pa.Table, typed: bool) -> str:
        """Copy incoming rows into a temporary table with a ``_line`` column: text columns
        for files, canonical types for typed frames (a value that cannot be cast is an error)."""
        view, staged = f"_incoming_{name}", f"_staged_{name}"
        self.con.register(view, frame)
        table = TABLES[name]
        if typed:
            columns = frame.column_names if isinstance(frame, pa.Table) else list(frame.columns)
            extra = [c for c in columns if c not in table.column_names]
            if extra:
                self.con.unregister(view)
                raise InputError([(Location(f"data frame: {name}", None, c), "unknown column") for c in extra])
            casts = ", ".join(
                f'CAST("{c.name}" AS {c.sql_type}) AS "{c.name}"' if c.name in columns
                else f'NULL::{c.sql_type} AS "{c.name}"'
                for c in table.columns
            )
            try:
                self.con.execute(f'CREATE OR REPLACE TEMP TABLE {staged} AS SELECT row_number() OVER () AS _line, {casts} FROM {view}')
            except duckdb.ConversionException as exc:
                raise InputError([(Location(f"data frame: {name}"), f"a column does not have its canonical type: {exc}")]) from exc
            finally:
                self.con.unregister(view)
            return staged
        else:
            casts = ", ".join(
                f'NULLIF(trim("{c.name}"), \'\') AS "{c.name}"' if c.name in frame.columns
                else f'NULL::VARCHAR AS "{c.name}"'
                for c in table.columns
            )
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {staged} AS SELECT _line, {casts} FROM {view}")
            self.con.unregister(view)
        return staged

    def _load(self, incoming: dict[str, tuple[Any, str, str]], *, typed: bool, provenance: Provenance) -> LoadReport:
        staged_names: dict[str, str] = {}
        try:
            for name, (frame, _label, _ll) in incoming.items():
                staged_names[name] = self._stage(name, frame, typed)
            problems = []
            for name in TABLES:  # patients first
                if name not in staged_names:
                    continue
                _frame, label, line_label = incoming[name]
                problems += validate_staged(
                    self.con, TABLES[name], staged_names[name], label, line_label=line_label,
                    staged_patients=staged_names.get("patients") if name != "patients" else None,
                    text=not typed,
                )
            if problems:
                raise InputError(problems)
            report = LoadReport(sources={n: incoming[n][1] for n in staged_names})
            if "measurements" in staged_names:
                report.conversions = unit_conversions(self.con, staged_names["measurements"])
            self.con.execute("BEGIN TRANSACTION")
            try:
                for name in TABLES:
                    if name in staged_names:
                        self.con.execute(insert_sql(TABLES[name], staged_names[name], text=not typed))
                        report.rows[name] = self.con.execute(f"SELECT count(*) FROM {staged_names[name]}").fetchone()[0]
                self._record_load(provenance, report.rows)
                self.con.execute("COMMIT")
            except BaseException:
                self.con.execute("ROLLBACK")
                raise
            self.con.execute("CHECKPOINT")
            return report
        finally:
            for staged in staged_names.values():
                self.con.execute(f"DROP TABLE IF EXISTS {staged}")

    def _record_load(self, provenance: Provenance, rows: dict[str, int]) -> None:
        self.con.execute(
            f'INSERT INTO "{LOADS_TABLE}" SELECT coalesce(max(load_no), 0) + 1, now()::TIMESTAMP, ?, ?, ?, ? FROM "{LOADS_TABLE}"',
            [provenance.origin, provenance.source, provenance.period, json.dumps(rows)])

    # ------------------------------------------------------------------ reading
    def provenance(self) -> Provenance:
        """Where the store's records came from, from its load history (an old store without one, or an
        empty store, is described as records in this file)."""
        try:
            loads = self.con.execute(f'SELECT origin, source, period FROM "{LOADS_TABLE}" ORDER BY load_no').fetchall()
        except duckdb.CatalogException:
            loads = []
        combined = Provenance.combine([Provenance(o, s, p) for o, s, p in loads])
        return combined or Provenance("real", f"records in {self.path.name}")

    def counts(self) -> dict[str, int]:
        """Rows per canonical table."""
        return {name: self.con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in TABLES}

    def query(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        """Run SQL against the store and return a pandas DataFrame."""
        return self.con.execute(sql, params or []).df()

    def arrow(self, sql: str, views: dict[str, pd.DataFrame] | None = None) -> pa.Table:
        """Run SQL against the store, with ``views`` (name → frame) visible by name while it runs; the
        result as Arrow in the engines' one form (integers int64, floats float64:
        :func:`ketaweight.core.spark.normalise`), as :class:`~ketaweight.store.spark.SparkTables`
        gives it for the same SQL on Spark."""
        views = views or {}
        for name, frame in views.items():
            self.con.register(name, frame)
        try:
            return normalise(self.con.sql(sql).to_arrow_table())
        finally:
            for name in views:
                self.con.unregister(name)

    def export(self, folder: str | Path, fmt: ExportFormat = "parquet") -> dict[str, Path]:
        """Write every table to ``folder/<table>.csv`` or ``.parquet`` (canonical units)."""
        if fmt not in ("csv", "parquet"):
            raise ValueError(f"export format must be 'csv' or 'parquet', got {fmt!r}")
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        written = {}
        for name in TABLES:
            target = out / f"{name}.{fmt}"
            option = "(FORMAT parquet)" if fmt == "parquet" else "(FORMAT csv, HEADER, TIMESTAMPFORMAT '%Y-%m-%d %H:%M:%S')"
            order = ", ".join(f'"{k}"' for k in TABLES[name].key)
            self.con.execute(f"COPY (SELECT * FROM \"{name}\" ORDER BY {order}) TO '{target}' {option}")
            written[name] = target
        written["provenance"] = write_provenance_file(out, self.provenance())
        return written
