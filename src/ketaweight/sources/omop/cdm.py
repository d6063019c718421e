"""Where a CDM lives: a DuckDB file, a folder of CDM CSV files, or a PostgreSQL database (read-only).

Each connection runs SQL in the source database and returns Arrow tables, so the selection is pushed down
and only the rows the import uses travel.  The SQL the reader writes is the subset DuckDB and PostgreSQL
share (CTEs, EXISTS, CASE, COALESCE, CAST ... AS DOUBLE PRECISION).

PostgreSQL goes through ``adbc-driver-postgresql`` (Apache Arrow's ADBC driver, libpq inside the wheel):
it reads result sets with PostgreSQL's binary COPY protocol straight into Arrow columns, with no Python
object per value, and is maintained with Arrow itself.  psycopg 3 would be the other maintained choice, but
it builds Python tuples first.  DuckDB's own postgres extension is not used: it would be downloaded at run time.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pyarrow as pa

from ketaweight.core.duckdb_connection import connect
from ketaweight.core.errors import InputError, Location
from ketaweight.sources.omop.ddl import ACCEPTS, ALL_TABLES, REQUIRED_TABLES, USED_COLUMNS, category, duckdb_type


class CdmConnection(Protocol):
    """What the reader needs from a CDM: qualified table names, their columns, and SQL → Arrow."""

    label: str
    kind: str  # "duckdb" | "csv" | "postgresql" | "spark"

    def table(self, name: str) -> str: ...
    def columns(self) -> dict[str, dict[str, str]]: ...  # table → column → category
    def query(self, sql: str) -> pa.Table: ...
    def into(self, name: str, sql: str) -> None: ...  # the result of ``sql`` as temp table ``name`` of :attr:`work`
    @property
    def work(self) -> duckdb.DuckDBPyConnection: ...  # the local DuckDB where pulled rows are shaped
    def close(self) -> None: ...


def duck_arrow(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    """A DuckDB query's result as an Arrow table (``to_arrow_table`` from DuckDB 1.4, ``arrow`` before)."""
    rel = con.sql(sql)
    return rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.arrow()


MEMORY_LIMIT_GIB = 4
"""DuckDB's memory limit for the import's work (GiB; a quarter of the machine when that is less): beyond it
DuckDB spills to a temporary folder, so a CDM of any size is shaped in the same memory."""


