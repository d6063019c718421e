"""The canonical store: one DuckDB file holding patients, exposures, measurements,
lifestyle and adverse_events (see :mod:`ketaweight.core.schema`).

Loads are all-or-nothing: every incoming row of every table is validated first (with file,
line, column and reason for each problem), then all tables are inserted in one transaction.
A failed load leaves the store exactly as it was.  Validation screens each table in one pass and
reports in detail only a table where the screening found something
(:mod:`ketaweight.store.checks`); sources are read in place or streamed
(:mod:`ketaweight.store.staging`), so a load's memory does not grow with the data beyond
DuckDB's memory limit.

Each load also records its provenance (simulated or real records, the source, the period) in the
table ``_ketaweight_loads``, so every result computed from the store says where its data came
from (:meth:`Store.provenance`); an export writes it beside the tables.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import duckdb
import pandas as pd
import pyarrow as pa

from ketaweight.core.errors import InputError, Location
from ketaweight.core.provenance import Provenance, read_provenance_file, write_provenance_file
from ketaweight.core.schema import MEASUREMENT_KINDS, TABLES, create_table_sql
from ketaweight.sources.files import find_table_files
from ketaweight.store.checks import UnitStats, create_units_table, insert_sql, screen, unit_conversions, unit_stats, validate_staged
from ketaweight.store.staging import Incoming, Staging, contract_problems, conversion_error

ExportFormat = str  # "csv" | "parquet"

LOADS_TABLE = "_ketaweight_loads"
"""One row per completed load: when, its provenance, and the rows it added per table."""

_LOADS_SQL = (f'CREATE TABLE IF NOT EXISTS "{LOADS_TABLE}" (load_no INTEGER, loaded_utc TIMESTAMP, origin VARCHAR, '
              "source VARCHAR, period VARCHAR, rows_json VARCHAR)")

MEMORY_LIMIT = "2GiB"
"""DuckDB's memory limit for a store file (beyond it DuckDB spills to ``<store>.tmp/``); DuckDB's
own default, 80% of the machine, lets one load or cohort query take most of a shared machine."""

Checks = Literal["values", "contract"]
"""How :meth:`Store.load_frames` validates: every value (``"values"``), or — for frames valid by
construction, such as the simulator's — only their contract (``"contract"``)."""


@dataclass
class LoadReport:
    """What a load did: rows inserted per table and unit conversions applied."""

    rows: dict[str, int] = field(default_factory=dict)
    conversions: dict[str, int] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)


def _check_contract_units(units: UnitStats, label: str) -> None:
    """Trusted measurements: every (kind, unit) pair must be an accepted one (the contract)."""
    stray = [f"{unit!r} for {kind!r}" for kind, unit, *_stats in units
             if kind not in MEASUREMENT_KINDS or unit not in MEASUREMENT_KINDS[kind].accepted_units]
    if stray:
        raise InputError([(Location(label, None, "unit"), f"units not accepted: {', '.join(stray)}")])


