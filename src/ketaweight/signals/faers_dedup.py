"""Deduplication of FAERS reports across every quarter in a store, in DuckDB SQL, incrementally.

``faers_reports`` holds one current report per case, from the DEMO rows of *all* quarters in the
store (never from the zips, so a new quarter never re-reads the old ones); ``faers_dedup_log`` the
rows each step removed:

1. a ``primaryid`` present in more than one quarter is kept once (the latest quarter);
2. cases on any deleted-cases list are dropped;
3. per ``caseid`` only the latest ``caseversion`` is kept (ties: latest ``fda_dt``, then
   highest ``primaryid``).

``update_reports(con, quarters)`` re-applies these rules only to the cases the new ``quarters``
touch, so adding a quarter costs about the same however many are stored.  A case's current report
depends only on the rows of the primaryids it has ever had (step 1 picks each primaryid's latest
row, whatever case that row names) and on the deleted lists.  So the cases to redo are those of
every row — old or new — that shares a primaryid with a new DEMO row (the new rows' own cases, and
the cases whose primaryid a new row takes over), plus the cases on the new quarters' deleted lists;
every other case keeps its report.  For those cases the three steps run on all the rows of their
primaryids, exactly as a full rebuild would, and their rows in ``faers_reports`` are replaced.
``faers_dedup_cases`` (caseid, primaryids kept by step 1, deleted) carries the per-case counts the
log's totals are summed from.  ``quarters=None`` rebuilds everything (a new store, a replaced
quarter, a store written before ``faers_dedup_cases`` existed); both paths run the same statements,
and the tests check that adding quarters one by one gives the tables of a rebuild.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from ketaweight.core.attrition import AttritionStep

__all__ = ["update_reports", "DEDUP_TABLES"]

DEDUP_TABLES = ("faers_reports", "faers_dedup_cases", "faers_dedup_log")

_AGE_YEARS = """CASE upper(d.age_cod)
    WHEN 'YR' THEN 1.0 WHEN 'DEC' THEN 10.0 WHEN 'MON' THEN 1.0/12 WHEN 'WK' THEN 7.0/365.25
    WHEN 'DY' THEN 1.0/365.25 WHEN 'HR' THEN 1.0/8766 ELSE NULL END * TRY_CAST(d.age AS DOUBLE)"""

_DELETED = "(SELECT caseid FROM faers_deleted WHERE caseid IS NOT NULL)"


def _can_update(con: duckdb.DuckDBPyConnection) -> bool:
    names = {t for (t,) in con.execute("SELECT table_name FROM information_schema.tables "
                                       "WHERE table_catalog = current_database()").fetchall()}
    return all(t in names for t in DEDUP_TABLES)


def update_reports(con: duckdb.DuckDBPyConnection, quarters: Sequence[str] | None = None) -> list[AttritionStep]:
    """Bring ``faers_reports``, ``faers_dedup_cases`` and ``faers_dedup_log`` up to date after
    ``quarters`` were appended (their DEMO and deleted rows loaded, nothing else changed since the
    last update); ``None`` — or a store without the tables — rebuilds them from every quarter.
    Returns the steps (DEMO rows → current reports).

    An update also leaves the temporary table ``_kw_report_changes (quarter, primaryid, sign)``: the
    current reports it added (sign 1) and took away (sign −1), for the counts kept in the store
    (:mod:`~ketaweight.signals.faers_count_totals`); a rebuild leaves none."""
    con.execute("DROP TABLE IF EXISTS _kw_report_changes")
    incremental = quarters is not None and _can_update(con)
    if not incremental:
        for t in DEDUP_TABLES:
            con.execute(f"DROP TABLE IF EXISTS {t}")
        con.execute("CREATE TABLE faers_reports (primaryid BIGINT, caseid BIGINT, caseversion BIGINT, fda_dt BIGINT, "
                    "quarter VARCHAR, sex VARCHAR, age_years DOUBLE, age_grp VARCHAR, fda_year INTEGER, "
                    "occr_country VARCHAR, reporter_country VARCHAR)")
        con.execute("CREATE TABLE faers_dedup_cases (caseid BIGINT, primaryids BIGINT, deleted BOOLEAN)")
        scope = "true"
        rows = "faers_demo"
    else:
        # the cases to redo: every case that has a row sharing a primaryid with a new DEMO row, and the
        # cases on the new deleted lists (quarter labels are parameters, never spliced into the SQL)
        con.execute("""CREATE OR REPLACE TEMP TABLE _kw_cases AS
            SELECT DISTINCT caseid FROM faers_demo
            WHERE primaryid IN (SELECT primaryid FROM faers_demo WHERE list_contains(?, quarter))
            UNION SELECT caseid FROM faers_deleted WHERE list_contains(?, quarter) AND caseid IS NOT NULL""",
                    [list(quarters), list(quarters)])
        scope = "caseid IN (SELECT caseid FROM _kw_cases)"
        rows = f"(SELECT * FROM faers_demo WHERE primaryid IN (SELECT primaryid FROM faers_demo WHERE {scope}))"
        con.execute(f"CREATE OR REPLACE TEMP TABLE _kw_before AS SELECT quarter, primaryid FROM faers_reports "
                    f"WHERE {scope}")
        con.execute(f"DELETE FROM faers_reports WHERE {scope}")
        con.execute(f"DELETE FROM faers_dedup_cases WHERE {scope}")
    # step 1 on the rows of every primaryid the cases in scope have (only the columns faers_reports keeps)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _kw_step1 AS
        SELECT primaryid, caseid, caseversion, fda_dt, quarter, sex, age, age_cod, age_grp, occr_country,
               reporter_country
        FROM {rows}
        QUALIFY row_number() OVER (PARTITION BY primaryid ORDER BY quarter DESC, line DESC) = 1""")
    con.execute(f"""INSERT INTO faers_dedup_cases
        SELECT caseid, count(*), caseid IN {_DELETED} FROM _kw_step1 WHERE {scope} GROUP BY caseid""")
    con.execute(f"""INSERT INTO faers_reports
        SELECT d.primaryid, d.caseid, d.caseversion, d.fda_dt, d.quarter, upper(d.sex) AS sex,
               {_AGE_YEARS} AS age_years, d.age_grp,
               TRY_CAST(substr(CAST(d.fda_dt AS VARCHAR), 1, 4) AS INTEGER) AS fda_year,
               d.occr_country, d.reporter_country
        FROM _kw_step1 AS d
        WHERE {scope} AND caseid NOT IN {_DELETED}
        QUALIFY row_number() OVER (PARTITION BY caseid
                                   ORDER BY caseversion DESC, fda_dt DESC NULLS LAST, primaryid DESC) = 1""")
    con.execute("DROP TABLE _kw_step1")
    if incremental:
        # a report is its (quarter, primaryid): one that stays current counts the same rows as before
        con.execute(f"""CREATE TEMP TABLE _kw_report_changes AS
            SELECT quarter, primaryid, 1 AS sign FROM (SELECT quarter, primaryid FROM faers_reports WHERE {scope}
                                                        EXCEPT SELECT quarter, primaryid FROM _kw_before)
            UNION ALL
            SELECT quarter, primaryid, -1 AS sign FROM (SELECT quarter, primaryid FROM _kw_before
                                                         EXCEPT SELECT quarter, primaryid FROM faers_reports
                                                         WHERE {scope})""")
        con.execute("DROP TABLE _kw_before")
    con.execute("DROP TABLE IF EXISTS _kw_cases")
    return _write_log(con)