def configure(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Bound DuckDB's memory (:data:`MEMORY_LIMIT_GIB`) and let it spill to a temporary folder instead;
    insertion order is not kept (the canonical tables are written in key order, see the reader)."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        con.execute(f"SET memory_limit = '{max(0.5, min(MEMORY_LIMIT_GIB, ram * 0.25 / 2**30)):.1f}GiB'")
    except (ValueError, OSError):
        pass  # the platform does not tell its memory: DuckDB's own default applies
    con.execute(f"SET temp_directory = '{tempfile.gettempdir()}/ketaweight-duckdb-spill'")
    con.execute("SET preserve_insertion_order = false")
    return con


#: ``SOURCE`` of an OMOP import naming a schema of Spark's catalog rather than a file or folder.
CATALOG_PREFIX = "catalog:"


def _ident(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", name):
        raise InputError([(Location("schema"), f"not a plain SQL name: {name!r}")])
    return name


class _ReadInDuckDB:
    """What a CDM read through a DuckDB connection ``con`` does the same way, whatever holds the tables
    (an attached DuckDB file or CSV files as views): queries as Arrow, intermediate selections as views."""

    con: duckdb.DuckDBPyConnection

    def query(self, sql: str) -> pa.Table:
        return duck_arrow(self.con, sql)

    @property
    def work(self) -> duckdb.DuckDBPyConnection:
        return self.con

    def into(self, name: str, sql: str) -> None:
        # A view: the rows stay in the source and are scanned where they are used, never copied.
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {sql}")

    def close(self) -> None:
        self.con.close()


@dataclass
class DuckDBCdm(_ReadInDuckDB):
    """A CDM in a DuckDB file, attached read-only (``cdm_schema``/``vocabulary_schema`` inside it)."""

    path: Path
    cdm_schema: str | None = None
    vocabulary_schema: str | None = None
    label: str = ""
    kind: str = "duckdb"
    con: Any = field(default=None, repr=False)
    _schemas: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.path.is_file():
            raise InputError([(Location(str(self.path)), "CDM database file not found")])
        self.label = self.label or str(self.path)
        self.con = configure(connect())
        try:
            self.con.execute(f"ATTACH '{str(self.path).replace(chr(39), chr(39) * 2)}' AS cdm_src (READ_ONLY)")
        except duckdb.Error as exc:
            raise InputError([(Location(self.label), f"not a DuckDB database: {exc}")]) from exc
        rows = self.con.execute("SELECT table_schema, lower(table_name) FROM information_schema.tables "
                                "WHERE table_catalog = 'cdm_src'").fetchall()
        by_table: dict[str, list[str]] = {}
        for schema, name in rows:
            by_table.setdefault(name, []).append(schema)
        for name, schemas in by_table.items():
            want = self.vocabulary_schema if name in ("concept", "concept_ancestor", "drug_strength", "vocabulary") else self.cdm_schema
            if want is not None:
                if want in schemas:
                    self._schemas[name] = want
            elif len(schemas) == 1 or "main" not in schemas:
                self._schemas[name] = schemas[0]
            else:
                self._schemas[name] = "main"

    def table(self, name: str) -> str:
        return f'cdm_src."{self._schemas[name]}"."{name}"'

    def columns(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        rows = self.con.execute("SELECT table_schema, lower(table_name), lower(column_name), data_type "
                                "FROM information_schema.columns WHERE table_catalog = 'cdm_src'").fetchall()
        for schema, table, column, dtype in rows:
            if self._schemas.get(table) == schema:
                out.setdefault(table, {})[column] = category(dtype)
        return out


@dataclass
class CsvCdm(_ReadInDuckDB):
    """A folder of CDM CSV files (``PERSON.csv`` or ``person.csv``, comma- or tab-separated), as OHDSI and
    Synthea ETLs ship them.  Each file the reader uses is read as text once; values that do not have their
    DDL type are reported with file, line and column."""

    folder: Path
    label: str = ""
    kind: str = "csv"
    con: Any = field(default=None, repr=False)
    files: dict[str, Path] = field(default_factory=dict, repr=False)
    _loaded: set[str] = field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        if not self.folder.is_dir():
            raise InputError([(Location(str(self.folder)), "not a folder")])
        self.label = self.label or str(self.folder)
        for path in sorted(self.folder.iterdir()):
            if path.suffix.lower() == ".csv" and path.stem.lower() in ALL_TABLES:
                if path.stem.lower() in self.files:
                    raise InputError([(Location(str(path)), f"two files for table {path.stem.lower()}; keep one")])
                self.files[path.stem.lower()] = path
        self.con = configure(connect())

    def table(self, name: str) -> str:
        if name not in self._loaded:
            self._load(name)
        return f'"{name}"'

    def _load(self, name: str) -> None:
        path = self.files[name]
        label = str(path)
        quoted = str(path).replace("'", "''")
        try:
            self.con.execute(f"CREATE TEMP TABLE \"_raw_{name}\" AS SELECT row_number() OVER () + 1 AS _line, * "
                             f"FROM read_csv('{quoted}', header = true, all_varchar = true, auto_detect = true)")
        except duckdb.Error as exc:
            raise InputError([(Location(label), f"cannot read this CSV file: {str(exc).splitlines()[0]}")]) from exc
        present = {c.lower(): c for c in (r[0] for r in self.con.execute(f'DESCRIBE "_raw_{name}"').fetchall())}
        problems: list[tuple[Location, str]] = []
        exprs = []
        for column, ddl_type, required in ALL_TABLES[name]:
            if column not in present:
                if required and name in REQUIRED_TABLES:
                    problems.append((Location(label, 1, column), "required CDM column is missing from the header"))
                elif column in USED_COLUMNS.get(name, ()):
                    problems.append((Location(label, 1, column), "column the import reads is missing from the header "
                                                                 "(OMOP CDM 5.4 has it)"))
                exprs.append(f"CAST(NULL AS {duckdb_type(ddl_type)}) AS {column}")
                continue
            raw = f'"{present[column]}"'
            target = duckdb_type(ddl_type)
            if target == "VARCHAR":
                exprs.append(f"{raw} AS {column}")
                continue
            bad = self.con.execute(f"SELECT _line, {raw} FROM \"_raw_{name}\" WHERE {raw} IS NOT NULL AND trim({raw}) <> '' "
                                   f"AND TRY_CAST({raw} AS {target}) IS NULL ORDER BY _line LIMIT 5").fetchall()
            problems += [(Location(label, int(line), column), f"not a valid {ddl_type}: {value!r}") for line, value in bad]
            exprs.append(f"TRY_CAST(NULLIF(trim({raw}), '') AS {target}) AS {column}")
        if problems:
            raise InputError(problems)
        self.con.execute(f'CREATE TEMP VIEW "{name}" AS SELECT _line, {", ".join(exprs)} FROM "_raw_{name}"')
        self._loaded.add(name)

    def columns(self) -> dict[str, dict[str, str]]:
        # Typed views carry every DDL column (absent ones as NULL); the header check happens on load.
        return {name: {c: category(duckdb_type(t)) for c, t, _r in ALL_TABLES[name]} for name in self.files}


class LandsLocally:
    """For a CDM elsewhere (PostgreSQL, Spark): the rows it pulls land in a local in-memory DuckDB
    (``work``), where the reader shapes them.  The class using it has a ``_work`` field (None at first)."""

    _work: Any

    @property
    def work(self) -> duckdb.DuckDBPyConnection:
        if self._work is None:
            self._work = configure(connect())
        return self._work

    def land(self, name: str, incoming: Any) -> None:
        """``incoming`` (an Arrow table or record-batch reader) as the local temporary table ``name``."""
        self.work.register("_kw_incoming", incoming)
        try:
            self.work.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM _kw_incoming")
        finally:
            self.work.unregister("_kw_incoming")


@dataclass
class PostgresCdm(LandsLocally):
    """A CDM in PostgreSQL, read through ADBC in a read-only session."""

    url: str
    cdm_schema: str = "public"
    vocabulary_schema: str | None = None
    label: str = ""
    kind: str = "postgresql"
    con: Any = field(default=None, repr=False)
    _work: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        import adbc_driver_postgresql.dbapi as pg  # imported here: only PostgreSQL users need the driver loaded

        _ident(self.cdm_schema)
        self.vocabulary_schema = _ident(self.vocabulary_schema or self.cdm_schema)
        # The label never shows a password.
        self.label = self.label or re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", self.url) + f" (schema {self.cdm_schema})"
        try:
            self.con = pg.connect(self.url)
        except Exception as exc:  # the driver raises its own OperationalError family
            raise InputError([(Location(self.label), f"cannot connect to PostgreSQL: {str(exc).splitlines()[0]}")]) from exc
        with self.con.cursor() as cur:
            cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        self.con.commit()

    def table(self, name: str) -> str:
        schema = self.vocabulary_schema if name in ("concept", "concept_ancestor", "drug_strength", "vocabulary") else self.cdm_schema
        return f'"{schema}"."{name}"'

    def columns(self) -> dict[str, dict[str, str]]:
        schemas = sorted({self.cdm_schema, self.vocabulary_schema or self.cdm_schema})
        in_list = ", ".join(f"'{s}'" for s in schemas)
        rows = self.query("SELECT table_schema, lower(table_name) AS t, lower(column_name) AS c, data_type "
                          f"FROM information_schema.columns WHERE table_schema IN ({in_list})").to_pylist()
        out: dict[str, dict[str, str]] = {}
        for r in rows:
            vocab = r["t"] in ("concept", "concept_ancestor", "drug_strength", "vocabulary")
            if r["table_schema"] == (self.vocabulary_schema if vocab else self.cdm_schema):
                out.setdefault(r["t"], {})[r["c"]] = category(r["data_type"])
        return out

    def query(self, sql: str) -> pa.Table:
        with self.con.cursor() as cur:
            cur.execute(sql)
            table = cur.fetch_arrow_table()
        self.con.commit()
        return table

    def into(self, name: str, sql: str) -> None:
        """Stream the result from PostgreSQL (Arrow batches over the binary COPY protocol) into a local table."""
        with self.con.cursor() as cur:
            cur.execute(sql)
            self.land(name, cur.fetch_record_batch())
        self.con.commit()

    def close(self) -> None:
        if self._work is not None:
            self._work.close()
        self.con.close()


def open_cdm(location: str | Path, *, cdm_schema: str | None = None, vocabulary_schema: str | None = None) -> CdmConnection:
    """A DuckDB file, a CSV folder, or a ``postgresql://`` URL (a Parquet CDM on Spark:
    :class:`ketaweight.sources.omop.spark_cdm.SparkCdm`)."""
    text = str(location)
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresCdm(text, cdm_schema or "public", vocabulary_schema)
    if text.startswith(CATALOG_PREFIX):
        raise InputError([(Location(text), "a catalog schema is read by Spark: add --engine spark")])
    path = Path(location)
    if path.is_dir():
        return CsvCdm(path)
    if not path.exists():
        raise InputError([(Location(text), "not found: give a DuckDB file, a folder of CDM CSV files or a postgresql:// URL")])
    return DuckDBCdm(path, cdm_schema, vocabulary_schema)


def check_tables(cdm: CdmConnection, used: dict[str, tuple[str, ...]]) -> dict[str, dict[str, str]]:
    """The columns of every CDM table; an error naming each missing required table, missing used column and
    column of the wrong type (checked against the 5.4 DDL)."""
    found = cdm.columns()
    problems: list[tuple[Location, str]] = []
    for name in REQUIRED_TABLES:
        if name not in found:
            problems.append((Location(f"{cdm.label}: table {name}"), "required CDM table is missing"
                             + (f" (tables found: {', '.join(sorted(found)) or 'none'})" if not problems else "")))
    ddl = {t: {c: (ty, req) for c, ty, req in cols} for t, cols in ALL_TABLES.items()}
    for table, columns in used.items():
        if table not in found:
            continue
        for column in columns:
            ty, _req = ddl[table][column]
            actual = found[table].get(column)
            where = Location(f"{cdm.label}: table {table}", column=column)
            if actual is None:
                problems.append((where, "column is missing (OMOP CDM 5.4 has it)"))
            elif actual not in ACCEPTS[ty]:
                problems.append((where, f"has type {actual}, expected {ty} (OMOP CDM 5.4 DDL)"))
    if problems:
        raise InputError(problems)
    return found
