"""Read CSV and Parquet files as text with line numbers, for validation before loading.

Every value is read as text so that a bad value is reported as it was written, with its
file, line and column, instead of failing the whole parse.  Hostile files are expected:
wrong encodings, truncated or ragged lines, empty files, stray columns.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from ketaweight.core.errors import InputError, Location
from ketaweight.core.schema import Table


def _check_columns(columns: list[str], table: Table, label: str) -> None:
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
    if problems:
        raise InputError(problems)


def _decode(raw: bytes, label: str) -> str:
    """UTF-8 (with or without BOM); on failure name the line and column of the first bad byte."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line_no = raw.count(b"\n", 0, exc.start) + 1
        line_start = raw.rfind(b"\n", 0, exc.start) + 1
        field_index = raw.count(b",", line_start, exc.start)
        header = next(csv.reader([raw.split(b"\n", 1)[0].decode("utf-8-sig", errors="replace")]), [])
        column = header[field_index] if field_index < len(header) else None
        raise InputError([(Location(label, line_no, column),
                           f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); re-save the file as UTF-8")]) from exc


def read_csv_as_text(path: Path, table: Table) -> pd.DataFrame:
    """All columns as text plus ``_line`` (header = line 1).  Raises InputError with locations."""
    label = str(path)
    raw = path.read_bytes()
    if not raw.strip():
        raise InputError([(Location(label, 1), "file is empty (expected a header line with column names)")])
    text = _decode(raw, label)
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False,
                            skip_blank_lines=False, engine="c")
    except pd.errors.ParserError as exc:
        # pandas: "Error tokenizing data. C error: Expected 5 fields in line 7, saw 6"
        msg = str(exc)
        line = None
        if " in line " in msg:
            line = int(msg.split(" in line ")[1].split(",")[0])
        raise InputError([(Location(label, line), f"malformed CSV line: {msg.split('C error: ')[-1]}")]) from exc
    _check_columns(list(frame.columns), table, label)
    frame = frame.astype(object).where(frame.notna(), None)
    frame.insert(0, "_line", range(2, len(frame) + 2))
    return frame


def read_parquet_as_text(path: Path, table: Table) -> pd.DataFrame:
    """Parquet columns converted to text plus ``_line`` (1-based row)."""
    label = str(path)
    try:
        pf = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise InputError([(Location(label), f"cannot read Parquet file: {exc}")]) from exc
    _check_columns(pf.column_names, table, label)
    frame = pf.to_pandas()
    for name in frame.columns:
        col = frame[name]
        if pd.api.types.is_datetime64_any_dtype(col):
            frame[name] = col.dt.strftime("%Y-%m-%d %H:%M:%S").where(col.notna(), None)
        else:
            frame[name] = col.astype(object).where(col.notna(), None).map(lambda v: None if v is None else str(v))
    frame.insert(0, "_line", range(1, len(frame) + 1))
    return frame


def find_table_files(folder: Path, tables: dict[str, Table]) -> dict[str, Path]:
    """Map table name → file in ``folder`` (``patients.csv`` or ``patients.parquet``)."""
    if not folder.is_dir():
        raise InputError([(Location(str(folder)), "not a folder")])
    found: dict[str, Path] = {}
    problems = []
    for name in tables:
        candidates = [p for p in (folder / f"{name}.csv", folder / f"{name}.parquet") if p.exists()]
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