class Store:
    """A DuckDB file with the canonical tables.  Use as a context manager or call :meth:`close`."""

    def __init__(self, path: str | Path, *, read_only: bool = False, memory_limit: str | None = MEMORY_LIMIT) -> None:
        """Open (or create) the store at ``path``; ``":memory:"`` gives a throw-away in-memory store.

        ``memory_limit`` caps DuckDB's memory for a store file (a DuckDB size such as ``"4GiB"``;
        None = DuckDB's default); an in-memory store keeps DuckDB's default, as its data live there."""
        self.path = Path(path)
        in_memory = str(path) == ":memory:"
        if read_only and not in_memory and not self.path.exists():
            raise FileNotFoundError(f"{self.path}: store not found")
        if not in_memory:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.con = duckdb.connect(str(path), read_only=read_only and not in_memory)
        if memory_limit is not None and not in_memory:
            self.con.execute(f"SET memory_limit = '{memory_limit}'")
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

        def stage(staging: Staging) -> dict[str, Incoming]:
            return {name: (staging.csv if path.suffix == ".csv" else staging.parquet)(name, TABLES[name], path)
                    for name, path in files.items()}

        return self._load(stage, provenance)

    def load_frames(self, frames: dict[str, pd.DataFrame | pa.Table], *, label: str = "data frame",
                    provenance: Provenance | None = None, checks: Checks = "values") -> LoadReport:
        """Load in-memory tables (pandas or Arrow, typed columns), e.g. from the simulator.

        ``provenance`` says where they came from (default: real records, described by ``label``).
        ``checks="contract"`` is for Arrow tables that are valid by construction (the simulator's,
        whose tests validate every value): their contract is checked once — known columns of the
        exact Arrow types, no empty required value, allowed values in the dictionaries — instead of
        every value, which makes writing a simulated cohort several times faster.  It applies to an
        empty store only; into a store that has rows every value is checked."""
        unknown = set(frames) - set(TABLES)
        if unknown:
            raise InputError([(Location(label), f"unknown table(s) {sorted(unknown)}; known: {', '.join(TABLES)}")])
        trusted = checks == "contract" and not any(self._has_rows(name) for name in TABLES)
        if trusted:
            problems = [p for name, frame in frames.items() for p in contract_problems(name, TABLES[name], frame, label)]
            if problems:
                raise InputError(problems)

        def stage(staging: Staging) -> dict[str, Incoming]:
            return {name: staging.frame(name, TABLES[name], frame, label, trusted=trusted) for name, frame in frames.items()}

        return self._load(stage, provenance or Provenance("real", f"records from {label}"))

    def _has_rows(self, table: str) -> bool:
        return self.con.execute(f'SELECT EXISTS (SELECT 1 FROM "{table}")').fetchall()[0][0]

    def _load(self, stage: Callable[[Staging], dict[str, Incoming]], provenance: Provenance) -> LoadReport:
        """Stage the incoming tables, screen them, report the flagged ones in detail, then insert
        everything in one transaction (or nothing, raising InputError with every problem)."""
        staging = Staging(self.con)
        try:
            create_units_table(self.con)
            incoming: dict[str, Incoming] = stage(staging)
            patients = incoming["patients"].typed if "patients" in incoming else None
            units: UnitStats | None = None
            flagged = []
            for name in TABLES:  # patients first
                inc = incoming.get(name)
                if inc is None:
                    continue
                try:
                    if name == "measurements":
                        units = unit_stats(self.con, inc.typed)
                    if not inc.trusted and screen(self.con, inc.table, inc.typed, unparsed_flag=inc.unparsed_flag, units=units,
                                                  staged_patients=None if name == "patients" else patients):
                        flagged.append(name)
                except duckdb.ConversionException as exc:
                    inc.stage_for_report()  # raises the error as the staging words it
                    raise conversion_error(name, exc) from exc
            problems = []
            for name in flagged:
                inc = incoming[name]
                staged, text = inc.stage_for_report()
                problems += validate_staged(self.con, inc.table, staged, inc.label, line_label=inc.line_label,
                                            staged_patients=None if name == "patients" else patients, text=text)
            if problems:
                raise InputError(problems)
            report = LoadReport(sources={n: inc.label for n, inc in incoming.items()})
            if units is not None:
                if incoming["measurements"].trusted:
                    _check_contract_units(units, incoming["measurements"].label)
                report.conversions = unit_conversions(units)
            self.con.execute("BEGIN TRANSACTION")
            try:
                for name in TABLES:
                    if name in incoming:
                        sql = insert_sql(TABLES[name], incoming[name].typed, text=False, convert_units=bool(report.conversions))
                        try:
                            report.rows[name] = self.con.execute(sql).fetchall()[0][0]
                        except duckdb.ConversionException as exc:
                            raise conversion_error(name, exc) from exc
                self._record_load(provenance, report.rows)
                self.con.execute("COMMIT")
            except BaseException:
                self.con.execute("ROLLBACK")
                raise
            self.con.execute("CHECKPOINT")
            return report
        finally:
            staging.close()

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
