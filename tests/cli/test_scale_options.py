"""The options past one machine refuse wrong input before any work, with a message that says the fix."""

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
