"""The options past one machine refuse wrong input before any work, with a message that says the fix."""

import socket

import pytest
from typer.testing import CliRunner

from ketaweight.cli import app

runner = CliRunner()


def test_a_wrong_scheduler_is_named_before_any_replicate(tmp_path):
    res = runner.invoke(app, ["validate", "estimators", "--scheduler", "dask", "--out", str(tmp_path / "v")])
    assert res.exit_code == 2
    assert "tcp://" in res.output and "local:N" in res.output
    assert not (tmp_path / "v").exists()


def test_spark_engine_needs_a_folder_of_parquet_tables(tmp_path):
    res = runner.invoke(app, ["analyze", "--store", str(tmp_path / "kw.duckdb"), "--study", "ketamine-weight",
                              "--engine", "spark"])
    assert res.exit_code == 2
    assert "not a folder of canonical Parquet tables" in res.output and "--format parquet" in res.output


def test_a_typo_in_the_spark_master_is_named(tmp_path):
    res = runner.invoke(app, ["analyze", "--store", str(tmp_path), "--study", "ketamine-weight", "--engine", "spark",
                              "--spark-master", "lokal[2]"])
    assert res.exit_code == 2 and "spark-master" in res.output
    res = runner.invoke(app, ["analyze", "--store", str(tmp_path), "--study", "ketamine-weight", "--engine", "sprak"])
    assert res.exit_code == 2


def test_no_java_is_named_with_the_fix(tmp_path, monkeypatch):
    from ketaweight.core.spark import _require_java

    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without java
    with pytest.raises(ValueError, match=r"needs Java 17.*no java on PATH.*openjdk-17-jre-headless"):
        _require_java()
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    with pytest.raises(ValueError, match=r"JAVA_HOME=.* has no bin/java"):
        _require_java()


def test_network_validate_checks_its_scheduler_before_any_network(tmp_path):
    res = runner.invoke(app, ["network", "validate", "--scheduler", "tpc://head:8786", "--out", str(tmp_path / "v")])
    assert res.exit_code == 2 and "tcp://" in res.output
    assert not (tmp_path / "v").exists()


def test_an_unreachable_spark_master_is_named_at_once():
    from ketaweight.core.spark import _require_standalone_master

    with socket.socket() as s:  # a port nothing listens on: bound, never listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        with pytest.raises(ValueError, match=rf"no Spark master answers there \(127.0.0.1:{port}: .*refused"):
            _require_standalone_master(f"spark://127.0.0.1:{port}", timeout_s=2)
