"""Empty, tiny and malformed inputs give errors that name the problem (STYLE.md §9)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ketaweight.causal import AnalysisSpec
from ketaweight.mechanisms.dose_response import DoseResponse, DoseResponseSpec
from ketaweight.mechanisms.effects import holm
from ketaweight.mechanisms.heterogeneity import compare_to_truth, modifier_effects
from ketaweight.mechanisms.mediation import Mediation, MediationSpec, Pathway
from ketaweight.core.errors import InputError


def small(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": np.arange(n) % 2, "l": rng.normal(size=n), "d": rng.normal(size=n),
                         "m": rng.normal(size=n), "y": rng.normal(size=n), "v": ["x"] * n})


def test_dose_response_needs_ten_rows():
    spec = DoseResponseSpec(exposure="d", outcome="y", covariates=("l",))
    with pytest.raises(InputError, match="only 5 analysable rows"):
        DoseResponse().fit(small(5), spec)
    with pytest.raises(InputError, match="column not found"):
        DoseResponse().fit(small(50).drop(columns="d"), spec)
    with pytest.raises(ValueError, match="degree"):
        DoseResponseSpec(exposure="d", outcome="y", covariates=(), degree=5)


def test_modifier_needs_two_levels_with_both_arms():
    spec = AnalysisSpec(treatment="a", outcome="y", covariates=("l",))
    with pytest.raises(InputError, match="at least 2 levels"):
        modifier_effects(small(40), spec, "v")
    t = small(40)
    t.loc[t["a"] == 1, "v"] = "only-treated"
    with pytest.raises(InputError, match="lack treated or untreated"):
        modifier_effects(t, spec, "v")


def test_mediation_needs_complete_rows_in_both_arms():
    spec = MediationSpec(treatment="a", outcome="y", covariates=("l",), pathways=(Pathway("p", ("m",)),))
    with pytest.raises(InputError, match="at least 20 rows"):
        Mediation(n_bootstrap=2).fit(small(10), spec)


def test_holm_hand_computed():
    """p = (0.01, 0.04, 0.03): sorted 0.01·3 = 0.03, 0.03·2 = 0.06, max(0.06, 0.04·1) = 0.06."""
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_compare_to_truth_perfect_and_constant():
    x = np.linspace(-1, 1, 11)
    r = compare_to_truth(x, 2 * x)
    assert r["correlation"] == pytest.approx(1.0) and r["calibration_slope"] == pytest.approx(2.0)
    assert np.isnan(compare_to_truth(x, np.zeros(11))["correlation"])


def test_mediation_restriction_is_counted_and_cannot_double_as_covariate():
    t = small(200).assign(prog=(np.arange(200) % 5 == 0).astype(int))
    spec = MediationSpec(treatment="a", outcome="y", covariates=("l",), pathways=(Pathway("p", ("m",)),), exclude_if=("prog",))
    r = Mediation(n_bootstrap=20).fit(t, spec)
    step = next(s for s in r.diagnostics["attrition"] if s["step"] == "restriction")
    assert (step["n_before"], step["n_excluded"], step["n_after"]) == (200, 40, 160) and r.total.n == 160
    with pytest.raises(ValueError, match="exclude_if"):
        MediationSpec(treatment="a", outcome="y", covariates=("l", "prog"), pathways=(Pathway("p", ("m",)),), exclude_if=("prog",))


def test_pathways_without_records_are_left_out_with_a_reason():
    from ketaweight.pipelines.mechanisms import mediation_spec, unrecorded_pathways
    from ketaweight.study.spec import load_study

    study = load_study("ketamine-weight")
    cols = {c: np.linspace(-1, 1, 40) for cols in study.mechanisms.mediation.pathways.values() for c in cols}
    table = pd.DataFrame(cols)
    table["expenditure_net_7d_change"] = np.nan  # no wearable expenditure at all
    reasons = unrecorded_pathways(study, table)
    assert list(reasons) == ["mediation pathway metabolism"] and "expenditure_net_7d_change" in reasons["mediation pathway metabolism"]
    assert [p.name for p in mediation_spec(study, table).pathways] == ["mood", "appetite"]
    with pytest.raises(InputError, match="no pathway has every mediator recorded"):
        mediation_spec(study, table.assign(madrs_change=np.nan, intake_7d_change=np.nan))


def test_course_intensity_leaves_the_outcome_model_only_when_a_substudy_calibrates_every_consumer_mediator():
    """``intermediate_in_outcome = "auto"`` and ``outcome_model = "auto"`` (the defaults): course intensity in the
    outcome model and a free coefficient per mediator without a substudy (and with a substudy that misses one
    consumer-grade mediator); course intensity out and the energy-balance outcome model when every one is
    calibrated; explicit settings are kept.  Without a substudy appetite and metabolism (consumer records only) are
    named unattributable; mood (the clinic's MADRS besides the wearable's activity) is not."""
    from ketaweight.pipelines.mechanisms import mediation_spec, unattributable_pathways
    from ketaweight.study.spec import load_study

    study = load_study("ketamine-weight")
    m = study.mechanisms.mediation
    assert m.intermediate_in_outcome == "auto"
    rng = np.random.default_rng(0)
    n = 200
    cols = {c: rng.normal(size=n) for c in {*(c for cols in m.pathways.values() for c in cols), *m.intermediate,
                                             *study.covariates.baseline}}
    table = pd.DataFrame(cols)
    assert m.outcome_model == "auto"
    assert mediation_spec(study, table).intermediate_in_outcome is True
    assert mediation_spec(study, table).energy_balance == {}
    assert mediation_spec(study.with_mediation(outcome_model="energy-balance"), table).energy_balance == m.energy_balance
    assert set(unattributable_pathways(study, table)) == {"attribution of pathway appetite",
                                                          "attribution of pathway metabolism"}
    sub = rng.random(n) < 0.3
    for ref in m.validation.values():
        table[ref] = np.where(sub, rng.normal(size=n), np.nan)
    assert mediation_spec(study, table).intermediate_in_outcome is False
    assert mediation_spec(study, table).energy_balance == {"intake_7d_change": 0.76, "expenditure_net_7d_change": -1.0,
                                                           "activity_energy_7d_change": -1.0}
    assert unattributable_pathways(study, table) == {}
    assert mediation_spec(study.with_mediation(intermediate_in_outcome=True), table).intermediate_in_outcome is True
    assert mediation_spec(study.with_mediation(outcome_model="free"), table).energy_balance == {}
    partial = table.assign(activity_energy_7d_ref_change=np.nan)
    assert mediation_spec(study, partial).intermediate_in_outcome is True
    assert mediation_spec(study, partial).energy_balance == {}
