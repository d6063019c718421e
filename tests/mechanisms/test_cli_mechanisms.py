"""``ketaweight mechanisms``: end to end on a simulated store; the results file and study sections."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ketaweight.cli import app
from ketaweight.core.results import read_results, strip_volatile
from ketaweight.study.spec import Study

runner = CliRunner()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    res = runner.invoke(app, ["simulate", "--scenario", "article", "--patients", "3000", "--seed", "5", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out / "store.duckdb"


def test_mechanisms_writes_one_reproducible_results_file(store, tmp_path):
    docs = []
    for run in ("a", "b"):
        res = runner.invoke(app, ["mechanisms", "--store", str(store), "--out", str(tmp_path / run), "--bootstrap", "60"])
        assert res.exit_code == 0, res.output
        docs.append(read_results(tmp_path / run / "ketamine-weight-mechanisms.json", kind="mechanisms"))
    assert strip_volatile(docs[0]) == strip_volatile(docs[1])  # same data, spec and seed → same file
    r = docs[0]["results"]
    assert docs[0]["counts"] == "masked below 11" and r["outcome_units"] == "kg"
    med = r["mediation"]
    assert set(med["pathways"]) == {"mood", "appetite", "metabolism"} and len(med["assumptions"]) >= 8
    restriction = next(s for s in med["diagnostics"]["attrition"] if s["step"] == "restriction")
    assert restriction["n_excluded"] > 0  # weight programmes and holiday baseline weeks are left out
    for effect in (med["total"], med["direct"], *med["pathways"].values()):
        assert effect["ci_low"] <= effect["estimate"] <= effect["ci_high"] and "bootstrap, 60 replicates" in effect["variance"]
    exposures = {(c["exposure"], c["method"], c["settings"]["spec"]["by"]) for c in r["dose_response"]}
    assert ("sessions_to_horizon", "msm", None) in exposures and ("cumulative_mg_per_kg", "g-formula", "first_route") in exposures
    point = r["dose_response"][0]["curve"][0]
    assert set(point) == {"exposure", "estimate", "se", "ci_low", "ci_high", "by"}
    het = r["heterogeneity"]
    assert [s["modifier"] for s in het["subgroups"]] == ["female", "bmi_class", "severity"]
    assert all(0 <= s["p_value"] <= s["p_holm"] <= 1 for s in het["subgroups"])
    assert 0 <= het["individual"]["distribution"]["share_predicted_below_threshold"] <= 1
    assert docs[0]["provenance"]["synthetic"] is True
    # no identifiers in the file
    assert "SIM0" not in json.dumps(docs[0])


def test_mechanisms_study_sections_have_defaults_and_validate_names():
    base = {"study": {"name": "x", "title": "t"}, "covariates": {"baseline": ["age"]}}
    s = Study.model_validate(base)
    assert list(s.mechanisms.mediation.pathways) == ["mood", "appetite", "metabolism"]
    assert s.mechanisms.heterogeneity.modifiers == ("female", "bmi_class", "severity")
    with pytest.raises(ValueError, match="mechanisms: unknown column 'nope'"):
        Study.model_validate({**base, "mechanisms": {"dose_response": {"exposures": ["nope"]}}})
    assert s.mechanisms.mediation.outcome_model == "auto"
    assert set(s.mechanisms.mediation.energy_balance) <= {c for cols in s.mechanisms.mediation.pathways.values() for c in cols}
    with pytest.raises(ValueError, match="energy_balance names 'intake_change', which is not a mediator"):
        Study.model_validate({**base, "mechanisms": {"mediation": {"energy_balance": {"intake_change": 0.76}}}})
    with pytest.raises(ValueError, match="outcome_model"):
        Study.model_validate({**base, "mechanisms": {"mediation": {"outcome_model": "tied"}}})


def test_missing_store_is_a_clear_error(tmp_path):
    res = runner.invoke(app, ["mechanisms", "--store", str(tmp_path / "none.duckdb"), "--out", str(tmp_path)])
    assert res.exit_code == 2 and "error" in res.output


def test_mediation_not_estimable_is_recorded_not_fatal(store, tmp_path):
    """ketamine-depression: the outcome is MADRS, which is also the mood pathway's mediator; the
    other analyses still run and the file says why mediation was skipped."""
    res = runner.invoke(app, ["mechanisms", "--store", str(store), "--study", "ketamine-depression",
                              "--out", str(tmp_path), "--bootstrap", "50"])
    assert res.exit_code == 0, res.output
    r = read_results(tmp_path / "ketamine-depression-mechanisms.json", kind="mechanisms")["results"]
    assert r["mediation"] is None and "outcome measure itself" in r["not_estimable"]["mediation"]
    assert r["outcome_units"] == "score" and r["dose_response"] and r["heterogeneity"]["subgroups"]
