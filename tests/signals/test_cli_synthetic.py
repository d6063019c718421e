"""The signals CLI end to end, and the synthetic FAERS generator's known truth."""

from __future__ import annotations

import duckdb
import pytest
from typer.testing import CliRunner

from ketaweight.cli import app
from ketaweight.core.results import read_results
from ketaweight.signals.faers import ingest_faers
from ketaweight.signals.synthetic import SyntheticQuarter, synthetic_pair_table, write_synthetic_quarter

runner = CliRunner()


def _text(r) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(r.output.split())


def test_cli_ingest_and_scan(tmp_path, q1_zip, q2_zip):
    store = tmp_path / "s.duckdb"
    r = runner.invoke(app, ["signals", "ingest", str(q1_zip), str(q2_zip), "--store", str(store),
                            "--json", str(tmp_path / "ingest.json")])
    assert r.exit_code == 0, r.output
    assert "7 unique reports" in _text(r)
    assert read_results(tmp_path / "ingest.json", kind="faers_ingest")["results"]["reports"] == 7
    r = runner.invoke(app, ["signals", "scan", "--store", str(store), "--drug", "ketamine,esketamine",
                            "--events", "weight-loss", "--prior", "3.2538,0.3999,2.0261,1.9081,0.0653",
                            "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    doc = read_results(tmp_path / "out" / "signals.json", kind="signals")
    assert [p["drug"] for p in doc["results"]["pairs"][:2]] == ["ketamine", "esketamine"]
    assert doc["results"]["pairs"][0]["a"] == "<11"


def test_cli_scan_table_and_errors(tmp_path, statin49):
    p = tmp_path / "statin49.csv"
    statin49.to_csv(p)
    r = runner.invoke(app, ["signals", "scan", "--table", str(p), "--drug", "atorvastatin", "--events",
                            "rhabdomyolysis", "--no-controls"])
    assert r.exit_code == 0, r.output
    assert "19.24" in _text(r) and "2,041" in _text(r)
    r = runner.invoke(app, ["signals", "scan", "--drug", "ketamine"])
    assert r.exit_code == 2 and "exactly one of --store, --table or --long" in _text(r)
    r = runner.invoke(app, ["signals", "ingest", str(tmp_path / "missing.zip"), "--store", str(tmp_path / "x.duckdb")])
    assert r.exit_code == 2 and "no such file" in _text(r)


def test_synthetic_quarter_truth(tmp_path):
    path, truth = write_synthetic_quarter(tmp_path, SyntheticQuarter(n_reports=3000, seed=5))
    assert path.name == "faers_ascii_2023q1.zip"
    rep = ingest_faers([path], tmp_path / "s.duckdb")
    assert rep.reports == truth["expected_reports_after_dedup"]
    files = {f.table: f for f in rep.files}
    assert files["DRUG"].dollar_repairs == 1 and files["DRUG"].encoding_repairs == 1
    assert files["DRUG"].quarantined == 2
    assert files["REAC"].lines_joined == 1 and files["REAC"].records_split == 1
    con = duckdb.connect(str(tmp_path / "s.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM faers_demo").fetchall()[0][0] == truth["demo_rows"]
    con.close()


def test_synthetic_signals_detected_and_nulls_not(tmp_path):
    from ketaweight.signals import mapping
    from ketaweight.signals.faers_counts import counts_from_store
    from ketaweight.signals.scan import scan

    path, _ = write_synthetic_quarter(tmp_path, SyntheticQuarter(n_reports=40_000, seed=11, defects=False))
    ingest_faers([path], tmp_path / "s.duckdb")
    groups = mapping.load_term_groups()
    t = counts_from_store(tmp_path / "s.duckdb", drug_map=mapping.load_drug_map(), groups=groups)
    res = scan(t, drugs=["ketamine"], events=["weight-loss"], groups=groups, controls=mapping.load_controls())
    rows = res.rows.set_index(["drug", "event"])
    for pair in [("mirtazapine", "weight-gain"), ("topiramate", "weight-loss")]:
        assert rows.loc[pair, "prr_signal"] and rows.loc[pair, "ic_signal"], pair
    for pair in [("amoxicillin", "weight-gain"), ("ketamine", "weight-loss")]:  # planted nulls
        assert rows.loc[pair, "ror_ci_low"] < 1.5 and not rows.loc[pair, "prr_signal"], pair


def test_synthetic_pair_table_size():
    df = synthetic_pair_table(n_drugs=200, n_events=300, n_reports=2e5, seed=2)
    assert set(df.columns) == {"drug", "event", "count"} and (df["count"] > 0).all()
    assert 5_000 < len(df) < 60_000


@pytest.mark.parametrize("cmd", [["signals", "--help"], ["signals", "scan", "--help"], ["signals", "ingest", "--help"],
                                 ["signals", "synth", "--help"]])
def test_help(cmd):
    r = runner.invoke(app, cmd)
    assert r.exit_code == 0 and "Usage" in _text(r)


def test_cli_scan_long_table(tmp_path):
    rows = ["report_id,drug,event,stratum"]
    rng = __import__("numpy").random.default_rng(4)
    for r in range(400):
        d = ["ketamine", "sertraline", "mirtazapine", "drug_x"][r % 4]
        ev = ["Weight decreased", "Nausea", "Weight increased", "Headache", "Rash"][rng.integers(0, 5)]
        rows.append(f"r{r},{d},{ev},{'F' if r % 3 else 'M'}")
    p = tmp_path / "long.csv"
    p.write_text("\n".join(rows) + "\n")
    r = runner.invoke(app, ["signals", "scan", "--long", str(p), "--drug", "ketamine", "--events", "weight-loss",
                            "--prior", "3.2538,0.3999,2.0261,1.9081,0.0653", "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    doc = read_results(tmp_path / "o" / "signals.json", kind="signals")
    assert doc["results"]["data"]["stratified_by"] == "stratum"
    assert doc["results"]["pairs"][0]["measures"][3]["method"] == "EBGM"


def test_cli_status_shows_quarantine(fixture_store):
    r = runner.invoke(app, ["signals", "status", "--store", str(fixture_store)])
    assert r.exit_code == 0, r.output
    text = _text(r)
    assert "role_cod" in text and "empty preferred" in text and "DRUG23Q1.txt" in text
    r = runner.invoke(app, ["signals", "status", "--store", str(fixture_store.parent / "none.duckdb")])
    assert r.exit_code == 2 and "no such store" in _text(r)
