"""The network commands as a user runs them: site bundles, synthesis, clear errors; simulate --sites."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from ketaweight.cli import app
from ketaweight.core.results import read_results

runner = CliRunner()


def text(res) -> str:
    """The output with line wrapping undone."""
    return " ".join(res.output.split())


def test_site_then_synthesize(network, tmp_path):
    bundles = []
    for i, store in enumerate(network["stores"][:2]):
        out = tmp_path / f"s{i}.zip"
        res = runner.invoke(app, ["network", "site", "--study", "ketamine-weight", "--store", str(store),
                                  "--site", f"clinic-{i}", "--out", str(out)])
        assert res.exit_code == 0, res.output
        assert "bundle:" in text(res) and "30 negative controls, 90 positive controls" in text(res)
        bundles.append(str(out))
    res = runner.invoke(app, ["network", "synthesize", *bundles, "--out", str(tmp_path / "net")])
    assert res.exit_code == 0, res.output
    assert "Calibrated network estimate" in text(res) and "clinic-1" in text(res)
    doc = read_results(tmp_path / "net" / "network.json", kind="network")
    assert [s["site"] for s in doc["results"]["sites"]] == ["clinic-0", "clinic-1"]


def test_errors_say_what_and_where(network, tmp_path):
    res = runner.invoke(app, ["network", "site", "--study", "ketamine-weight", "--store", str(tmp_path / "none.duckdb"),
                              "--site", "A", "--out", str(tmp_path / "a.zip")])
    assert res.exit_code == 2 and "store not found" in text(res) and not (tmp_path / "a.zip").exists()
    assert "emulating" not in text(res)  # main: the progress line came before "store not found"
    res = runner.invoke(app, ["network", "site", "--study", "ketamine-wieght", "--store", str(network["stores"][0]),
                              "--site", "A", "--out", str(tmp_path / "a.zip")])
    assert res.exit_code == 2 and "study file not found" in text(res)
    res = runner.invoke(app, ["network", "site", "--study", "ketamine-weight", "--store", str(network["stores"][0]),
                              "--site", "a/b", "--out", str(tmp_path / "a.zip")])
    assert res.exit_code == 2 and "site name" in text(res)
    (tmp_path / "fake.zip").write_bytes(b"PK not really")
    res = runner.invoke(app, ["network", "synthesize", str(tmp_path / "fake.zip"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "not a zip file" in text(res) and not (tmp_path / "o").exists()


def test_simulate_sites_writes_every_store_and_the_network_truth(tmp_path):
    res = runner.invoke(app, ["simulate", "--sites", "2", "--patients", "300", "--seed", "4", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "site-1" / "store.duckdb").exists() and (tmp_path / "site-2" / "truth.json").exists()
    truth = json.loads((tmp_path / "network_truth.json").read_text())["results"]
    assert [s["unmeasured_confounder"] for s in truth["sites"]] == [False, True]
    assert "network truth" in text(res) and "unmeasured confounder" in text(res)
    again = runner.invoke(app, ["simulate", "--sites", "2", "--patients", "300", "--out", str(tmp_path)])
    assert again.exit_code == 2 and "pass --replace" in text(again)
    replaced = runner.invoke(app, ["simulate", "--sites", "2", "--patients", "300", "--out", str(tmp_path), "--replace"])
    assert replaced.exit_code == 0, replaced.output
