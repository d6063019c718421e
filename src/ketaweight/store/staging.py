"""How incoming rows reach DuckDB for a load: each source as a relation in the canonical types
(screened, then inserted; :mod:`ketaweight.store.checks`), and on demand staged with ``_line``
for the detailed report of a table the screening flagged.

* CSV files are parsed once, as text, into a typed temporary table (a value that does not parse
  becomes NULL and sets :data:`~ketaweight.store.checks.PARSE_FLAG`); the report re-reads the
  file as text with its line numbers.
* Parquet files are read by DuckDB in place, in parallel and without a copy; a column whose
  Parquet type is not its canonical one is parsed from its text, as a CSV value would be.
* Data frames are read in place with a cast to each canonical type; so are Arrow datasets (e.g. the
  Parquet files an import writes), scanned in batches each time, never held whole in memory.  Frames that are valid by
  construction (the simulator's) may skip the screening: their contract — columns, Arrow types,
  no empty required value, allowed dictionary values — is checked once instead
  (:func:`contract_problems`).

Every relation here reads the same values the text of the file would give, so the fast path and
the report cannot disagree.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ketaweight.core.errors import InputError, Location
from ketaweight.core.schema import Table
from ketaweight.sources.files import NotPlainCsv, csv_text_batches, parquet_columns, parquet_out_of_range, read_csv_as_text
from ketaweight.store.checks import PARSE_FLAG, text_to_typed

if TYPE_CHECKING:  # only in annotations: loading files does not import pandas
    import pandas as pd
    import pyarrow.dataset as ds

_INTEGERS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")
_TIMESTAMPS = ("TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS")
_TIMESTAMP_TZ = "TIMESTAMP WITH TIME ZONE"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class Incoming:
    """One incoming table: ``typed`` names a relation with every column of ``table`` in its
    canonical type (plus :data:`PARSE_FLAG` when ``unparsed_flag``); ``stage_for_report()``
    stages it with ``_line`` for :func:`~ketaweight.store.checks.validate_staged` and returns the
    relation's name and whether its columns are text."""

    table: Table
    label: str
    line_label: str
    typed: str
    unparsed_flag: bool
    stage_for_report: Callable[[], tuple[str, bool]]
    trusted: bool = False
    unreadable: Callable[[Exception], InputError] | None = None
    """Words a DuckDB conversion error raised while reading the source (default: a data frame's)."""

    def conversion_error(self, exc: Exception) -> InputError:
        """The InputError for a value DuckDB could not convert while reading this table."""
        if self.unreadable is not None:
            return self.unreadable(exc)
        try:
            self.stage_for_report()  # a data frame: worded by the staging's own cast, as it names the column
        except InputError as worded:
            return worded
        return conversion_error(self.table.name, exc)


