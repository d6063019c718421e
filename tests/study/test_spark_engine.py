"""The cohort's one SQL on Spark (local mode) gives DuckDB's analysis table row for row and the same
estimates to the last digit (core/spark.py, store/spark.py)."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest

from ketaweight.core.errors import InputError, KetaweightWarning
from ketaweight.pipelines.emulation import run_study
from ketaweight.sources.simulator import load_scenario, simulate
from ketaweight.store.store import Store
from ketaweight.study.spec import load_study

pytest.importorskip("pyspark")
pytest.importorskip("sqlglot")
if shutil.which("java") is None:
    pytest.skip("Spark needs Java 17+ on this machine", allow_module_level=True)


@pytest.mark.xdist_group("spark")
def test_spark_cohort_and_estimates_equal_duckdb(tmp_path: Path) -> None:
    from ketaweight.store.spark import SparkTables

    res = simulate(load_scenario("article"), 1500, 21)
    store_path = tmp_path / "store.duckdb"
    with Store(store_path) as store:
        store.load_frames(res.tables, label="simulated", provenance=res.provenance)
        store.export(tmp_path / "tables", "parquet")
    study = load_study("ketamine-weight")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KetaweightWarning)
        with Store(store_path, read_only=True) as store:
            duck_results = run_study(store, study)
        tables = SparkTables(tmp_path / "tables", "local[2]")
        spark_results = run_study(tables, study)  # one Spark query: the cohort's SQL, transpiled
    duck, spark = duck_results.cohort, spark_results.cohort

    assert duck.n > 100 and duck.table["treated"].nunique() == 2
    pd.testing.assert_frame_equal(spark.table, duck.table, check_exact=True)  # row for row, every bit
    assert spark.attrition == duck.attrition
    assert tables.provenance() == duck_results.provenance  # the export's provenance.json travels with the tables
    for column, rs in duck_results.results.items():
        got = [(r.method, r.estimate, r.se, r.ci_low, r.ci_high, r.n) for r in spark_results.results[column]]
        assert got == [(r.method, r.estimate, r.se, r.ci_low, r.ci_high, r.n) for r in rs]

    # a step's population frame, sent to the engine as a view, joins as in DuckDB (order-free aggregates: a
    # sum of 1,500 doubles is not, and differs in its last bit between the engines)
    sql = ("SELECT count(*) AS n, min(height_cm) AS lo, max(height_cm) AS hi, max(CAST(pop.t0 AS DATE)) AS last_t0 "
           "FROM pop JOIN patients USING (patient_id) WHERE pop.t0 IS NOT NULL")
    pop = {"pop": duck.table[["patient_id", "t0"]]}
    with Store(store_path, read_only=True) as store:
        assert tables.arrow(sql, pop).equals(store.arrow(sql, pop))

    (tmp_path / "tables" / "measurements.parquet").unlink()
    with pytest.raises(InputError, match="measurements.parquet"):
        SparkTables(tmp_path / "tables", "local[2]")


def test_wrong_folder_and_master_are_clear_errors(tmp_path: Path) -> None:
    from ketaweight.core.spark import check_master
    from ketaweight.store.spark import SparkTables

    with pytest.raises(InputError, match="not a folder of canonical Parquet tables"):
        SparkTables(tmp_path / "nowhere")
    for ok in ("local[2]", "local[*]", "spark://10.0.0.1:7077", "yarn"):
        assert check_master(ok) == ok
    with pytest.raises(ValueError, match="spark-master"):
        check_master("lokal[2]")


@pytest.mark.xdist_group("spark")
def test_day_differences_mean_what_duckdb_means() -> None:
    """DuckDB's date_diff('day', a, b) counts calendar days, for timestamps too (23:00 → 01:00 the
    next day is one day); SQLGlot's DATEDIFF(DAY, …) would be Spark's timestampdiff (whole 24-hour
    periods: 0 there).  core/spark.py writes datediff(b, a): both engines give the same days."""
    from ketaweight.core.duckdb_connection import connect
    from ketaweight.core.spark import spark_arrow, spark_session, to_spark_sql

    sql = """SELECT date_diff('day', a, b) AS ts_days, date_diff('day', CAST(a AS DATE), CAST(b AS DATE)) AS date_days
             FROM (SELECT TIMESTAMP '2024-02-28 23:00:00' AS a, TIMESTAMP '2024-03-01 01:00:00' AS b)"""
    assert "DATEDIFF(b, a)" in to_spark_sql(sql)
    con = connect()
    duck = con.execute(sql).fetchall()[0]
    con.close()
    spark = tuple(spark_arrow(spark_session("local[2]"), sql).to_pylist()[0].values())
    assert duck == (2, 2) and spark == duck
