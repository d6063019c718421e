"""Deduplication of FAERS reports across every quarter in a store, in DuckDB SQL.

``rebuild_reports(con)`` rebuilds ``faers_reports`` — one current report per case — from the DEMO
rows of *all* quarters in the store (never from the zips, so a new quarter never re-reads the old
ones), and logs each step's removed rows in ``faers_dedup_log``:

1. a ``primaryid`` present in more than one quarter is kept once (the latest quarter);
2. cases on any deleted-cases list are dropped;
3. per ``caseid`` only the latest ``caseversion`` is kept (ties: latest ``fda_dt``, then
   highest ``primaryid``).
"""

from __future__ import annotations

import duckdb

from ketaweight.core.attrition import AttritionStep

__all__ = ["rebuild_reports"]

_AGE_YEARS = """CASE upper(d.age_cod)
    WHEN 'YR' THEN 1.0 WHEN 'DEC' THEN 10.0 WHEN 'MON' THEN 1.0/12 WHEN 'WK' THEN 7.0/365.25
    WHEN 'DY' THEN 1.0/365.25 WHEN 'HR' THEN 1.0/8766 ELSE NULL END * TRY_CAST(d.age AS DOUBLE)"""


def rebuild_reports(con: duckdb.DuckDBPyConnection) -> list[AttritionStep]:
    """Rebuild ``faers_reports`` and ``faers_dedup_log``; returns the steps (DEMO rows → current reports)."""
    con.execute("DROP TABLE IF EXISTS faers_reports")
    con.execute("DROP TABLE IF EXISTS faers_dedup_log")
    n0 = con.execute("SELECT count(*) FROM faers_demo").fetchall()[0][0]
    # only the columns faers_reports keeps travel through the steps (the DEMO table has 25)
    con.execute("""CREATE TEMP TABLE _kw_step1 AS
        SELECT primaryid, caseid, caseversion, fda_dt, quarter, sex, age, age_cod, age_grp, occr_country,
               reporter_country
        FROM faers_demo
        QUALIFY row_number() OVER (PARTITION BY primaryid ORDER BY quarter DESC, line DESC) = 1""")
    n1 = con.execute("SELECT count(*) FROM _kw_step1").fetchall()[0][0]
    con.execute("""CREATE TEMP TABLE _kw_step2 AS SELECT * FROM _kw_step1
        WHERE caseid NOT IN (SELECT caseid FROM faers_deleted WHERE caseid IS NOT NULL)""")
    n2 = con.execute("SELECT count(*) FROM _kw_step2").fetchall()[0][0]
    con.execute(f"""CREATE TABLE faers_reports AS
        SELECT d.primaryid, d.caseid, d.caseversion, d.fda_dt, d.quarter, upper(d.sex) AS sex,
               {_AGE_YEARS} AS age_years, d.age_grp,
               TRY_CAST(substr(CAST(d.fda_dt AS VARCHAR), 1, 4) AS INTEGER) AS fda_year,
               d.occr_country, d.reporter_country
        FROM _kw_step2 AS d
        QUALIFY row_number() OVER (PARTITION BY caseid
                                   ORDER BY caseversion DESC, fda_dt DESC NULLS LAST, primaryid DESC) = 1""")
    n3 = con.execute("SELECT count(*) FROM faers_reports").fetchall()[0][0]
    con.execute("DROP TABLE _kw_step1")
    con.execute("DROP TABLE _kw_step2")
    log = [
        AttritionStep.between("DEMO rows", "DEMO rows in the store", n0, n0),
        AttritionStep.between("one quarter per primaryid", "same primaryid in more than one quarter: keep the latest "
                              "quarter", n0, n1),
        AttritionStep.between("deleted cases", "drop cases on a deleted-cases list", n1, n2),
        AttritionStep.between("latest case version", "keep the latest caseversion per caseid (ties: latest fda_dt, "
                              "then highest primaryid)", n2, n3),
    ]
    # storage keeps its column names (rows_before, removed, rows_after) so stores ingested earlier still read
    con.execute("CREATE TABLE faers_dedup_log (step_no INTEGER, step VARCHAR, rows_before BIGINT, removed BIGINT, "
                "rows_after BIGINT)")
    con.executemany("INSERT INTO faers_dedup_log VALUES (?, ?, ?, ?, ?)",
                    [(i, s.reason, s.n_before, s.n_excluded, s.n_after) for i, s in enumerate(log)])
    return log