@dataclass
class Staging:
    """The temporary relations of one load (dropped by :meth:`close`)."""

    con: duckdb.DuckDBPyConnection
    _tables: list[str] = field(default_factory=list)
    _views: list[str] = field(default_factory=list)
    _registered: list[str] = field(default_factory=list)

    def close(self) -> None:
        for view in self._views:
            self.con.execute(f"DROP VIEW IF EXISTS {_q(view)}")
        for name in self._registered:
            self.con.unregister(name)
        for table in self._tables:
            self.con.execute(f"DROP TABLE IF EXISTS {_q(table)}")

    def _register(self, name: str, obj: Any) -> str:
        self.con.register(name, obj)
        self._registered.append(name)
        return name

    def _unregister(self, name: str) -> None:
        self.con.unregister(name)
        self._registered.remove(name)

    def _stage_text(self, name: str, table: Table, source: str, columns: list[str]) -> str:
        """A temporary table ``_line`` + every column of ``table`` as trimmed text (empty = NULL)."""
        staged = f"_staged_{name}"
        texts = ", ".join(f"NULLIF(trim({_q(c.name)}), '') AS {_q(c.name)}" if c.name in columns
                          else f"NULL::VARCHAR AS {_q(c.name)}" for c in table.columns)
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {_q(staged)} AS SELECT _line, {texts} FROM {_q(source)}")
        self._tables.append(staged)
        return staged

    # ------------------------------------------------------------------ CSV
    def csv(self, name: str, table: Table, path: Path) -> Incoming:
        """A CSV file parsed once into a typed temporary table (pyarrow's streaming reader; the
        exact pandas reader when the file is not plain, which also names structural problems)."""
        label = str(path)
        typed = f"_typed_{name}"
        columns = ", ".join(f"{_q(c.name)} {c.sql_type}" for c in table.columns)
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {_q(typed)} ({columns}, {PARSE_FLAG} BOOLEAN)")
        self._tables.append(typed)
        text_staged: list[str] = []
        try:
            for chunk in csv_text_batches(path, table):
                self._insert_parsed(typed, table, self._register("_chunk", chunk), chunk.column_names, trimmed=_untouched_by_trim(chunk))
                self._unregister("_chunk")
        except NotPlainCsv:
            if "_chunk" in self._registered:
                self._unregister("_chunk")
            self.con.execute(f"DELETE FROM {_q(typed)}")
            frame = read_csv_as_text(path, table)
            text_staged.append(self._stage_text(name, table, self._register(f"_incoming_{name}", frame), list(frame.columns)))
            self._insert_parsed(typed, table, text_staged[0], list(table.column_names), trimmed=set(table.column_names))

        def stage_for_report() -> tuple[str, bool]:
            if not text_staged:
                source = f"_text_{name}"
                self.con.execute(f"CREATE OR REPLACE TEMP TABLE {_q(source)} (_line BIGINT, "
                                 + ", ".join(f"{_q(c)} VARCHAR" for c in table.column_names) + ")")
                self._tables.append(source)
                for chunk in csv_text_batches(path, table):
                    self._register("_chunk", chunk)
                    present = [c for c in table.column_names if c in chunk.column_names]
                    cols = ", ".join(_q(c) for c in present)
                    self.con.execute(f"INSERT INTO {_q(source)} (_line, {cols}) SELECT _line, {cols} FROM _chunk")
                    self._unregister("_chunk")
                text_staged.append(self._stage_text(name, table, source, list(table.column_names)))
            return text_staged[0], True

        return Incoming(table, label, "line", typed, True, stage_for_report)

    def _insert_parsed(self, typed: str, table: Table, source: str, present: list[str], *, trimmed: set[str]) -> None:
        """Append ``source``'s text rows to ``typed``, parsed as the report would parse them; the columns in
        ``trimmed`` are already as ``NULLIF(trim(value), '')`` would make them."""
        texts = ", ".join((_q(c.name) if c.name in trimmed else f"NULLIF(trim({_q(c.name)}), '')") + f" AS {_q(c.name)}"
                          if c.name in present else f"NULL::VARCHAR AS {_q(c.name)}" for c in table.columns)
        values = ", ".join(f"{text_to_typed(c.sql_type, 't.' + _q(c.name))} AS {_q(c.name)}" for c in table.columns)
        parsed = [f"(t.{_q(c.name)} IS NOT NULL AND {text_to_typed(c.sql_type, 't.' + _q(c.name))} IS NULL)"
                  for c in table.columns if c.sql_type != "VARCHAR"]
        flag = " OR ".join(parsed) or "FALSE"
        self.con.execute(f"INSERT INTO {_q(typed)} SELECT {values}, {flag} FROM (SELECT {texts} FROM {_q(source)}) t")

    # ------------------------------------------------------------------ Parquet
    def parquet(self, name: str, table: Table, path: Path) -> Incoming:
        """A Parquet file read by DuckDB in place."""
        label = str(path)
        present = parquet_columns(path, table)
        source = self._parquet_view(f"_parquet_{name}", path)
        try:
            types = dict(self.con.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {source})").fetchall())
        except duckdb.Error as exc:
            raise InputError([(Location(label), f"cannot read Parquet file: {exc}")]) from exc
        values, parsed = [], []
        for col in table.columns:
            if col.name not in present:
                values.append(f"NULL::{col.sql_type} AS {_q(col.name)}")
                continue
            value, text = _parquet_value(col.sql_type, types[col.name], _q(col.name))
            values.append(f"{value} AS {_q(col.name)}")
            if text is not None and col.sql_type != "VARCHAR":
                parsed.append(f"({text} IS NOT NULL AND {value} IS NULL)")
        typed = f"_typed_{name}"
        flag = " OR ".join(parsed) or "FALSE"
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW {_q(typed)} AS SELECT {', '.join(values)}, {flag} AS {PARSE_FLAG} FROM {source}")
        self._views.append(typed)

        def stage_for_report() -> tuple[str, bool]:
            texts = ", ".join(f"{_parquet_text(types[c], _q(c))} AS {_q(c)}" for c in present)
            rows = f"_rows_{name}"
            numbered = self._parquet_view(f"_parquet_rows_{name}", path, file_row_number=True)
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {_q(rows)} AS SELECT file_row_number + 1 AS _line, {texts} "
                             f"FROM {numbered}")
            self._tables.append(rows)
            return self._stage_text(name, table, rows, present), True

        def unreadable(exc: Exception) -> InputError:
            try:
                located = parquet_out_of_range(path, table)
            except Exception:  # a file pyarrow cannot read either: named below without rows
                located = []
            return InputError(located or [(Location(label), f"cannot read the Parquet file's values: {str(exc).splitlines()[0]}")])

        return Incoming(table, label, "row", typed, True, stage_for_report, unreadable=unreadable)

    def _parquet_view(self, view: str, path: Path, **options: Any) -> str:
        """A temporary view reading the Parquet file in place; the path reaches DuckDB as a value
        (relation API), never inside SQL text."""
        try:
            self.con.read_parquet(str(path), **options).create_view(view, replace=True)
        except duckdb.Error as exc:
            raise InputError([(Location(str(path)), f"cannot read Parquet file: {exc}")]) from exc
        self._views.append(view)
        return _q(view)

    # ------------------------------------------------------------------ data frames
    def frame(self, name: str, table: Table, frame: pd.DataFrame | pa.Table | ds.Dataset, label: str, *, trusted: bool) -> Incoming:
        """An in-memory table (or an Arrow dataset) with typed columns, cast to the canonical types where it is read."""
        columns = list(frame.columns) if _is_pandas_frame(frame) else frame.schema.names
        extra = [c for c in columns if c not in table.column_names]
        if extra:
            raise InputError([(Location(f"data frame: {name}", None, c), "unknown column") for c in extra])
        source = self._register(f"_incoming_{name}", frame)
        casts = ", ".join(f'CAST({_q(c.name)} AS {c.sql_type}) AS {_q(c.name)}' if c.name in columns
                          else f"NULL::{c.sql_type} AS {_q(c.name)}" for c in table.columns)
        typed = f"_typed_{name}"
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW {_q(typed)} AS SELECT {casts} FROM {_q(source)}")
        self._views.append(typed)

        def stage_for_report() -> tuple[str, bool]:
            staged = f"_staged_{name}"
            try:
                self.con.execute(f"CREATE OR REPLACE TEMP TABLE {_q(staged)} AS SELECT row_number() OVER () AS _line, "
                                 f"{casts} FROM {_q(source)}")
            except duckdb.ConversionException as exc:
                raise conversion_error(name, exc) from exc
            self._tables.append(staged)
            return staged, False

        return Incoming(table, f"{label}: {name}", "row", typed, False, stage_for_report, trusted)


