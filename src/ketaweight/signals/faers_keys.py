"""Integer keys for counting: every drug row and reaction row of a quarter as (report, name id[, role]).

Counting unique reports over the whole FAERS history means joining ~100 million drug rows with
~70 million reaction rows; on verbatim strings that is most of a scan's time.  So when a quarter is
ingested its distinct verbatim ``(drugname, prod_ai)`` pairs and preferred terms get integer ids
(``faers_drug_names``, ``faers_pt_names``; new names are appended, old ids never change), and its
rows are written once more as integers (``faers_drug_keys``: quarter, primaryid, name_id, role;
``faers_reac_keys``: quarter, primaryid, pt_id).  A scan maps the few distinct names to drug and
event codes in Python and counts on integers only.  Names stay verbatim in the store, so extending
the drug-name map never needs a re-ingest.  A store written before these tables existed gets them
as temporary tables at scan time (``temp=True``), from the same statements.
"""

from __future__ import annotations

import duckdb

__all__ = ["KEY_TABLES", "NAME_TABLES", "ROLE_CODES", "create_key_tables", "add_quarter_keys", "has_keys",
           "temporary_keys"]

KEY_TABLES = ("faers_drug_keys", "faers_reac_keys")
"""Per-quarter key tables (deleted with the quarter when it is loaded again)."""
NAME_TABLES = ("faers_drug_names", "faers_pt_names")
ROLE_CODES = {"PS": 1, "SS": 2, "C": 3, "I": 4}
"""FAERS drug roles as stored in ``faers_drug_keys.role``."""


def create_key_tables(con: duckdb.DuckDBPyConnection, *, temp: bool = False) -> None:
    kind = "TEMP TABLE" if temp else "TABLE"
    con.execute(f"CREATE {kind} IF NOT EXISTS faers_drug_names (name_id INTEGER, drugname VARCHAR, prod_ai VARCHAR)")
    con.execute(f"CREATE {kind} IF NOT EXISTS faers_pt_names (pt_id INTEGER, pt VARCHAR)")
    con.execute(f"CREATE {kind} IF NOT EXISTS faers_drug_keys (quarter VARCHAR, primaryid BIGINT, name_id INTEGER, "
                "role TINYINT)")
    con.execute(f"CREATE {kind} IF NOT EXISTS faers_reac_keys (quarter VARCHAR, primaryid BIGINT, pt_id INTEGER)")


def has_keys(con: duckdb.DuckDBPyConnection) -> bool:
    names = {t for (t,) in con.execute("SELECT table_name FROM information_schema.tables "
                                       "WHERE table_catalog = current_database()").fetchall()}
    return all(t in names for t in (*KEY_TABLES, *NAME_TABLES))


def add_quarter_keys(con: duckdb.DuckDBPyConnection, quarter: str) -> None:
    """Append the names first seen in ``quarter`` and the quarter's key rows (its rows must be loaded)."""
    con.execute("""INSERT INTO faers_drug_names
        SELECT (SELECT coalesce(max(name_id), 0) FROM faers_drug_names)
               + row_number() OVER (ORDER BY drugname, prod_ai), drugname, prod_ai
        FROM (SELECT DISTINCT drugname, prod_ai FROM faers_drug WHERE quarter = ?
              EXCEPT SELECT drugname, prod_ai FROM faers_drug_names)""", [quarter])
    con.execute("""INSERT INTO faers_pt_names
        SELECT (SELECT coalesce(max(pt_id), 0) FROM faers_pt_names) + row_number() OVER (ORDER BY pt), pt
        FROM (SELECT DISTINCT pt FROM faers_reac WHERE quarter = ? AND pt IS NOT NULL
              EXCEPT SELECT pt FROM faers_pt_names)""", [quarter])
    roles = " ".join(f"WHEN '{r}' THEN {c}" for r, c in ROLE_CODES.items())
    con.execute(f"""INSERT INTO faers_drug_keys
        SELECT d.quarter, d.primaryid, n.name_id, CAST(CASE d.role_cod {roles} END AS TINYINT)
        FROM faers_drug d JOIN faers_drug_names n
          ON d.drugname IS NOT DISTINCT FROM n.drugname AND d.prod_ai IS NOT DISTINCT FROM n.prod_ai
        WHERE d.quarter = ?""", [quarter])
    con.execute("""INSERT INTO faers_reac_keys
        SELECT e.quarter, e.primaryid, n.pt_id FROM faers_reac e JOIN faers_pt_names n ON e.pt = n.pt
        WHERE e.quarter = ?""", [quarter])


def temporary_keys(con: duckdb.DuckDBPyConnection) -> None:
    """Key tables for a store written before they existed: built as TEMP tables (read-only is fine)."""
    create_key_tables(con, temp=True)
    for (q,) in con.execute("SELECT DISTINCT quarter FROM faers_files ORDER BY 1").fetchall():
        add_quarter_keys(con, q)
