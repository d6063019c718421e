"""DuckDB's own progress bar printed into the CLI's output (and a notebook's) during long queries,
e.g. ``pipelines.imports.export_store`` from Python: every connection now comes from one factory."""

from __future__ import annotations

import re
from pathlib import Path

import ketaweight
from ketaweight.core.duckdb_connection import connect
from ketaweight.store import Store

SRC = Path(ketaweight.__file__).parent


def _progress_bar(con) -> bool:
    return con.execute("SELECT current_setting('enable_progress_bar')").fetchall()[0][0]


def test_connections_have_the_progress_bar_off(tmp_path):
    assert _progress_bar(connect()) is False
    with Store(tmp_path / "s.duckdb") as st_:
        assert _progress_bar(st_.con) is False


def test_no_module_opens_duckdb_any_other_way():
    raw = [f"{p.relative_to(SRC)}:{n}" for p in SRC.rglob("*.py") if p.name != "duckdb_connection.py"
           for n, line in enumerate(p.read_text().splitlines(), 1) if re.search(r"\bduckdb\.connect\(", line)]
    assert raw == []
