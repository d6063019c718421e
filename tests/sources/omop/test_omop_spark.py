"""The OMOP selection on Spark: a CDM as Parquet tables, read by Spark in local mode with the reader's own
SQL transpiled to Spark SQL, gives exactly the canonical tables of the DuckDB path."""

from __future__ import annotations

import shutil

import duckdb
import pytest

from ketaweight.core.errors import InputError
from ketaweight.pipelines.imports import export_store, import_omop

pytest.importorskip("pyspark")
pytest.importorskip("sqlglot")
if shutil.which("java") is None:
    pytest.skip("Spark needs Java 17+ on this machine", allow_module_level=True)


@pytest.mark.xdist_group("spark")
def test_spark_import_matches_the_duckdb_path(sim_store, tables_of, tmp_path):
    written = export_store(sim_store, tmp_path / "db", "omop", layout="duckdb")
    cdm_file = next(p for p in written.values() if str(p).endswith(".duckdb"))
    parquet = tmp_path / "parquet"
    parquet.mkdir()
    with duckdb.connect(str(cdm_file), read_only=True) as con:
        for (name,) in con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall():
            con.execute(f"COPY \"{name}\" TO '{parquet / (name.lower() + '.parquet')}' (FORMAT parquet)")
    spark = import_omop(tmp_path / "spark.duckdb", parquet, engine="spark", spark_master="local[2]")
    duck = import_omop(tmp_path / "duck.duckdb", cdm_file)
    tables_of.same(tables_of(tmp_path / "spark.duckdb"), tables_of(tmp_path / "duck.duckdb"))
    tables_of.same(tables_of(tmp_path / "spark.duckdb"), tables_of(sim_store))
    assert spark.report.to_dict(exact=True)["rows"] == duck.report.to_dict(exact=True)["rows"]
    assert spark.report.persons_selected == duck.report.persons_selected > 0

    (parquet / "person.parquet").unlink()
    with pytest.raises(InputError, match="person"):
        import_omop(tmp_path / "none.duckdb", parquet, engine="spark", spark_master="local[2]")
    assert not (tmp_path / "none.duckdb").exists()
