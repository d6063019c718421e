"""The FAERS tables of a DuckDB store: opening it with clear errors, their layout, appending Arrow blocks.

Every connection the signals code makes to a store goes through :func:`open_store`, and every
statement that writes runs inside :func:`store_errors`, so the failures a user can meet — another
process holding the file (DuckDB allows one writer, and no reader beside a writer), a full disk or a
file-size limit, a file that is not a DuckDB database — end as one line naming the store
(:class:`~ketaweight.core.errors.InputError`) instead of a DuckDB traceback.  Ctrl-C inside a DuckDB
query (``InterruptException``) is passed on as :class:`KeyboardInterrupt`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa

from ketaweight.core.duckdb_connection import connect
from ketaweight.core.errors import InputError, Location
from ketaweight.signals.display import one_line
from ketaweight.signals.faers_format import TABLES

__all__ = ["open_store", "store_errors", "create_tables", "append", "FAERS_TABLES", "ACCOUNT_TABLES"]

FAERS_TABLES = tuple(f"faers_{t.lower()}" for t in TABLES)
ACCOUNT_TABLES = ("faers_deleted", "faers_quarantine", "faers_files")
"""Tables that hold rows per quarter (replaced together when a quarter is loaded again)."""


def _reason(exc: duckdb.Error) -> str:
    msg = one_line(str(exc).strip().splitlines()[0], 300) if str(exc).strip() else type(exc).__name__
    low = msg.lower()
    if "no space left" in low or "file too large" in low or ("disk" in low and "full" in low):
        return f"the disk is full or the file reached its size limit ({msg})"
    if "lock" in low or "conflicting" in low or "already open" in low:
        return f"another process is using the store ({msg}); wait for it to finish or close it"
    return msg


@contextmanager
def store_errors(store: Path, *, doing: str) -> Iterator[None]:
    """Turn DuckDB failures while ``doing`` something with ``store`` into one-line input errors."""
    try:
        yield
    except duckdb.InterruptException as exc:
        raise KeyboardInterrupt from exc
    except (duckdb.IOException, duckdb.OutOfMemoryException, duckdb.PermissionException, duckdb.FatalException) as exc:
        raise InputError([(Location(str(store)), f"cannot {doing}: {_reason(exc)}")]) from exc
    except OSError as exc:
        raise InputError([(Location(str(store)), f"cannot {doing}: {exc.strerror or exc}")]) from exc


def open_store(store: str | Path, *, read_only: bool, memory_limit: str = "1GB",
               threads: int = 2) -> duckdb.DuckDBPyConnection:
    """Connect to ``store``.  A read-only store must exist and hold FAERS data (else a clear error)."""
    p = Path(store)
    if read_only and not p.exists():
        raise FileNotFoundError(f"{p}: no such store; create it with `ketaweight signals ingest`")
    if p.is_dir():
        raise InputError([(Location(str(p)), "is a folder; give the store's file (e.g. study.duckdb)")])
    try:
        con = connect(str(p), read_only=read_only)
    except duckdb.Error as exc:
        what = "read" if read_only else "open"
        raise InputError([(Location(str(p)), f"cannot {what} the store: {_reason(exc)}")]) from exc
    try:
        con.execute(f"SET memory_limit = '{_size(memory_limit)}'")
        con.execute(f"SET threads = {int(threads)}")
        con.execute("SET preserve_insertion_order = false")
        if read_only:
            names = {t for (t,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
            if "faers_reports" not in names:
                raise InputError([(Location(str(p)), "no FAERS data in this store; run `ketaweight signals ingest` "
                                   "first")])
    except BaseException:
        con.close()
        raise
    return con


def _size(text: str) -> str:
    """A DuckDB memory size such as ``1GB`` or ``800MiB``, checked (it is spliced into a SET statement)."""
    if not re.fullmatch(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)", text.strip()):
        raise InputError([(Location("memory_limit"), f"not a memory size like '1GB' or '800MiB': {text!r}")])
    return text.strip()


def create_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The FAERS tables (if missing): canonical columns (integers BIGINT, text VARCHAR), ``quarter`` and
    ``line``; the deleted-case list, quarantine and per-file accounting."""
    for t, spec in TABLES.items():
        cols = ["quarter VARCHAR"] + [f"{c} {'BIGINT' if c in spec.integer else 'VARCHAR'}" for c in spec.columns]
        con.execute(f"CREATE TABLE IF NOT EXISTS faers_{t.lower()} ({', '.join(cols + ['line BIGINT'])})")
    con.execute("CREATE TABLE IF NOT EXISTS faers_deleted (quarter VARCHAR, caseid BIGINT)")
    con.execute("CREATE TABLE IF NOT EXISTS faers_quarantine (quarter VARCHAR, file VARCHAR, line BIGINT, "
                "column_name VARCHAR, reason VARCHAR, raw VARCHAR)")
    con.execute("CREATE TABLE IF NOT EXISTS faers_files (quarter VARCHAR, zip VARCHAR, member VARCHAR, "
                "table_name VARCHAR, data_lines BIGINT, records BIGINT, loaded BIGINT, quarantined BIGINT, "
                "encoding_repairs BIGINT, lines_joined BIGINT, records_split BIGINT, dollar_repairs BIGINT, "
                "notes VARCHAR)")


def append(con: duckdb.DuckDBPyConnection, table: str, quarter: str, block: pa.Table,
           text_columns: frozenset[str] = frozenset()) -> None:
    """Insert an Arrow ``block`` (columns in the table's order after ``quarter``) into ``table``;
    empty strings in ``text_columns`` become NULL.  ``table`` is one of this module's names."""
    if block.num_rows == 0:
        return
    con.register("_kw_block", block)
    try:
        sel = ", ".join(f"NULLIF(\"{c}\", '')" if c in text_columns else f'"{c}"' for c in block.column_names)
        con.execute(f"INSERT INTO {table} SELECT ?, {sel} FROM _kw_block", [quarter])
    finally:
        try:
            con.unregister("_kw_block")
        except duckdb.Error:
            pass  # the transaction was aborted (an error or Ctrl-C inside the INSERT): that exception goes on
