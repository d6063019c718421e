"""Every DuckDB connection ketaweight opens, made in one place: DuckDB's own progress bar is switched
off, because it prints to the terminal (or a notebook) in between the CLI's progress lines and tables
whenever a query runs longer than two seconds — from Python too, e.g. a long ``export_store``."""

from __future__ import annotations

import duckdb


def connect(database: str = ":memory:", *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect(database, read_only=...)`` with the progress bar off (a per-connection setting,
    so connections to one file made elsewhere with DuckDB's defaults still open side by side)."""
    con = duckdb.connect(database, read_only=read_only)
    con.execute("SET enable_progress_bar = false")
    return con
