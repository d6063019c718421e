"""The canonical tables as Parquet, read by Spark: the store's query side on a Spark cluster.

A :class:`SparkTables` is what the cohort needs from a store (``arrow(sql)``, ``path``,
``provenance()``) for a folder of canonical Parquet tables (``ketaweight store export --format
parquet``, or the same tables written by a warehouse job; each ``<table>.parquet`` may be a file or
a folder of part files).  The SQL is the cohort's own DuckDB SQL, transpiled to Spark SQL
(:mod:`ketaweight.core.spark`), so DuckDB and Spark give the same table row for row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from ketaweight.core.errors import InputError, Location
from ketaweight.core.provenance import Provenance, read_provenance_file
from ketaweight.core.schema import TABLES
from ketaweight.core.spark import DEFAULT_MASTER, normalise, register_parquet, spark_arrow, spark_session, to_spark_sql

REQUIRED = ("patients", "exposures", "measurements")
"""Tables a study needs; ``lifestyle`` and ``adverse_events`` may be absent (read as empty)."""

BROADCAST_ROWS = 5_000_000
"""Views of up to this many rows (a study population: ≈ 50 bytes a row) are broadcast to the joins
that read them, so that the measurements are joined where they are read instead of being shuffled
and sorted by patient (Spark's own rule broadcasts only relations it estimates under 10 MB:
200,000 persons)."""


@dataclass
class SparkTables:
    """Canonical Parquet tables in ``folder`` as Spark views, queried with DuckDB SQL.

    ``master`` is the Spark master URL (``local[2]``, ``spark://host:7077``, ``yarn``, ``sc://`` for
    Spark Connect); the folder must be readable by the cluster (a shared file system, HDFS, S3…).
    """

    folder: Path
    master: str = DEFAULT_MASTER
    session: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        if not self.folder.is_dir() and "://" not in str(self.folder):
            raise InputError([(Location(str(self.folder)), "not a folder of canonical Parquet tables "
                               "(write one with: ketaweight store export --store FILE --out DIR --format parquet)")])
        missing = [t for t in REQUIRED if not (self.folder / f"{t}.parquet").exists()]
        if missing:
            raise InputError([(Location(str(self.folder / f"{t}.parquet")), "table not found") for t in missing])
        self.session = self.session or spark_session(self.master)
        for name, table in TABLES.items():
            path = self.folder / f"{name}.parquet"
            if path.exists():
                register_parquet(self.session, name, str(path))
            else:  # an empty table of the canonical columns
                columns = ", ".join(f'CAST(NULL AS {c.sql_type}) AS "{c.name}"' for c in table.columns)
                self.session.sql(to_spark_sql(f"SELECT * FROM (SELECT {columns}) WHERE 1 = 0")).createOrReplaceTempView(name)

    @property
    def path(self) -> Path:
        """Where the tables lie (named in messages, like a store's file)."""
        return self.folder

    def arrow(self, sql: str, views: dict[str, pd.DataFrame] | None = None) -> pa.Table:
        """DuckDB-dialect ``sql`` run on Spark, with ``views`` (name → frame, sent to the cluster) visible
        by name while it runs; the result as Arrow in the engines' one form (:func:`normalise`)."""
        views = views or {}
        for name, frame in views.items():
            view = self.session.createDataFrame(frame)
            (view.hint("broadcast") if len(frame) <= BROADCAST_ROWS else view).createOrReplaceTempView(name)
        try:
            return normalise(spark_arrow(self.session, sql))
        finally:
            for name in views:
                self.session.catalog.dropTempView(name)

    def provenance(self) -> Provenance:
        """The ``provenance.json`` an export wrote beside the tables, else real records from the folder."""
        return read_provenance_file(self.folder) or Provenance("real", f"records in {self.folder.name}/")

    def close(self) -> None:
        """Leave the session running (one per process, reused); the views are replaced by the next folder."""

    def __enter__(self) -> "SparkTables":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
