"""A CDM whose tables are Parquet on a Spark cluster: the OMOP selection runs there, as Spark SQL.

The reader's pushed-down SQL (the person selection, the rows of used concepts, the concept look-ups) is
the same text the DuckDB and PostgreSQL CDMs run, transpiled to Spark SQL by SQLGlot
(:mod:`ketaweight.core.spark`); only its results (the selected persons' rows of the concepts the study
uses) come back, as Arrow, into the local DuckDB where they are shaped, as for PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from ketaweight.core.errors import InputError, Location
from ketaweight.core.spark import DEFAULT_MASTER, register_parquet, spark_arrow, spark_session
from ketaweight.sources.omop.cdm import LandsLocally
from ketaweight.sources.omop.ddl import ALL_TABLES, category


@dataclass
class SparkCdm(LandsLocally):
    """CDM 5.4 tables as Parquet (``<table>.parquet``, lower-case names, a file or a folder of parts) in
    ``folder`` (readable by the cluster), read by Spark on ``master``."""

    folder: Path
    master: str = DEFAULT_MASTER
    label: str = ""
    kind: str = "spark"
    session: Any = field(default=None, repr=False)
    _tables: dict[str, str] = field(default_factory=dict, repr=False)
    _work: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        if not self.folder.is_dir():
            raise InputError([(Location(str(self.folder)), "not a folder of CDM Parquet tables (<table>.parquet)")])
        self.label = self.label or f"{self.folder} (Spark {self.master})"
        self.session = self.session or spark_session(self.master)
        for path in sorted(self.folder.iterdir()):
            name = path.name.removesuffix(".parquet").lower()
            if path.name.lower().endswith(".parquet") and name in ALL_TABLES:
                view = f"cdm_{name}"  # a prefix: Spark's own views of other folders keep their names
                register_parquet(self.session, view, str(path))
                self._tables[name] = view

    def table(self, name: str) -> str:
        return self._tables.get(name, f"cdm_{name}")

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
