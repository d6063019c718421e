"""What a FAERS store holds: per-file accounting, the deduplication steps and quarantined rows
(``ketaweight signals status``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ketaweight.signals.faers_store import open_store


@dataclass(frozen=True)
class FaersStatus:
    """Rows of ``faers_files`` (quarter, member, table, data lines, records, loaded, quarantined, notes),
    ``faers_dedup_log`` (step, before, removed, after), the first quarantined rows and their total."""

    files: list[tuple]
    dedup: list[tuple]
    quarantined: list[tuple]
    n_quarantined: int


def faers_status(store: Path, *, quarantine_limit: int = 20) -> FaersStatus:
    """Read the accounting tables of a FAERS store (read-only)."""
    con = open_store(store, read_only=True)
    try:
        files = con.execute("SELECT quarter, member, table_name, data_lines, records, loaded, quarantined, notes "
                            "FROM faers_files ORDER BY quarter, table_name").fetchall()
        dedup = con.execute("SELECT step, rows_before, removed, rows_after FROM faers_dedup_log ORDER BY step_no").fetchall()
        bad = con.execute("SELECT quarter, file, line, column_name, reason FROM faers_quarantine "
                          "ORDER BY quarter, file, line LIMIT ?", [int(max(quarantine_limit, 0))]).fetchall()
        n_bad = con.execute("SELECT count(*) FROM faers_quarantine").fetchall()[0][0]
    finally:
        con.close()
    return FaersStatus(files, dedup, bad, int(n_bad))
