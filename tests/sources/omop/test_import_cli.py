"""The import and export commands as a new user meets them: help, a wrong path, a typo, a round trip."""

from __future__ import annotations

from typer.testing import CliRunner

from ketaweight.cli import app

runner = CliRunner()


def flat(res) -> str:
    """The output with the terminal's line wrapping undone."""
    return " ".join(res.output.split())


def test_help_of_the_new_commands():
    for args in (["store", "import-omop", "--help"], ["store", "import-fhir", "--help"], ["store", "export", "--help"]):
        res = runner.invoke(app, args, terminal_width=80)
        assert res.exit_code == 0, res.output
    assert "postgresql://" in runner.invoke(app, ["store", "import-omop", "--help"], terminal_width=80).output


def test_a_wrong_path_is_a_clear_error(tmp_path):
    res = runner.invoke(app, ["store", "import-omop", str(tmp_path / "nope"), "--store", str(tmp_path / "s.duckdb")])
    assert res.exit_code == 2 and "not found: give a DuckDB file, a folder of CDM CSV files or a postgresql:// URL" in flat(res)
    res = runner.invoke(app, ["store", "import-fhir", str(tmp_path / "nope"), "--store", str(tmp_path / "s.duckdb")])
    assert res.exit_code == 2 and "not found" in flat(res)
    assert not (tmp_path / "s.duckdb").exists()


def test_a_typo_in_the_export_layout_is_named(sim_store, tmp_path):
    res = runner.invoke(app, ["store", "export", "--store", str(sim_store), "--out", str(tmp_path / "o"),
                              "--format", "omop", "--layout", "duckbd"])
    assert res.exit_code == 2 and "--layout for omop must be csv or duckdb, got 'duckbd'" in flat(res)


def test_simulate_to_omop_then_import_and_analyze(tmp_path):
    res = runner.invoke(app, ["simulate", "-n", "300", "--seed", "2", "--out", str(tmp_path / "sim"), "--format", "omop",
                              "--no-truth"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "sim" / "omop" / "PERSON.csv").exists()
    res = runner.invoke(app, ["store", "import-omop", str(tmp_path / "sim" / "omop"), "--store", str(tmp_path / "s.duckdb"),
                              "--report", str(tmp_path / "report.json")], terminal_width=80)
    assert res.exit_code == 0, res.output
    assert "persons: 300 in the source" in flat(res) and "provenance: simulated data" in flat(res)
    assert (tmp_path / "report.json").exists()
    res = runner.invoke(app, ["analyze", "--store", str(tmp_path / "s.duckdb"), "--study", "ketamine-weight"])
    assert res.exit_code == 0, res.output
