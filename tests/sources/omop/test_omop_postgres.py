"""PostgreSQL: a throwaway server from the Debian binaries (started here, on 127.0.0.1 and a free port,
stopped at the end), a simulated CDM loaded with the official 5.4 DDL (NUMERIC columns and all), and an
import through ADBC that gives exactly the tables of the DuckDB path — in a read-only session."""

from __future__ import annotations

import pytest
from pg_server import load_cdm

from ketaweight.core.errors import InputError
from ketaweight.pipelines.imports import export_store, import_omop
from ketaweight.sources.omop.cdm import PostgresCdm
from ketaweight.sources.omop.ddl import ALL_TABLES


def test_postgres_import_matches_the_duckdb_path(sim_store, tables_of, postgres_url, tmp_path):
    export_store(sim_store, tmp_path / "cdm", "omop")
    load_cdm(postgres_url, tmp_path / "cdm", tuple(ALL_TABLES))
    pg = import_omop(tmp_path / "pg.duckdb", postgres_url, cdm_schema="cdm")
    duck = import_omop(tmp_path / "duck.duckdb", tmp_path / "cdm")
    tables_of.same(tables_of(tmp_path / "pg.duckdb"), tables_of(tmp_path / "duck.duckdb"))
    tables_of.same(tables_of(tmp_path / "pg.duckdb"), tables_of(sim_store))
    assert pg.report.to_dict(exact=True)["rows"] == duck.report.to_dict(exact=True)["rows"]
    assert pg.provenance == duck.provenance and pg.provenance.origin == "simulated"
    assert "***" not in pg.report.source  # no password in this URL to hide


def test_the_postgres_session_is_read_only(postgres_url):
    cdm = PostgresCdm(postgres_url, "public")
    try:
        with pytest.raises(Exception, match="read-only"):
            cdm.query("CREATE TABLE public.should_not_exist (a integer)")
    finally:
        cdm.close()


def test_a_wrong_schema_is_a_clear_error(postgres_url, tmp_path):
    with pytest.raises(InputError, match="table person: required CDM table is missing"):
        import_omop(tmp_path / "s.duckdb", postgres_url, cdm_schema="nowhere")
    assert not (tmp_path / "s.duckdb").exists()