def _untouched_by_trim(chunk: pa.Table) -> set[str]:
    """Columns of a text chunk that ``NULLIF(trim(value), '')`` leaves as they are: no value empty, and
    none starting or ending with a space or a byte beyond ASCII.  DuckDB's ``trim`` removes Unicode
    space separators (the only ASCII one is the space; the others begin and end with bytes beyond
    ASCII) and is the costliest step of parsing a CSV file, so only chunks that need it pay for it.

    Written on the Arrow buffers with numpy: only each value's first and last byte matter, and
    pyarrow's string kernels (each a pass over every byte) cost as much as the trim they would save."""
    clean = set()
    for name in chunk.column_names:
        if name != "_line" and all(_first_and_last_bytes_plain(part) for part in chunk.column(name).chunks):
            clean.add(name)
    return clean


def _first_and_last_bytes_plain(text: pa.Array) -> bool:
    """Every value of a string array is non-empty, and its first and last bytes are ASCII but not a space."""
    if len(text) == 0:
        return True
    if text.null_count or not pa.types.is_string(text.type):
        return False
    _validity, offsets, data = text.buffers()
    ends = np.frombuffer(offsets, dtype=np.int32)[text.offset:text.offset + len(text) + 1]
    if (np.diff(ends) <= 0).any():
        return False
    raw = np.frombuffer(data, dtype=np.uint8)
    edges = np.concatenate([raw[ends[:-1]], raw[ends[1:] - 1]])
    return bool(((edges != 0x20) & (edges < 0x80)).all())


def _is_pandas_frame(frame: Any) -> bool:
    """Whether ``frame`` is a pandas DataFrame, without importing pandas (a frame implies it is imported)."""
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(frame, pandas.DataFrame)


def conversion_error(name: str, exc: Exception) -> InputError:
    """A data-frame column whose values cannot be cast to its canonical type."""
    return InputError([(Location(f"data frame: {name}"), f"a column does not have its canonical type: {exc}")])


