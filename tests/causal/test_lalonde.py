"""LaLonde (1986) through the CLI: NSW treated men vs CPS controls (Dehejia & Wahba 1999), from PyPI
``causaldata`` (``nsw_mixtape`` treated rows + ``cps_mixtape``).  The NSW experiment's ATT on 1978
earnings is 1794 USD (treated − experimental controls, ``nsw_mixtape``); observational analyses with
CPS controls must get there through severe non-overlap (16,177 rows, 185 treated)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from ketaweight.cli import app

EXPERIMENTAL_ATT = 1794.34
COVARIATES = "age,educ,black,hisp,marr,nodegree,re74,re75,u74,u75"
SQUARED = "age,educ,re74,re75"


@pytest.fixture(scope="module")
def lalonde_csv(tmp_path_factory):
    from causaldata import cps_mixtape, nsw_mixtape

    nsw = nsw_mixtape.load_pandas().data
    exp = nsw.groupby("treat")["re78"].mean()
    assert exp[1] - exp[0] == pytest.approx(EXPERIMENTAL_ATT, abs=0.01)  # the benchmark, from the experiment
    table = pd.concat([nsw[nsw["treat"] == 1], cps_mixtape.load_pandas().data]).drop(columns=["data_id"])
    table["u74"] = (table["re74"] == 0).astype(int)
    table["u75"] = (table["re75"] == 0).astype(int)
    path = tmp_path_factory.mktemp("lalonde") / "lalonde.csv"
    table.to_csv(path, index=False)
    return path


def _run(csv, out, *options):
    res = CliRunner().invoke(app, ["analyze", "--table", str(csv), "--treatment", "treat", "--outcome", "re78",
                                   "--covariates", COVARIATES, "--squared", SQUARED, "--estimand", "ATT",
                                   "--estimators", "ipw,aipw", "--out", str(out), *options])
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "causal_results.json").read_text(encoding="utf-8"))
    return {e["method"]: e for e in doc["results"]["analyses"]["re78"]["estimates"]}, res.output


def test_recommended_analysis_trims_by_crumps_rule_and_covers_the_experiment(lalonde_csv, tmp_path):
    est, output = _run(lalonde_csv, tmp_path / "crump", "--trim", "crump")
    for method in ("ipw", "aipw"):
        r = est[method]
        assert r["ci_low"] <= EXPERIMENTAL_ATT <= r["ci_high"], (method, r["estimate"], r["ci_low"], r["ci_high"])
        t = r["diagnostics"]["trimming"]
        assert t["rule"] == "crump" and 0.05 < t["alpha"] < 0.1 and t["n_excluded"] > 15_000
        arms = r["diagnostics"]["weights"]["by_arm"]
        assert arms["treated"]["ess"] > 100 and arms["control"]["ess"] > 50  # per-arm ESS, written to the file
    assert "population trimmed" in " ".join(output.split())


def test_common_support_trimming_also_covers_the_experiment(lalonde_csv, tmp_path):
    est, _ = _run(lalonde_csv, tmp_path / "cs", "--trim", "common-support")
    assert est["aipw"]["ci_low"] <= EXPERIMENTAL_ATT <= est["aipw"]["ci_high"]
    assert est["aipw"]["diagnostics"]["trimming"]["control"]["n_excluded"] > 10_000


def test_arm_specific_truncation_reports_the_weight_it_removed(lalonde_csv, tmp_path):
    """ATT weights are 1 for the treated, so only the controls are capped; here the controls' weight sits
    in the few rows that resemble the treated, so capping at their 99th percentile removes most of it —
    reported in the file and warned about, never silent."""
    est, output = _run(lalonde_csv, tmp_path / "trunc", "--truncate-by-arm", "99")
    t = est["ipw"]["diagnostics"]["truncation"]
    assert t["kind"] == "by arm" and set(t["arms"]) == {"control"}
    assert t["arms"]["control"]["share_of_weight_removed"] > 0.5
    assert "of the control arm's weight" in " ".join(output.split())
    assert "trim to the common support instead" in " ".join(output.split())


def test_propensity_recalibration_through_the_cli_is_stated_in_the_results(lalonde_csv, tmp_path):
    est, output = _run(lalonde_csv, tmp_path / "recal", "--trim", "crump", "--propensity-calibration", "logistic")
    calibration = est["aipw"]["diagnostics"]["learners"]["propensity_calibration"]
    assert 0.5 < calibration["slope"] < 2.0
    assert "learners" not in est["ipw"]["diagnostics"]  # only the doubly robust estimators recalibrate
    assert "propensity recalibration slope" in " ".join(output.split())
    bad = CliRunner().invoke(app, ["analyze", "--table", str(lalonde_csv), "--treatment", "treat", "--outcome", "re78",
                                   "--covariates", COVARIATES, "--propensity-calibration", "isotonic"])
    assert bad.exit_code == 2 and "isotonic" in bad.output
