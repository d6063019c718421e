"""The command line: every command documented; simulate writes reproducible files."""


from typer.main import get_command
from typer.testing import CliRunner

from ketaweight.cli import app
from ketaweight.core.results import read_results, strip_volatile

runner = CliRunner()


def _all_commands(group, prefix=()):
    for name, cmd in group.commands.items():
        yield prefix + (name,), cmd
        if hasattr(cmd, "commands"):
            yield from _all_commands(cmd, prefix + (name,))


def test_every_command_and_option_has_help():
    root = get_command(app)
    missing = []
    for path, cmd in _all_commands(root):
        if not (cmd.help or "").strip():
            missing.append(" ".join(path))
        for param in cmd.params:
            if getattr(param, "help", None) is None and param.param_type_name == "option":
                missing.append(f"{' '.join(path)} {param.opts[0]}")
    assert not missing, f"undocumented: {missing}"


def test_simulate_same_seed_gives_identical_files(tmp_path):
    outs = []
    for i in range(2):
        out = tmp_path / f"run{i}"
        res = runner.invoke(app, ["simulate", "--scenario", "null", "--patients", "400", "--seed", "9",
                                  "--out", str(out), "--format", "csv"])
        assert res.exit_code == 0, res.output
        outs.append(out)
    for name in ("patients", "exposures", "measurements", "lifestyle", "adverse_events"):
        assert (outs[0] / "csv" / f"{name}.csv").read_bytes() == (outs[1] / "csv" / f"{name}.csv").read_bytes()
    a, b = (strip_volatile(read_results(o / "truth.json", kind="simulation_truth")) for o in outs)
    assert a == b and a["results"]["weight_change_kg"]["ate"] == 0.0
    assert (outs[0] / "patient_truth.parquet").exists()
    assert "Ground truth" in res.output


def test_simulate_refuses_to_overwrite_a_store(tmp_path):
    args = ["simulate", "--patients", "100", "--out", str(tmp_path)]
    assert runner.invoke(app, args).exit_code == 0
    before = sorted(p.name for p in tmp_path.iterdir())
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "earlier ketaweight output" in res.output and "--replace" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing changed
    again = runner.invoke(app, [*args, "--replace"])
    assert again.exit_code == 0, again.output


def test_simulate_unknown_scenario_is_a_clear_error(tmp_path):
    res = runner.invoke(app, ["simulate", "--scenario", "nope", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "unknown scenario" in res.output


def test_store_load_reports_errors_with_location(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "patients.csv").write_text("patient_id,sex,birth_year,height_cm\nA,X,1980,170\n")
    res = runner.invoke(app, ["store", "load", str(tmp_path / "in"), "--store", str(tmp_path / "s.duckdb")])
    assert res.exit_code == 2
    assert "patients.csv, line 2, column 'sex': unknown value X" in res.output.replace("\n", "")


def test_store_summary_masks_small_counts(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "patients.csv").write_text("patient_id,sex,birth_year,height_cm\nA,F,1980,170\nB,M,1970,180\n")
    runner.invoke(app, ["store", "load", str(tmp_path / "in"), "--store", str(tmp_path / "s.duckdb")])
    res = runner.invoke(app, ["store", "summary", "--store", str(tmp_path / "s.duckdb")])
    assert res.exit_code == 0 and "<11" in res.output
    assert "A" not in [w.strip("│ ") for w in res.output.split()]  # no identifiers


def test_analyze_store_and_study(tmp_path):
    assert runner.invoke(app, ["simulate", "--patients", "600", "--seed", "3", "--out", str(tmp_path / "sim")]).exit_code == 0
    res = runner.invoke(app, ["analyze", "--store", str(tmp_path / "sim" / "store.duckdb"), "--study", "ketamine-weight",
                              "--out", str(tmp_path / "results")])
    assert res.exit_code == 0, res.output
    doc = read_results(tmp_path / "results" / "ketamine-weight.json", kind="causal")
    assert doc["provenance"]["synthetic"] is True  # the simulator's truth.json sits beside the store
    methods = [e["method"] for e in doc["results"]["analyses"]["outcome_change"]["estimates"]]
    assert methods == ["crude", "standardization", "ipw", "aipw", "g-estimation"]
    assert "baseline weight" in res.output and "SIM0" not in res.output


def test_analyze_needs_one_form(tmp_path):
    res = runner.invoke(app, ["analyze", "--store", str(tmp_path / "x.duckdb")])
    assert res.exit_code == 2 and "give either --store and --study" in res.output