def _parquet_value(sql_type: str, source_type: str, column: str) -> tuple[str, str | None]:
    """SQL for a Parquet column in its canonical type, and the text it is parsed from (None when
    read natively).  Native reads give the value its text would: NaN is empty, times are to the second
    (times with a time zone as UTC wall-clock times)."""
    if sql_type == "VARCHAR" or source_type == "VARCHAR":
        text = f"NULLIF(trim({_parquet_text(source_type, column)}), '')"
        return text_to_typed(sql_type, text), text
    if sql_type == "DOUBLE" and source_type in ("DOUBLE", "FLOAT", *_INTEGERS):
        return f"CASE WHEN isnan({column}::DOUBLE) THEN NULL ELSE {column}::DOUBLE END", None
    if sql_type == "INTEGER" and source_type in _INTEGERS:
        return f"TRY_CAST({column} AS INTEGER)", column
    if sql_type == "TIMESTAMP" and source_type in _TIMESTAMPS:
        return f"date_trunc('second', {column}::TIMESTAMP)", None
    if sql_type == "TIMESTAMP" and source_type == _TIMESTAMP_TZ:
        return f"date_trunc('second', timezone('UTC', {column}))", None
    if sql_type == source_type and sql_type in ("DATE", "BOOLEAN"):
        return column, None
    text = f"NULLIF(trim({_parquet_text(source_type, column)}), '')"
    return text_to_typed(sql_type, text), text


def _parquet_text(source_type: str, column: str) -> str:
    """SQL for a Parquet value as text, written as a CSV export would write it."""
    if source_type == "VARCHAR":
        return column
    if source_type in _TIMESTAMPS:
        return f"strftime({column}, '%Y-%m-%d %H:%M:%S')"
    if source_type == _TIMESTAMP_TZ:  # as UTC wall-clock time
        return f"strftime(timezone('UTC', {column}), '%Y-%m-%d %H:%M:%S')"
    if source_type in ("DOUBLE", "FLOAT"):
        return f"CASE WHEN isnan({column}) THEN NULL ELSE CAST({column} AS VARCHAR) END"
    return f"CAST({column} AS VARCHAR)"


# ---------------------------------------------------------------------- the contract of typed frames
_ARROW_TYPES: dict[str, Callable[[pa.DataType], bool]] = {
    "VARCHAR": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t)
    or (pa.types.is_dictionary(t) and (pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type))),
    "TIMESTAMP": lambda t: pa.types.is_timestamp(t) and t.tz is None and t.unit in ("s", "ms", "us"),
    "DATE": pa.types.is_date32,
    "INTEGER": pa.types.is_signed_integer,  # a 64-bit value beyond 32 bits fails the cast loudly
    "DOUBLE": pa.types.is_float64,
    "BOOLEAN": pa.types.is_boolean,
}
"""Arrow types that hold a canonical SQL type exactly (nothing rounds; an out-of-range integer raises)."""


def contract_problems(name: str, table: Table, frame: Any, label: str) -> list[tuple[Location, str]]:
    """What in an Arrow table breaks the canonical contract: a column unknown to ``table`` or of
    another type, a required column missing or with an empty value, a dictionary value that is
    not allowed.  Checked on the schema, the null counts and the dictionaries: no value is read."""
    where = f"{label}: {name}"
    if not isinstance(frame, pa.Table):
        return [(Location(where), "a trusted load needs Arrow tables")]
    problems = []
    for f in frame.schema:
        if f.name not in table.column_names:
            problems.append((Location(where, None, f.name), "unknown column"))
            continue
        col = table.column(f.name)
        if not _ARROW_TYPES[col.sql_type](f.type):
            problems.append((Location(where, None, f.name), f"Arrow type {f.type} does not hold {col.sql_type}"))
        elif col.required and frame.column(f.name).null_count:
            problems.append((Location(where, None, f.name), "empty values in a required column"))
        elif col.allowed is not None:
            values = _distinct(frame.column(f.name))
            stray = sorted(set(values) - set(col.allowed))
            if stray:
                problems.append((Location(where, None, f.name), f"values not allowed: {', '.join(stray)}"))
    problems += [(Location(where, None, c.name), "required column is missing")
                 for c in table.columns if c.required and c.name not in frame.column_names]
    return problems


def _distinct(column: pa.ChunkedArray) -> list[str]:
    """Distinct non-null values: the dictionaries of an encoded column, else a vectorised unique."""
    if pa.types.is_dictionary(column.type):
        return sorted({v for chunk in column.chunks for v in chunk.dictionary.to_pylist()} - {None})
    return sorted(v for v in pc.unique(column).to_pylist() if v is not None)
