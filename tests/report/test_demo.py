"""`ketaweight demo` end to end on a small null world: every step runs and the answer is 'no effect'."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from ketaweight.cli import app


def test_demo_null_world_end_to_end(tmp_path):
    out = tmp_path / "demo"
    res = CliRunner().invoke(app, ["demo", "--out", str(out), "--scenario", "null", "-n", "2000",
                                   "--faers-reports", "10000"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    for step in ("1/7", "2/7", "3/7", "4/7", "5/7", "6/7", "7/7"):
        assert step in text
    assert "Report: " in text and (out / "report.html").exists()  # rich may fold the long path
    doc = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert doc["answer"]["conclusion"] == "no detectable effect"
    assert f"Answer: {doc['answer']['sentence']}" in text
    kinds = sorted(json.loads(p.read_text(encoding="utf-8"))["kind"] for p in (out / "results").glob("*.json"))
    assert kinds == ["causal", "causal", "mechanisms", "responsible_use", "signals", "signals"]
    assert "Not yet analysed" not in (out / "report.md").read_text(encoding="utf-8")
