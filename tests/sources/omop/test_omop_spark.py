"""The OMOP selection on Spark: a CDM as Parquet tables or as the tables of a catalog schema, read by Spark
in local mode with the reader's own SQL transpiled to Spark SQL, gives exactly the canonical tables of the
DuckDB path."""

from __future__ import annotations

import re
import shutil

import duckdb
import pytest

from ketaweight.core.errors import InputError
from ketaweight.core.spark import spark_session
from ketaweight.pipelines.imports import export_store, import_omop
from ketaweight.sources.omop.ddl import VOCABULARY_TABLES

pytest.importorskip("pyspark")
pytest.importorskip("sqlglot")
if shutil.which("java") is None:
    pytest.skip("Spark needs Java 17+ on this machine", allow_module_level=True)


def _cdm_as_parquet(sim_store, tmp_path):
    """The simulated store exported as a DuckDB CDM file, and each of its tables as ``<table>.parquet``."""
    written = export_store(sim_store, tmp_path / "db", "omop", layout="duckdb")
    cdm_file = next(p for p in written.values() if str(p).endswith(".duckdb"))
    parquet = tmp_path / "parquet"
    parquet.mkdir()
    with duckdb.connect(str(cdm_file), read_only=True) as con:
        for (name,) in con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall():
            con.execute(f"COPY \"{name}\" TO '{parquet / (name.lower() + '.parquet')}' (FORMAT parquet)")
    return cdm_file, parquet


@pytest.mark.xdist_group("spark")
def test_spark_import_matches_the_duckdb_path(sim_store, tables_of, tmp_path):
    cdm_file, parquet = _cdm_as_parquet(sim_store, tmp_path)
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


@pytest.mark.xdist_group("spark")
def test_a_catalog_schema_import_matches_the_duckdb_path(sim_store, tables_of, tmp_path):
    """The CDM's tables in one schema of Spark's catalog and its vocabulary in another (as on Databricks,
    where they are Delta tables; here the local catalog's Parquet tables): the same tables as DuckDB's."""
    cdm_file, parquet = _cdm_as_parquet(sim_store, tmp_path)
    session = spark_session("local[2]")
    cdm, vocabulary = f"kw_cdm_{tmp_path.name[-8:]}", f"kw_vocab_{tmp_path.name[-8:]}"
    cdm, vocabulary = (re.sub(r"\W", "_", name) for name in (cdm, vocabulary))
    for schema in (cdm, vocabulary):
        session.sql(f"CREATE DATABASE {schema} LOCATION '{tmp_path / 'warehouse' / schema}'")
    for path in parquet.glob("*.parquet"):
        schema = vocabulary if path.stem in VOCABULARY_TABLES else cdm
        session.read.parquet(str(path)).write.saveAsTable(f"{schema}.{path.stem}")

    import_omop(tmp_path / "catalog.duckdb", f"catalog:{cdm}", vocabulary_schema=vocabulary, engine="spark",
                spark_master="local[2]")
    import_omop(tmp_path / "duck.duckdb", cdm_file)
    tables_of.same(tables_of(tmp_path / "catalog.duckdb"), tables_of(tmp_path / "duck.duckdb"))

    with pytest.raises(InputError, match="concept"):  # the vocabulary is not in the CDM's schema
        import_omop(tmp_path / "none.duckdb", f"catalog:{cdm}", engine="spark", spark_master="local[2]")
    with pytest.raises(InputError, match="no schema 'kw_absent'"):
        import_omop(tmp_path / "none.duckdb", "catalog:kw_absent", engine="spark", spark_master="local[2]")
    with pytest.raises(InputError, match="not a catalog schema name"):
        import_omop(tmp_path / "none.duckdb", "catalog:cdm; DROP", engine="spark", spark_master="local[2]")
    with pytest.raises(InputError, match="add --engine spark"):
        import_omop(tmp_path / "none.duckdb", f"catalog:{cdm}")
    assert not (tmp_path / "none.duckdb").exists()
