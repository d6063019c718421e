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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import duckdb
import pyarrow as pa

from ketaweight.core.duckdb_connection import connect
from ketaweight.core.errors import InputError, Location
from ketaweight.core.provenance import Provenance, read_provenance_file, write_provenance_file
from ketaweight.core.schema import MEASUREMENT_KINDS, TABLES, create_table_sql
from ketaweight.core.spark import normalise
from ketaweight.sources.files import find_table_files, skipped_files
from ketaweight.store.checks import (UnitStats, any_unparsed, create_units_table, insert_sql, screen, unit_conversions, unit_stats,
                                     units_flagged, validate_staged)
from ketaweight.store.staging import Incoming, Staging, contract_problems

if TYPE_CHECKING:  # pandas and Arrow datasets only in annotations: `store load` starts without importing them
    import pandas as pd
    import pyarrow.dataset as ds

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
    skipped: dict[str, str] = field(default_factory=dict)
    """Files of a loaded folder that are not table files: name → why they were not loaded."""
    store_rows: dict[str, int] = field(default_factory=dict)
    """Rows per table in the store after the load."""


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
        None = DuckDB's default); an in-memory store keeps DuckDB's default, as its data live there.
        A store file this call creates is removed again when it is left by an exception before any
        load completed (:meth:`__exit__`): a failed first load leaves nothing behind."""
        self.path = Path(path)
        in_memory = str(path) == ":memory:"
        if read_only and not in_memory and not self.path.exists():
            raise FileNotFoundError(f"{self.path}: store not found")
        self._created: list[Path] = []  # what this call created, innermost last (removed by a failed first load)
        if not in_memory and not self.path.exists():
            missing = [p for p in self.path.parents if not p.exists()]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._created = [*reversed(missing), self.path]
        self._loaded = False
        try:
            self.con = connect(str(path), read_only=read_only and not in_memory)
        except duckdb.IOException as exc:
            self._remove_created()
            raise open_error(self.path, exc) from exc
        try:
            if memory_limit is not None and not in_memory:
                self.con.execute("SET memory_limit = ?", [memory_limit])
            if not read_only:
                for table in TABLES.values():
                    self.con.execute(create_table_sql(table))
                self.con.execute(_LOADS_SQL)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.close()
        if exc_type is not None and not self._loaded:
            self._remove_created()

    def close(self) -> None:
        self.con.close()

    def _remove_created(self) -> None:
        """Remove the store file this object created (with DuckDB's side files) and the folders made for it."""
        if not self._created:
            return
        for side in (self.path, self.path.with_name(self.path.name + ".wal")):
            side.unlink(missing_ok=True)
        spill = self.path.with_name(self.path.name + ".tmp")
        if spill.is_dir() and not any(spill.iterdir()):
            spill.rmdir()
        for folder in reversed(self._created[:-1]):
            try:
                folder.rmdir()  # only if still empty
            except OSError:
                break
        self._created = []

    # ------------------------------------------------------------------ loading
    def load_folder(self, folder: str | Path, *, provenance: Provenance | None = None) -> LoadReport:
        """Load ``<table>.csv`` or ``<table>.parquet`` files from a folder (any subset of tables).

        ``provenance`` defaults to the folder's ``provenance.json`` (written by an export), else to
        real records from that folder.  Other files are not loaded; the report names them and why
        (:attr:`LoadReport.skipped`)."""
        folder = Path(folder)
        files = find_table_files(folder, TABLES)
        provenance = provenance or read_provenance_file(folder) or Provenance("real", f"records loaded from {folder.name}/")

        def stage(staging: Staging) -> dict[str, Incoming]:
            return {name: (staging.csv if path.suffix == ".csv" else staging.parquet)(name, TABLES[name], path)
                    for name, path in files.items()}

        report = self._load(stage, provenance, "this folder")
        report.skipped = skipped_files(folder, TABLES)
        return report

    def load_frames(self, frames: dict[str, pd.DataFrame | pa.Table | ds.Dataset], *, label: str = "data frame",
                    provenance: Provenance | None = None, checks: Checks = "values") -> LoadReport:
        """Load in-memory tables (pandas or Arrow, typed columns), e.g. from the simulator, or Arrow datasets
        (e.g. Parquet files an import wrote), which are scanned in batches and never held whole in memory.

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
        return self.con.execute(f"SELECT EXISTS (SELECT 1 FROM {_q(table)})").fetchall()[0][0]

    def _load(self, stage: Callable[[Staging], dict[str, Incoming]], provenance: Provenance, what: str | None = None) -> LoadReport:
        """Stage the incoming tables, then insert everything in one transaction after validating it
        (or nothing, raising InputError with every problem).

        Into tables that are all empty (a first load, the large case) the rows are inserted first and
        screened where they now are, inside the transaction, so each source is read once; a flagged
        table rolls the transaction back and the load takes the other way.  Otherwise the incoming
        relations are screened first, the flagged ones reported in detail, then inserted.
        ``what`` names the source in the message for a repeated load ("this folder"); without it, a
        repeated load is reported row by row (imports: their own receipts say what they read)."""
        staging = Staging(self.con)
        try:
            create_units_table(self.con)
            incoming: dict[str, Incoming] = stage(staging)
            report, units = None, None
            if not any(inc.trusted for inc in incoming.values()) and not any(self._has_rows(name) for name in incoming):
                units = self._measurement_units(incoming)
                if units is None or not units_flagged(units):
                    report = self._insert(incoming, provenance, units, screen_after=True)
            if report is None:
                report = self._insert(incoming, provenance, self._screen_and_report(incoming, provenance, what, units))
            self._loaded = True
            try:
                self.con.execute("CHECKPOINT")
            except duckdb.IOException as exc:  # committed (in the write-ahead log), not yet folded into the file
                raise write_error(self.path, exc, committed=True) from exc
            report.store_rows = self.counts()
            return report
        finally:
            staging.close()

    def _measurement_units(self, incoming: dict[str, Incoming]) -> UnitStats | None:
        """The incoming measurements' :func:`unit_stats` (None without measurements)."""
        inc = incoming.get("measurements")
        if inc is None:
            return None
        with _reading(inc):
            return unit_stats(self.con, inc.typed)

    def _screen_and_report(self, incoming: dict[str, Incoming], provenance: Provenance, what: str | None,
                           units: UnitStats | None = None) -> UnitStats | None:
        """Screen the staged relations, report the flagged ones in detail (raising InputError with every
        problem, or the one line of a repeated load); the measurements' unit stats when all is valid
        (``units``: those already computed by a first load's attempt, not read again)."""
        patients = incoming["patients"].typed if "patients" in incoming else None
        flagged = []
        for name in TABLES:  # patients first
            inc = incoming.get(name)
            if inc is None:
                continue
            if name == "measurements" and units is None:
                units = self._measurement_units(incoming)
            with _reading(inc):
                if not inc.trusted and screen(self.con, inc.table, inc.typed, unparsed_flag=inc.unparsed_flag, units=units,
                                              staged_patients=None if name == "patients" else patients):
                    flagged.append(name)
        for name in flagged if what else ():
            with _reading(incoming[name]):  # reads the incoming file again: a corrupt page may surface only here
                self._refuse_reload(incoming[name], what, provenance)
        problems = []
        for name in flagged:
            inc = incoming[name]
            with _reading(inc):
                staged, text = inc.stage_for_report()
            problems += validate_staged(self.con, inc.table, staged, inc.label, line_label=inc.line_label,
                                        staged_patients=None if name == "patients" else patients, text=text)
        if problems:
            raise InputError(problems)
        return units

    def _insert(self, incoming: dict[str, Incoming], provenance: Provenance, units: UnitStats | None, *,
                screen_after: bool = False) -> LoadReport | None:
        """Insert every incoming table and record the load, in one transaction.

        ``units`` are the measurements' :func:`unit_stats` (valid ones: they decide the conversions).
        With ``screen_after`` (tables that were empty) the inserted rows are screened inside the
        transaction, and a table the screening flags (or a required value missing) rolls everything
        back and returns None: the caller then screens and reports the staged relations."""
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
                    except duckdb.ConstraintException:
                        if not screen_after:
                            raise
                        self._rollback()  # a required value is missing: the report names it
                        return None
                    except duckdb.ConversionException as exc:
                        raise incoming[name].conversion_error(exc) from exc
                    except duckdb.Error as exc:
                        if incoming[name].unreadable is None or "space" in str(exc).lower():
                            raise  # not the input's (a full disk is the store's: see write_error)
                        raise _unreadable(incoming[name], exc) from exc
            if screen_after and self._inserted_flagged(incoming, units):
                self._rollback()
                return None
            self._record_load(provenance, report.rows)
            self.con.execute("COMMIT")
        except BaseException as exc:
            self._rollback()
            if isinstance(exc, duckdb.IOException):
                raise write_error(self.path, exc) from exc
            raise
        return report

    def _inserted_flagged(self, incoming: dict[str, Incoming], units: UnitStats | None) -> bool:
        """Whether the screening flags any table's rows just inserted into its (before, empty) store table:
        a value that did not parse (the staged flag), or a row the screening's rules would report."""
        for name in TABLES:
            inc = incoming.get(name)
            if inc is None:
                continue
            with _reading(inc):
                if inc.unparsed_flag and any_unparsed(self.con, inc.typed):
                    return True
            if screen(self.con, inc.table, name, units=units, store_keys=False):
                return True
        return False

    def _rollback(self) -> None:
        try:
            self.con.execute("ROLLBACK")
        except duckdb.Error:
            pass  # the failed statement already ended the transaction

    def _refuse_reload(self, inc: Incoming, what: str, provenance: Provenance) -> None:
        """Raise a one-line InputError when the store already holds a load from the same source and
        every incoming row's key is already in the store (the same folder loaded again), instead of
        one "key already in the store" line per row."""
        table = inc.table
        when = self.con.execute(f"SELECT max(loaded_utc) FROM {_q(LOADS_TABLE)} WHERE origin = ? AND source = ?",
                                [provenance.origin, provenance.source]).fetchall()[0][0]
        if when is None or not self._has_rows(table.name):
            return
        match = " AND ".join(f"t.{_q(k)} = s.{_q(k)}" for k in table.key)
        n, new = self.con.execute(f"SELECT count(*), count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM {_q(table.name)} t "
                                  f"WHERE {match})) FROM {_q(inc.typed)} s").fetchall()[0]
        if n == 0 or new:
            return
        raise InputError([(Location(inc.label), f"{what} looks already loaded (loaded at {when:%Y-%m-%d %H:%M} UTC, from "
                           f"{provenance.source}): every one of its {n:,} rows of {table.name} has a key already in "
                           f"{self.path.name}; nothing was changed")])

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
        return {name: self.con.execute(f"SELECT count(*) FROM {_q(name)}").fetchall()[0][0] for name in TABLES}

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
        """Write every table to ``folder/<table>.csv`` or ``.parquet`` (canonical units).

        The file names go to DuckDB as values of its relation API, never into SQL text, so any
        path (an apostrophe, a semicolon) is just a path."""
        if fmt not in ("csv", "parquet"):
            raise ValueError(f"export format must be 'csv' or 'parquet', got {fmt!r}")
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        written = {}
        for name in TABLES:
            target = out / f"{name}.{fmt}"
            rows = self.con.table(name).order(", ".join(_q(k) for k in TABLES[name].key))
            try:
                if fmt == "parquet":
                    rows.write_parquet(str(target))
                else:
                    rows.write_csv(str(target), header=True, timestamp_format="%Y-%m-%d %H:%M:%S")
            except duckdb.IOException as exc:
                raise InputError([(Location(str(target)), f"cannot write the file: {exc}")]) from exc
            written[name] = target
        written["provenance"] = write_provenance_file(out, self.provenance())
        return written


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@contextmanager
def _reading(inc: Incoming) -> Iterator[None]:
    """Statements that read an incoming file: a value that does not convert, or (for Parquet) a corrupt
    page, becomes an InputError naming the file; any other DuckDB error is the store's and passes."""
    try:
        yield
    except duckdb.Error as exc:
        if inc.unreadable is None and not isinstance(exc, duckdb.ConversionException):
            raise
        raise _unreadable(inc, exc) from exc


def _unreadable(inc: Incoming, exc: duckdb.Error) -> InputError:
    """A DuckDB error while reading an incoming Parquet file (a corrupt page): an InputError naming the file."""
    if isinstance(exc, duckdb.ConversionException):
        return inc.conversion_error(exc)
    return InputError([(Location(inc.label), f"cannot read the file's data: {str(exc).splitlines()[0]}")])


def open_error(path: Path, exc: duckdb.IOException) -> InputError:
    """DuckDB could not open the store file: another process holds it, or the file is not a store."""
    text = str(exc)
    if "lock" in text.lower():
        return InputError([(Location(str(path)), "the store is in use by another ketaweight or DuckDB process "
                            "(a load, an analysis or the clinic service); wait until it has finished, then try again")])
    return InputError([(Location(str(path)), f"cannot open the store: {text}")])


def write_error(path: Path, exc: duckdb.IOException, *, committed: bool = False) -> InputError:
    """Writing the store failed (typically a full disk)."""
    text = str(exc)
    full = "space" in text.lower() or "disk" in text.lower()
    state = ("the load was committed to the store's write-ahead log and is applied the next time the store is opened"
             if committed else "the store's contents are unchanged")
    return InputError([(Location(str(path)), f"could not write the store{' (the disk is full)' if full else ''}: "
                        f"{text.splitlines()[0]}; {state}")])
