"""Table files (``<table>.csv`` or ``<table>.parquet`` in a folder), read for validation before loading.

Hostile files are expected: wrong encodings, truncated or ragged lines, empty files, stray
columns.  Every value of a CSV file is read as text, so that a bad value is reported as it was
written, with its file, line and column, instead of failing the whole parse.  Two readers give
the same rows, values and line numbers:

* :func:`csv_text_batches` streams a *plain* CSV file (every line has the header's number of
  fields, UTF-8, no repeated column name) in chunks of Arrow text columns, parsed by pyarrow's
  multi-threaded reader, so memory stays flat however long the file is.  Anything else raises
  :class:`NotPlainCsv` and the caller falls back to
* :func:`read_csv_as_text`, which reads the whole file with pandas and names the problem: the
  line and column of a byte that is not UTF-8, a line with too many fields; a short line is
  padded with empty values (then reported as missing where they are required).

Both treat the file the same way (RFC 4180 quoting with doubled quotes, no escape character,
blank lines kept as rows of empty values, one record per line: the header is line 1).
Parquet files are read by the store itself (DuckDB reads them typed and in parallel); here they
only have their columns checked (:func:`parquet_columns`).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from ketaweight.core.errors import InputError, Location
from ketaweight.core.schema import MEASUREMENT_KINDS, Table

if TYPE_CHECKING:
    import pandas as pd

CSV_BLOCK_BYTES = 16 << 20
"""Bytes pyarrow parses per block of a streamed CSV file."""

CSV_CHUNK_BYTES = 128 << 20
"""Text handed on per chunk by :func:`csv_text_batches` (bounds memory; big enough that per-chunk
overheads do not matter)."""

_WHITESPACE = b" \t\r\n\x0b\x0c"


class NotPlainCsv(Exception):
    """The file needs the exact reader (:func:`read_csv_as_text`), which names what is wrong."""


def check_columns(columns: list[str], table: Table, label: str) -> None:
    """Raise InputError (header = line 1) for unknown, missing required and repeated columns."""
    problems = []
    known = set(table.column_names)
    for name in columns:
        if name not in known:
            problems.append((Location(label, 1, name), f"unknown column; {table.name} has {', '.join(table.column_names)}"))
    for col in table.columns:
        if col.required and col.name not in columns:
            problems.append((Location(label, 1, col.name), "required column is missing from the header"))
    if len(set(columns)) != len(columns):
        dupes = sorted({c for c in columns if columns.count(c) > 1})
        problems.append((Location(label, 1, ", ".join(dupes)), "column appears more than once in the header"))
    if problems and table.name == "measurements" and wide_kinds(columns):
        problems.append((Location(label, 1), LONG_FORMAT))
    if problems:
        raise InputError(problems)


LONG_FORMAT = ("measurements are one row per value (the long format), not one column per kind: header "
               "patient_id,time,kind,value,unit; a row: P0001,2024-03-01 09:00:00,weight,82.4,kg")
"""How a wide table (a column per measurement kind) is to be written instead."""


def wide_kinds(columns: list[str]) -> list[str]:
    """Header names that are measurement kinds (a wide table), e.g. ``weight`` or ``phq9``."""
    return [c for c in columns if c.strip().lower() in MEASUREMENT_KINDS]


_LINE_END = re.compile(rb"\r\n|\r|\n")
"""Line ends as the CSV readers take them (Windows, old Mac and Unix)."""


def _decode(raw: bytes, label: str) -> str:
    """UTF-8 (with or without BOM); on failure name the line and column of the first bad byte."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        ends = [m.end() for m in _LINE_END.finditer(raw, 0, exc.start)]
        line_no = len(ends) + 1
        line_start = ends[-1] if ends else 0
        field_index = raw.count(b",", line_start, exc.start)
        first_line = _LINE_END.split(raw, 1)[0].decode("utf-8-sig", errors="replace")
        try:
            header = next(csv.reader([first_line]), [])
        except csv.Error:  # a header the csv module cannot split: name the line only
            header = []
        column = header[field_index] if field_index < len(header) else None
        raise InputError([(Location(label, line_no, column),
                           f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); re-save the file as UTF-8")]) from exc


def read_csv_as_text(path: Path, table: Table) -> pd.DataFrame:
    """All columns as text plus ``_line`` (header = line 1).  Raises InputError with locations."""
    import pandas as pd  # the exact reader only: a plain file is streamed without pandas

    label = str(path)
    raw = path.read_bytes()
    text = _decode(raw, label)
    if not text.strip():  # nothing, whitespace, or only a byte-order mark
        raise InputError([(Location(label, 1), "file is empty (expected a header line with column names)")])
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False,
                            skip_blank_lines=False, engine="c")
    except pd.errors.EmptyDataError as exc:
        raise InputError([(Location(label, 1), "file is empty (expected a header line with column names)")]) from exc
    except pd.errors.ParserError as exc:
        # pandas: "Error tokenizing data. C error: Expected 5 fields in line 7, saw 6"
        msg = str(exc)
        line = None
        if " in line " in msg:
            line = int(msg.split(" in line ")[1].split(",")[0])
        raise InputError([(Location(label, line), f"malformed CSV line: {msg.split('C error: ')[-1]}")]) from exc
    check_columns(list(frame.columns), table, label)
    frame = frame.astype(object).where(frame.notna(), None)
    frame.insert(0, "_line", range(2, len(frame) + 2))
    return frame


def _has_content(path: Path) -> bool:
    """Whether the file holds anything but whitespace (read until the first other byte)."""
    with path.open("rb") as f:
        while block := f.read(1 << 16):
            if block.strip(_WHITESPACE):
                return True
    return False


def csv_text_batches(path: Path, table: Table) -> Iterator[pa.Table]:
    """A plain CSV file as chunks of text columns (nothing converted, no value made empty) plus
    ``_line`` (int64; the header is line 1), in file order.

    Raises :class:`NotPlainCsv` before the first chunk when the file is empty or its header is
    not plainly valid for ``table``, and while streaming when a line has another number of
    fields than the header or the bytes are not UTF-8; whatever was yielded before is then to
    be discarded (the exact reader starts again).
    """
    if not _has_content(path):
        raise NotPlainCsv("empty")
    read = pa_csv.ReadOptions(block_size=CSV_BLOCK_BYTES, use_threads=True)
    parse = pa_csv.ParseOptions(ignore_empty_lines=False)  # a blank line is a row of empty values, as in pandas
    try:
        header = pa_csv.open_csv(path, read_options=pa_csv.ReadOptions(block_size=1 << 16), parse_options=parse,
                                 convert_options=pa_csv.ConvertOptions(include_columns=[])).schema.names
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:  # pyarrow decodes column names as UTF-8
        raise NotPlainCsv(str(exc)) from exc
    if len(set(header)) != len(header) or any(c not in table.column_names for c in header) \
            or any(c.required and c.name not in header for c in table.columns):
        raise NotPlainCsv("header")
    convert = pa_csv.ConvertOptions(column_types={name: pa.string() for name in header},
                                    strings_can_be_null=False, quoted_strings_can_be_null=False)
    try:
        reader = pa_csv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert)
        first_line, chunk, size = 2, [], 0
        for batch in reader:
            chunk.append(batch)
            size += batch.nbytes
            if size >= CSV_CHUNK_BYTES:
                yield _with_lines(chunk, first_line)
                first_line += sum(b.num_rows for b in chunk)
                chunk, size = [], 0
        if chunk or first_line == 2:
            yield _with_lines(chunk, first_line, reader.schema)
    except (pa.ArrowException, UnicodeDecodeError) as exc:  # a line with another number of fields, bytes that are not UTF-8
        raise NotPlainCsv(str(exc)) from exc


