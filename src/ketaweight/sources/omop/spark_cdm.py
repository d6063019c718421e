"""A CDM on a Spark cluster — Parquet files, or the tables of a catalog schema (on Databricks, Delta tables
in Unity Catalog): the OMOP selection runs there, as Spark SQL.

The reader's pushed-down SQL (the person selection, the rows of used concepts, the concept look-ups) is
the same text the DuckDB and PostgreSQL CDMs run, transpiled to Spark SQL by SQLGlot
(:mod:`ketaweight.core.spark`); only its results (the selected persons' rows of the concepts the study
uses) come back, as Arrow, into the local DuckDB where they are shaped, as for PostgreSQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from ketaweight.core.errors import InputError, Location
from ketaweight.core.spark import DEFAULT_MASTER, register_parquet, spark_arrow, spark_session
from ketaweight.sources.omop.cdm import CATALOG_PREFIX, LandsLocally
from ketaweight.sources.omop.ddl import ALL_TABLES, VOCABULARY_TABLES, category


@dataclass
class SparkCdm(LandsLocally):
    """CDM 5.4 tables read by Spark on ``master``: Parquet in ``folder`` (``<table>.parquet``, lower-case
    names, a file or a folder of parts, readable by the cluster), or, with ``cdm_schema`` instead, the
    tables of that schema of the session's catalog (``omop`` or ``main.omop``; whatever format the catalog
    holds — Delta on Databricks), the vocabulary tables from ``vocabulary_schema`` (default: the CDM's)."""

    folder: Path | None = None
    master: str = DEFAULT_MASTER
    cdm_schema: str | None = None
    vocabulary_schema: str | None = None
    label: str = ""
    kind: str = "spark"
    session: Any = field(default=None, repr=False)
    _tables: dict[str, str] = field(default_factory=dict, repr=False)
    _work: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if (self.folder is None) == (self.cdm_schema is None):
            raise ValueError("SparkCdm reads either a folder of Parquet tables or a catalog schema")
        if self.folder is not None:
            self.folder = Path(self.folder)
            if not self.folder.is_dir():
                raise InputError([(Location(str(self.folder)), "not a folder of CDM Parquet tables (<table>.parquet)")])
            self.label = self.label or f"{self.folder} (Spark {self.master})"
        else:
            self.vocabulary_schema = _schema_name(self.vocabulary_schema or self.cdm_schema)
            _schema_name(self.cdm_schema)
            vocabulary = "" if self.vocabulary_schema == self.cdm_schema else f", vocabulary {self.vocabulary_schema}"
            self.label = self.label or f"catalog schema {self.cdm_schema}{vocabulary} (Spark {self.master})"
        self.session = self.session or spark_session(self.master)
        if self.folder is not None:
            for path in sorted(self.folder.iterdir()):
                name = path.name.removesuffix(".parquet").lower()
                if path.name.lower().endswith(".parquet") and name in ALL_TABLES:
                    register_parquet(self.session, self._view(name), str(path))
                    self._tables[name] = self._view(name)
        else:
            self._register_catalog_tables()

    @staticmethod
    def _view(name: str) -> str:
        """The temporary view of CDM table ``name`` (a prefix: the session's own views keep their names)."""
        return f"cdm_{name}"

    def _register_catalog_tables(self) -> None:
        """Each CDM table the schemas hold as a temporary view (read where it lies: a view, not a copy)."""
        catalog = self.session.catalog
        for schema in sorted({self.cdm_schema, self.vocabulary_schema}):
            if not catalog.databaseExists(schema):
                raise InputError([(Location(self.label), f"the Spark catalog has no schema {schema!r}")])
        for name in ALL_TABLES:
            qualified = f"{self.vocabulary_schema if name in VOCABULARY_TABLES else self.cdm_schema}.{name}"
            if catalog.tableExists(qualified):
                self.session.table(qualified).createOrReplaceTempView(self._view(name))
                self._tables[name] = self._view(name)

    def table(self, name: str) -> str:
        return self._tables.get(name, self._view(name))

    def columns(self) -> dict[str, dict[str, str]]:
        return {name: {f.name.lower(): category(f.dataType.simpleString()) for f in self.session.table(view).schema.fields}
                for name, view in self._tables.items()}

    def query(self, sql: str) -> pa.Table:
        return spark_arrow(self.session, sql)

    def into(self, name: str, sql: str) -> None:
        """The result of ``sql`` computed on Spark, collected as Arrow into a local table."""
        self.land(name, self.query(sql))

    def close(self) -> None:
        """Close the local DuckDB; the Spark session stays (one per process, reused)."""
        if self._work is not None:
            self._work.close()


def _schema_name(name: str) -> str:
    """``name`` if it is a plain catalog schema name (``omop``, ``main.omop``), else an error: it is
    pasted into SQL."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?", name):
        raise InputError([(Location(f"{CATALOG_PREFIX}{name}"), "not a catalog schema name (schema or catalog.schema, "
                                                                   "letters, digits and _)")])
    return name


def open_spark_cdm(source: str | Path, master: str, *, vocabulary_schema: str | None = None) -> SparkCdm:
    """The CDM at ``source`` on Spark: ``catalog:SCHEMA`` (tables of the session's catalog) or a folder of
    Parquet tables (``vocabulary_schema`` applies to the catalog form only)."""
    text = str(source)
    if text.startswith(CATALOG_PREFIX):
        return SparkCdm(cdm_schema=text.removeprefix(CATALOG_PREFIX), master=master, vocabulary_schema=vocabulary_schema)
    if vocabulary_schema is not None:
        raise InputError([(Location(text), "--vocabulary-schema needs a catalog source (catalog:SCHEMA) with --engine spark")])
    return SparkCdm(Path(source), master)
