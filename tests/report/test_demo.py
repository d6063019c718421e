"""`ketaweight demo` end to end on a small null world: every step runs and the answer is 'no effect'."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from ketaweight.cli import app
from .test_results_files import check_results_file


def test_demo_null_world_end_to_end(tmp_path):
    out = tmp_path / "demo"
    res = CliRunner().invoke(app, ["demo", "--out", str(out), "--scenario", "null", "-n", "2000",
                                   "--faers-reports", "10000"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    for step in ("1/8", "2/8", "3/8", "4/8", "5/8", "6/8", "7/8", "8/8"):
        assert step in text
    assert "Report: " in text and (out / "report.html").exists()  # rich may fold the long path
    doc = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert doc["answer"]["conclusion"] == "no detectable effect"
    assert f"Answer: {doc['answer']['sentence']}" in text
    # every results file the demo writes validates against its schema and round-trips through from_dict
    kinds = sorted(check_results_file(p) for p in [*(out / "results").glob("*.json"), out / "truth.json"])
    assert kinds == ["causal", "causal", "mechanisms", "network", "responsible_use", "signals", "signals", "simulation_truth"]
    assert (out / "network" / "site-3.zip").exists() and "Calibrated network estimate" in text
    assert "Not yet analysed" not in (out / "report.md").read_text(encoding="utf-8")
