"""Spark SQL from our one DuckDB SQL: the session, the transpilation and the results as Arrow.

The SQL that selects a study's rows is written once, in DuckDB's dialect (the default engine).  To
run it on Spark it is transpiled by SQLGlot (``duckdb`` → ``spark``), never rewritten by hand, and
the result comes back as Arrow; only that result (the analysis table, or the rows an import pulls)
leaves the Spark cluster.

``pyspark`` and ``sqlglot`` are imported only here and only when Spark is asked for
(``pip install 'ketaweight[spark]'``; Spark needs Java 17 or later on the machine that runs it).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import pyarrow as pa

DEFAULT_MASTER = "local[2]"
"""The Spark master when none is given (``--spark-master``, ``KETAWEIGHT_SPARK_MASTER``)."""

_LOCAL = re.compile(r"local(\[(\d+|\*)(,\d+)?\])?$")


def _imports() -> tuple[Any, Any]:
    try:
        import sqlglot
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise ValueError("the Spark engine needs pyspark and sqlglot: pip install 'ketaweight[spark]' "
                         "(and Java 17+ on this machine)") from exc
    return SparkSession, sqlglot


def check_master(master: str) -> str:
    """``master`` checked for form (``local``, ``local[N]``, ``local[*]``, ``spark://host:port``,
    ``yarn``, ``k8s://…``), before a session is started."""
    if _LOCAL.match(master) or master == "yarn" or master.startswith(("spark://", "k8s://", "sc://")):
        return master
    raise ValueError(f"--spark-master {master!r}: give local[N], spark://host:7077, yarn or k8s://… "
                     "(the URL of the cluster's master)")


@lru_cache(maxsize=1)
def spark_session(master: str = DEFAULT_MASTER) -> Any:
    """The process's Spark session on ``master`` (started once, reused; ``sc://`` is Spark Connect).

    Times are read and written in UTC (``spark.sql.session.timeZone``), as DuckDB's naive
    timestamps are; the web UI is off.  On a local master the shuffle uses few partitions (the
    default 200 costs seconds per query on a small machine) and the driver, which is also the
    executor there, gets 4 GiB (``KETAWEIGHT_SPARK_DRIVER_MEMORY`` to change), and the catalog's
    warehouse is a folder under the system's temporary directory, not the working one.  On a cluster
    everything else comes from its own spark-defaults.
    """
    SparkSession, _ = _imports()
    check_master(master)
    if not master.startswith("sc://"):  # the driver starts a JVM (Spark Connect needs none here)
        _require_java()
    if master.startswith("spark://"):
        _require_standalone_master(master)
    builder = SparkSession.builder.appName("ketaweight")
    builder = builder.remote(master) if master.startswith("sc://") else builder.master(master)
    builder = (builder.config("spark.sql.session.timeZone", "UTC").config("spark.ui.enabled", "false")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true"))
    if _LOCAL.match(master):
        cores = os.cpu_count() or 1
        # ketaweight never writes to the catalog: its default warehouse would be an empty `spark-warehouse`
        # folder left in the user's working directory.
        warehouse = Path(tempfile.gettempdir()) / "ketaweight-spark-warehouse"
        builder = (builder.config("spark.sql.shuffle.partitions", str(max(2, 2 * cores)))
                   .config("spark.driver.memory", os.environ.get("KETAWEIGHT_SPARK_DRIVER_MEMORY", "4g"))
                   .config("spark.sql.warehouse.dir", str(warehouse)))
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # pyspark's errors (a JVM that exits, a master that never answers) as one message
        raise ValueError(f"Spark could not start a session on {master!r}: {str(exc).strip().splitlines()[0]}") from exc
    session.sparkContext.setLogLevel("ERROR")
    return session


def _require_standalone_master(master: str, timeout_s: float = 5.0) -> None:
    """Stop at once when no address of a ``spark://host:port[,host:port]`` master accepts a connection
    (Spark itself retries for about a minute and then names a Java class, not the address)."""
    problems = []
    for address in master.removeprefix("spark://").split(","):
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout_s):
                return
        except (OSError, ValueError) as exc:
            problems.append(f"{address}: {exc}")
    raise ValueError(f"--spark-master {master!r}: no Spark master answers there ({'; '.join(problems)}); "
                     "check the host and port (the master's web UI shows its spark:// URL)")


def _require_java() -> None:
    """Stop with the fix when this machine has no Java for Spark's driver (before pyspark's own error)."""
    home = os.environ.get("JAVA_HOME")
    java = Path(home, "bin", "java") if home else shutil.which("java")
    if java is None or not Path(java).exists():
        where = f"JAVA_HOME={home} has no bin/java" if home else "no java on PATH and JAVA_HOME is not set"
        raise ValueError(f"the Spark engine needs Java 17 or later on this machine ({where}): install it "
                         "(Debian/Ubuntu: apt-get install openjdk-17-jre-headless) or set JAVA_HOME")


def to_spark_sql(sql: str) -> str:
    """DuckDB SQL transpiled to Spark SQL by SQLGlot (an error names what SQLGlot could not carry over).

    One rule of our own (:func:`_day_differences`): DuckDB's ``date_diff('day', a, b)`` becomes
    Spark's ``datediff(b, a)`` rather than SQLGlot's ``DATEDIFF(DAY, a, b)``."""
    _, sqlglot = _imports()
    try:
        trees = sqlglot.parse(sql, read="duckdb")
        if len(trees) != 1 or trees[0] is None:
            raise ValueError(f"expected one SQL statement, got {len(trees)}")
        return trees[0].transform(_day_differences).sql("spark", unsupported_level=sqlglot.ErrorLevel.RAISE)
    except sqlglot.errors.SqlglotError as exc:
        raise ValueError(f"this DuckDB SQL has no Spark SQL form in SQLGlot: {exc}") from exc


def _day_differences(node: Any) -> Any:
    """``date_diff('day', a, b)`` as Spark's two-argument ``datediff(b, a)``: the calendar days from
    the date of ``a`` to the date of ``b``, which is DuckDB's meaning for dates and timestamps alike.
    SQLGlot's ``DATEDIFF(DAY, a, b)`` is Spark's ``timestampdiff``: for timestamps it counts whole
    24-hour periods (not DuckDB's meaning), and even for dates it works through time-zone-aware
    timestamps per row — 2½ times the CPU of the integer ``datediff`` (measured on 13 M rows),
    a third of a cohort build's Spark time.  Other units keep SQLGlot's form, whose whole-period
    count is not DuckDB's count of boundaries (a month from 28 February to 1 March: 0 against 1);
    the SQL we send to Spark counts days only."""
    from sqlglot import exp

    if isinstance(node, exp.DateDiff) and node.unit is not None and node.unit.name.lower() in ("day", "days", "d"):
        return exp.DateDiff(this=node.this, expression=node.expression)
    return node


def spark_arrow(session: Any, sql: str) -> pa.Table:
    """Run DuckDB-dialect ``sql`` on Spark; the result as an Arrow table (collected to this process)."""
    frame = session.sql(to_spark_sql(sql))
    return frame.toArrow() if hasattr(frame, "toArrow") else pa.Table.from_pandas(frame.toPandas(), preserve_index=False)


def register_parquet(session: Any, name: str, path: str) -> None:
    """Parquet file or folder ``path`` as Spark temporary view ``name`` (read where it lies, not copied)."""
    session.read.parquet(path).createOrReplaceTempView(name)


def normalise(table: pa.Table) -> pa.Table:
    """One Arrow form for a result whatever engine computed it: integers as int64, floats as float64,
    strings as string, every column nullable.  (DuckDB and Spark differ only there: ``year()`` is
    BIGINT in one and INT in the other.)"""
    fields = []
    for f in table.schema:
        t = f.type
        if pa.types.is_integer(t):
            t = pa.int64()
        elif pa.types.is_floating(t):
            t = pa.float64()
        elif pa.types.is_large_string(t) or pa.types.is_string_view(t):
            t = pa.string()
        fields.append(pa.field(f.name, t, nullable=True))
    return table.cast(pa.schema(fields))


__all__ = ["DEFAULT_MASTER", "check_master", "normalise", "register_parquet", "spark_arrow", "spark_session", "to_spark_sql"]