def _with_lines(batches: list[pa.RecordBatch], first_line: int, schema: pa.Schema | None = None) -> pa.Table:
    text = pa.Table.from_batches(batches, schema=schema) if schema is not None else pa.Table.from_batches(batches)
    numbers = np.arange(first_line, first_line + text.num_rows, dtype=np.int64)
    lines = pa.Array.from_buffers(pa.int64(), len(numbers), [None, pa.py_buffer(numbers)])  # pa.array() would import pandas
    return text.add_column(0, "_line", lines)


def parquet_columns(path: Path, table: Table) -> list[str]:
    """The Parquet file's column names, checked against ``table`` (InputError when the file
    cannot be read or a column is unknown, missing or repeated)."""
    label = str(path)
    try:
        names = pq.read_schema(path).names
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise InputError([(Location(label), f"cannot read Parquet file: {exc}")]) from exc
    check_columns(names, table, label)
    return names


_MAX_TIMESTAMP_US = 9223372036854775806  # DuckDB's TIMESTAMP holds int64 microseconds (the extremes mean ±infinity)


def parquet_out_of_range(path: Path, table: Table, limit: int = 20) -> list[tuple[Location, str]]:
    """Rows of a Parquet file whose timestamps (seconds or milliseconds) lie beyond what a microsecond
    timestamp holds, by row and column (DuckDB refuses to read such a file at all)."""
    label = str(path)
    problems: list[tuple[Location, str]] = []
    timestamps = [table.column(f.name) for f in pq.read_schema(path)
                  if f.name in table.column_names and pa.types.is_timestamp(f.type) and f.type.unit in ("s", "ms")]
    for col in timestamps:
        values = pq.read_table(path, columns=[col.name]).column(col.name)
        factor = 1_000_000 if values.type.unit == "s" else 1_000
        ints = np.asarray(values.cast(pa.int64()).fill_null(0))
        bad = np.flatnonzero(np.abs(ints) > _MAX_TIMESTAMP_US // factor)
        problems += [(Location(label, int(i) + 1, col.name, "row"), "timestamp outside the years a store can hold "
                      "(about 290,000 BC to 294,000 AD)") for i in bad[:limit]]
        if len(bad) > limit:
            problems.append((Location(label, None, col.name, "row"), f"... and {len(bad) - limit} more row(s) with the same problem"))
    return problems


def _header(path: Path) -> list[str]:
    """Column names of a CSV or Parquet file (empty when they cannot be read)."""
    try:
        if path.suffix.lower() == ".parquet":
            return pq.read_schema(path).names
        with path.open("rb") as f:
            first = _LINE_END.split(f.read(1 << 16), 1)[0].decode("utf-8-sig", errors="replace")
        return next(csv.reader([first]), [])
    except Exception:  # any unreadable file: it is only named as skipped
        return []


def skipped_files(folder: Path, tables: dict[str, Table]) -> dict[str, str]:
    """Files in ``folder`` that a load leaves alone, by name, with why (hidden files and the
    ``provenance.json`` an export writes are not listed)."""
    table_files = {f"{name}.{ext}" for name in tables for ext in ("csv", "parquet")}
    skipped = {}
    for path in sorted(folder.iterdir()):
        if path.name in table_files or path.name.startswith(".") or path.name == "provenance.json":
            continue
        if path.is_dir():
            skipped[path.name] = "a folder (sub-folders are not read)"
        elif path.suffix.lower() not in (".csv", ".parquet"):
            skipped[path.name] = "not a table file (.csv or .parquet)"
        else:
            why = f"not a table ketaweight knows (file names: {', '.join(tables)} + .csv or .parquet)"
            kinds = wide_kinds(_header(path))
            if kinds:
                why += (f"; its column(s) {', '.join(kinds)} look like measurements in one column per kind: write them "
                        f"to measurements.csv instead ({LONG_FORMAT})")
            skipped[path.name] = why
    return skipped


def find_table_files(folder: Path, tables: dict[str, Table]) -> dict[str, Path]:
    """Map table name → file in ``folder`` (``patients.csv`` or ``patients.parquet``)."""
    if not folder.is_dir():
        raise InputError([(Location(str(folder)), "not a folder" if folder.exists() else "folder not found")])
    found: dict[str, Path] = {}
    problems = []
    for name in tables:
        candidates = [p for p in (folder / f"{name}.csv", folder / f"{name}.parquet") if p.exists()]
        for p in candidates:
            if not p.is_file():
                problems.append((Location(str(p)), "is a folder, not a table file"))
        if len(candidates) > 1:
            problems.append((Location(str(folder)), f"both {name}.csv and {name}.parquet exist; keep one"))
        elif candidates:
            found[name] = candidates[0]
    if problems:
        raise InputError(problems)
    if not found:
        raise InputError([(Location(str(folder)), f"no table files found; expected any of "
                           f"{', '.join(n + '.csv|.parquet' for n in tables)}")])
    return found
