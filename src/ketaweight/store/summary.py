"""What a store holds, per table and per measurement kind (``ketaweight store summary``)."""

from __future__ import annotations

from dataclasses import dataclass

from ketaweight.core.schema import TABLES
from ketaweight.store.store import Store


@dataclass(frozen=True)
class StoreSummary:
    """``tables``: (table, rows, patients); ``kinds``: (kind, unit, rows, patients) of the measurements.
    Exact counts: mask them (``ketaweight.core.privacy.mask_count``) before showing them to others."""

    tables: list[tuple[str, int, int]]
    kinds: list[tuple[str, str, int, int]]


def store_summary(store: Store) -> StoreSummary:
    """Rows and distinct patients per canonical table and per measurement kind."""
    tables = []
    for name in TABLES:
        rows, patients = store.con.execute(f'SELECT count(*), count(DISTINCT patient_id) FROM "{name}"').fetchone()
        tables.append((name, int(rows), int(patients)))
    kinds = store.con.execute("SELECT kind, unit, count(*), count(DISTINCT patient_id) FROM measurements "
                              "GROUP BY 1, 2 ORDER BY 1").fetchall()
    return StoreSummary(tables, [(k, u, int(n), int(p)) for k, u, n, p in kinds])