def _write_log(con: duckdb.DuckDBPyConnection) -> list[AttritionStep]:
    """The step counts, summed from the per-case table (the same numbers whichever way it was built)."""
    n0 = con.execute("SELECT count(*) FROM faers_demo").fetchall()[0][0]
    n1, n2 = con.execute("SELECT coalesce(sum(primaryids), 0), coalesce(sum(primaryids) FILTER (WHERE NOT deleted), 0) "
                         "FROM faers_dedup_cases").fetchall()[0]
    n3 = con.execute("SELECT count(*) FROM faers_reports").fetchall()[0][0]
    log = [
        AttritionStep.between("DEMO rows", "DEMO rows in the store", n0, n0),
        AttritionStep.between("one quarter per primaryid", "same primaryid in more than one quarter: keep the latest "
                              "quarter", n0, int(n1)),
        AttritionStep.between("deleted cases", "drop cases on a deleted-cases list", int(n1), int(n2)),
        AttritionStep.between("latest case version", "keep the latest caseversion per caseid (ties: latest fda_dt, "
                              "then highest primaryid)", int(n2), n3),
    ]
    # storage keeps its column names (rows_before, removed, rows_after) so stores ingested earlier still read
    con.execute("CREATE OR REPLACE TABLE faers_dedup_log (step_no INTEGER, step VARCHAR, rows_before BIGINT, "
                "removed BIGINT, rows_after BIGINT)")
    con.executemany("INSERT INTO faers_dedup_log VALUES (?, ?, ?, ?, ?)",
                    [(i, s.reason, s.n_before, s.n_excluded, s.n_after) for i, s in enumerate(log)])
    return log
