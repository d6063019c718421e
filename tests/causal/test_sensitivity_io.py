"""E-values (VanderWeele & Ding 2017), the JSON results file and the analyze command."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from causal_synthetic import CONFOUNDED_SPEC, confounded_table
from ketaweight.causal import IPW, evalue_difference, evalue_rr
from ketaweight.pipelines.table_analysis import write_causal_results
from ketaweight.causal.runner import run_estimators
from ketaweight.cli import app
from ketaweight.core.results import read_results


def test_evalue_published_example():
    """VanderWeele & Ding (2017, Ann Intern Med), breastfeeding example: RR 3.9 → E-value 7.26,
    lower CI limit 1.8 → 3.0."""
    assert evalue_rr(3.9) == pytest.approx(7.26, abs=0.005)
    assert evalue_rr(1.8) == pytest.approx(3.0, abs=0.005)
    assert evalue_rr(1 / 3.9) == pytest.approx(evalue_rr(3.9))
    assert evalue_rr(1.0) == 1.0


def test_evalue_for_a_mean_difference():
    """d = 2/8 = 0.25 → RR = exp(0.2275); the CI limit nearer 0 is 1 (d = 0.125)."""
    out = evalue_difference(2.0, 1.0, 3.0, 8.0)
    rr = math.exp(0.91 * 0.25)
    assert out["rr"] == pytest.approx(rr)
    assert out["evalue_estimate"] == pytest.approx(rr + math.sqrt(rr * (rr - 1)))
    assert out["ci_limit_used"] == 1.0 and out["evalue_ci"] == pytest.approx(evalue_rr(math.exp(0.91 / 8)))
    assert "0.91" in out["approximation"]
    assert evalue_difference(-2.0, -3.0, 0.5, 8.0)["evalue_ci"] == 1.0  # CI covers the null


def test_nhefs_ipw_evalue(nhefs, nhefs_spec):
    """IPW 3.44 kg, SD(wt82_71) = 7.88 kg (n = 1566) → RR ≈ exp(0.91·0.4366) = 1.488 → E ≈ 2.34."""
    r = IPW().fit(nhefs, nhefs_spec())
    assert r.sensitivity["outcome_sd"] == pytest.approx(7.88, abs=0.01)
    assert r.sensitivity["evalue_estimate"] == pytest.approx(2.34, abs=0.01)
    assert 1 < r.sensitivity["evalue_ci"] < r.sensitivity["evalue_estimate"]


def test_results_file_round_trip_and_masking(tmp_path):
    table = confounded_table(300, effect=1.0, seed=4)
    table.loc[:6, "L1"] = float("nan")  # 7 rows excluded: a count that must be masked
    results = run_estimators(table, CONFOUNDED_SPEC)
    path = write_causal_results(tmp_path / "r.json", results, provenance={"seed": 0, "synthetic": True})
    doc = read_results(path, kind="causal")
    payload = doc["results"]
    assert doc["counts"] == "masked below 11"
    est = next(iter(payload["analyses"].values()))["estimates"]
    assert [e["method"] for e in est] == [r.method for r in results]
    step = next(s for s in est[0]["diagnostics"]["attrition"] if s["step"] == "missing covariates")
    # masked, and its neighbour's count suppressed so that n_before − n_after does not give it away
    assert step["n_excluded"] == "<11" and step["n_after"] == "suppressed" and step["n_before"] == 300
    assert est[2]["estimate"] == pytest.approx(results[2].estimate)
    exact = write_causal_results(tmp_path / "x.json", results, provenance={}, exact_counts=True)
    exact_payload = json.loads(exact.read_text())["results"]
    step = next(s for s in next(iter(exact_payload["analyses"].values()))["estimates"][0]["diagnostics"]["attrition"]
                if s["step"] == "missing covariates")
    assert step["n_excluded"] == 7


def test_analyze_command_writes_results(tmp_path):
    table = confounded_table(800, effect=-1.0, seed=6)
    csv = tmp_path / "t.csv"
    table.to_csv(csv, index=False)
    res = CliRunner().invoke(
        app,
        ["analyze", "--table", str(csv), "--treatment", "A", "--outcome", "Y", "--covariates", "L1,L2,L3",
         "--categorical", "L3", "--estimators", "crude,ipw,aipw", "--negative-control", "NC",
         "--out", str(tmp_path / "out")],
    )
    assert res.exit_code == 0, res.output
    assert "ipw" in res.output and "negative control" in res.output
    doc = read_results(tmp_path / "out" / "causal_results.json", kind="causal")
    analysis = doc["results"]["analyses"]["Y"]
    assert [e["method"] for e in analysis["estimates"]] == ["crude", "ipw", "aipw"]
    assert analysis["negative_controls"][0]["outcome"] == "NC"


def test_analyze_command_reports_bad_input(tmp_path):
    table = confounded_table(50, effect=0.0, seed=6)
    csv = tmp_path / "t.csv"
    table.to_csv(csv, index=False)
    res = CliRunner().invoke(app, ["analyze", "--table", str(csv), "--treatment", "A", "--outcome", "Y",
                                   "--covariates", "L1,missing_col"])
    assert res.exit_code == 2 and "missing_col" in res.output


def test_a_negative_control_that_cannot_be_estimated_says_so(nhefs, nhefs_spec):
    """main (D26): a NaN negative-control estimate was described as 'its CI excludes 0'."""
    from dataclasses import replace as with_fields

    from ketaweight.causal import IPW, negative_control

    real = IPW().fit(nhefs, nhefs_spec())

    class Undefined:  # an estimator whose fit on the control gives no finite CI (too few rows, no overlap)
        def fit(self, table, spec):
            return with_fields(real, outcome=spec.outcome, ci_low=float("nan"), ci_high=float("nan"))

    nc = negative_control(Undefined(), nhefs, nhefs_spec(), "wt82_71")
    assert nc.covers_null is None
    assert "could not be estimated" in nc.interpretation and "excludes" not in nc.interpretation
