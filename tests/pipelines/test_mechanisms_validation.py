"""Mechanism analyses against the simulator's truth, one cohort of 20,000 per scenario (seed 11).

Truths are the means over the mediation's patients from ``patient_truth`` (see
:mod:`ketaweight.pipelines.mechanisms_validation`); coverage over replicate cohorts is in
docs/mechanisms.md (``ketaweight validate mechanisms``).

Two measurement designs (``ketaweight.sources.simulator.MEASUREMENTS``):

* ``research`` — weekly intake, activity and expenditure for everyone, without error: the
  mediators measure their pathways, so each pathway's estimate must sit on its truth (analysed
  with course intensity in the mediator models only, as error-free mediators allow);
* ``clinic`` — consumer wearables for 60% of patients, with logging noise and device bias: the
  appetite and metabolic signals (tens of kcal/day) drown in measurement error, so attribution
  fails and the effect lands in the direct remainder (the shipped study's conservative setting,
  course intensity in the outcome model too, keeps it from being credited to mood).  A test pins
  that documented limitation.

Tolerance: |estimate − truth| < 3 bootstrap SE (a 0.3% false-alarm rate per check; a 95% CI
would miss one of the 20 checks by chance) — coverage itself is measured by the validation run.
"""

from __future__ import annotations

import warnings

import pytest

from ketaweight.pipelines.mechanisms_validation import (dose_check, individual_check, mediation_check, scenario_cohort,
                                                        validate_mechanisms)
from ketaweight.core.errors import KetaweightWarning
from ketaweight.pipelines.emulation import analysis_spec
from ketaweight.study.spec import load_study

STUDY = load_study("ketamine-weight")
ERROR_FREE = STUDY.with_mediation(intermediate_in_outcome=False)
"""The analysis matching error-free mediators: course intensity acts on weight only through them."""
ACTIVE = {"null": None, "appetite": "appetite", "metabolic": "metabolism", "mood-activity": "mood"}


def _cohort(scenario: str, measurement: str, study):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KetaweightWarning)
        table, truth = scenario_cohort(scenario, study, 20_000, 11, measurement)
        return table, truth, mediation_check(table, truth, study, n_bootstrap=100, seed=1)


@pytest.fixture(scope="module")
def research():
    return {scenario: _cohort(scenario, "research", ERROR_FREE) for scenario in ACTIVE}


@pytest.fixture(scope="module")
def clinic():
    """The shipped study as is: course intensity also in the outcome model (conservative)."""
    return {scenario: _cohort(scenario, "clinic", STUDY) for scenario in ("null", "appetite", "mood-activity")}


def _se(lo: float, hi: float) -> float:
    return (hi - lo) / (2 * 1.96)


@pytest.mark.parametrize("scenario", list(ACTIVE))
def test_research_measurement_every_effect_on_its_truth(research, scenario):
    """Total, direct remainder and each pathway within 3 SE of the truth."""
    for name, (est, lo, hi, truth) in research[scenario][2].items():
        assert abs(est - truth) < 3 * _se(lo, hi) + 1e-3, (name, est, lo, hi, truth)


@pytest.mark.parametrize("scenario", ["appetite", "metabolic", "mood-activity"])
def test_research_measurement_the_active_pathway_carries_the_effect(research, scenario):
    """The scenario's pathway carries ≥ 75% of the total; every other pathway and the direct
    remainder are within 0.05 kg of 0 (the truth is exactly 0 for them)."""
    m = research[scenario][2]
    active = ACTIVE[scenario]
    assert m[active][0] / m["total"][0] >= 0.75
    for name in ("direct", *(p for p in ("appetite", "metabolism", "mood") if p != active)):
        assert m[name][3] == 0.0 and abs(m[name][0]) < 0.05, name


def test_research_measurement_null_everything_near_zero(research):
    for name, (est, _lo, _hi, truth) in research["null"][2].items():
        assert truth == 0.0 and abs(est) < 0.03, name


def test_clinic_measurement_misses_appetite(clinic):
    """Documented limitation: with consumer-grade records the appetite pathway captures < 20% of
    its truth and the direct remainder's CI excludes 0 although its truth is 0.  The total stays
    right (within 3 SE)."""
    m = clinic["appetite"][2]
    assert abs(m["appetite"][0]) < 0.2 * abs(m["appetite"][3])
    assert m["direct"][3] == 0.0 and m["direct"][2] < 0.0
    est, lo, hi, truth = m["total"]
    assert abs(est - truth) < 3 * _se(lo, hi)


def test_clinic_measurement_does_not_credit_mood_with_appetite(clinic):
    """Course intensity in the outcome model: the appetite effect that noisy intake logs miss is not
    passed to mood (whose truth is 0) beyond 0.06 kg (computed −0.023; −0.034 on average over 20 cohorts,
    against −0.085 with course intensity in the mediator models only)."""
    est, _lo, _hi, truth = clinic["appetite"][2]["mood"]
    assert truth == 0.0 and abs(est) < 0.06


def test_clinic_measurement_null_every_effect_near_zero(clinic):
    """No drug effect on weight: with noisy records every effect is still within 0.05 kg of 0."""
    for name, (est, _lo, _hi, truth) in clinic["null"][2].items():
        assert truth == 0.0 and abs(est) < 0.05, name


def test_dose_response_tracks_true_curve(clinic):
    """MSM (quadratic) on sessions vs E[Y(course) | sessions]: slopes within 0.02 kg per session
    (computed: −0.081 vs −0.079), the band covers the true curve at ≥ 50% of the 14 session
    counts (computed 57%) and no point is off by more than 0.4 kg (computed 0.36 kg, at 14
    sessions, where the true curve turns up: in this simulator every 14-session course is oral,
    bioavailability 0.17, so less drug per session — sessions are not a pure dose, and a
    quadratic in sessions cannot follow the route mix; 10–13 sessions are mostly esketamine)."""
    table, truth, _ = clinic["appetite"]
    d = dose_check(table, truth, STUDY)
    assert d["true_slope"] < -0.05
    assert d["estimated_slope"] == pytest.approx(d["true_slope"], abs=0.02)
    assert d["share_covered"] >= 0.5 and d["max_abs_error"] < 0.4


def test_individual_effects_against_truth(clinic):
    """DR-learner on baseline covariates: in mood-activity, where the drug's mood effect varies with
    baseline traits (subtype, severity), predictions correlate with the true effects (> 0.2) and
    the calibration slope is positive; in null the truth is constant (correlation undefined)."""
    table, truth, _ = clinic["mood-activity"]
    r = individual_check(table, truth, STUDY, seed=0)
    assert r["correlation"] > 0.2 and r["calibration_slope"] > 0
    table, truth, _ = clinic["null"]
    r = individual_check(table, truth, STUDY, seed=0)
    assert r["sd_truth"] == 0.0 and r["correlation"] != r["correlation"]


@pytest.fixture(scope="module")
def substudy():
    """Clinic-grade records plus the research-grade validation substudy of a random 10% (``substudy``)."""
    return _cohort("appetite", "substudy", STUDY)


def test_substudy_calibration_attributes_appetite(substudy, clinic):
    """The same clinic records with a 10% substudy: regression calibration (course intensity out of the
    outcome model and the energy-balance outcome model, as "auto" decides with every consumer mediator
    calibrated) puts the appetite effect back on its pathway (within 3 SE of the truth and ≥ 50% of it;
    computed −0.74 vs −0.68 kg, CI −0.88 to −0.60) and the direct remainder within 3 SE of its truth 0
    (+0.079, CI −0.04 to +0.20), where without the substudy the pathway got < 20%
    (test_clinic_measurement_misses_appetite)."""
    table, _truth, m = substudy
    est, lo, hi, truth = m["appetite"]
    assert abs(est - truth) < 3 * _se(lo, hi) and est / truth >= 0.5
    direct, lo, hi, _ = m["direct"]
    assert abs(direct) < 3 * _se(lo, hi)
    assert table["intake_7d_ref_change"].notna().mean() == pytest.approx(0.10, abs=0.02)


@pytest.fixture(scope="module")
def substudy_article():
    """``article`` (all three pathways act) with the 10 % substudy: the shipped study ("auto": the energy-balance
    outcome model) and the same cohort with a free outcome coefficient per mediator."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KetaweightWarning)
        table, truth = scenario_cohort("article", STUDY, 20_000, 11, "substudy")
        free = STUDY.with_mediation(outcome_model="free")
        return (mediation_check(table, truth, STUDY, n_bootstrap=100, seed=1),
                mediation_check(table, truth, free, n_bootstrap=100, seed=1))


def test_substudy_energy_balance_attributes_every_pathway_of_article(substudy_article):
    """With the energy-balance outcome model every pathway is within 3 SE and within 25 % of its truth (the
    issue's target, here on one cohort of 20,000; over 50 cohorts in docs/validation.md); the small metabolism
    pathway (−0.036 kg), whose free coefficient is identified only from the variation the sessions also give
    appetite, gets a CI at least 5 times narrower than with free coefficients.  Computed: mood −0.194 for −0.174
    (+11 %), appetite −0.326 for −0.313 (+4 %), metabolism −0.032 for −0.036 (−11 %); metabolism's CI 0.025 kg
    wide against 0.209 free."""
    tied, free = substudy_article
    for name in ("mood", "appetite", "metabolism"):
        est, lo, hi, truth = tied[name]
        assert abs(est - truth) < 3 * _se(lo, hi) and abs(est - truth) < 0.25 * abs(truth), (name, est, lo, hi, truth)
    width = {label: m["metabolism"][2] - m["metabolism"][1] for label, m in (("tied", tied), ("free", free))}
    assert width["tied"] < width["free"] / 5, width


def test_without_substudy_the_pathways_are_named_unattributable(clinic, substudy):
    from ketaweight.pipelines.mechanisms import mediation_spec, unattributable_pathways

    table = clinic["appetite"][0]
    why = unattributable_pathways(STUDY, table)
    assert set(why) == {"attribution of pathway appetite", "attribution of pathway metabolism"}
    assert "intake_7d_ref_change" in why["attribution of pathway appetite"] and "substudy" in why["attribution of pathway appetite"]
    assert mediation_spec(STUDY, table).validation == {}
    with_sub = substudy[0]
    assert unattributable_pathways(STUDY, with_sub) == {}
    assert mediation_spec(STUDY, with_sub).validation == dict(STUDY.mechanisms.mediation.validation)


@pytest.fixture(scope="module")
def modified():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KetaweightWarning)
        return scenario_cohort("effect-modification", STUDY, 20_000, 11, "clinic")


def test_modifier_search_over_the_catalogue_finds_the_true_modifiers(modified, clinic):
    """``effect-modification`` modifies the effect by BMI, sex, age and atypical depression (the last
    was not among the default subgroups): the search over every baseline column of the catalogue finds
    atypical features and BMI (Holm-adjusted over all candidates), and the found subgroups' effects
    differ in the true direction (larger loss with atypical features).  In ``null`` (no effect for
    anyone) it finds nothing."""
    from ketaweight.mechanisms.heterogeneity import DRLearner
    from ketaweight.pipelines.mechanisms import search_catalogue, search_candidates

    assert "atypical_features" in search_candidates(STUDY) and not set(search_candidates(STUDY)) & {"madrs_week2"}
    table, truth = modified
    spec = analysis_spec(STUDY, "outcome_change")
    individual = DRLearner(seed=0).fit(table, spec)
    search, effects = search_catalogue(table, spec, individual, STUDY)
    assert {"atypical_features", "bmi"} <= set(search.found) or {"atypical_features", "screening_bmi"} <= set(search.found), search.found
    atypical = next(t for t in search.tests if t.column == "atypical_features")
    assert atypical.p_holm < 1e-3
    (sub,) = [r for r in effects if r.modifier == "atypical_features"]
    by_level = {float(level): r for level, r in zip(sub.levels, sub.subgroups)}
    assert by_level[1.0].estimate < by_level[0.0].estimate, sub.levels
    null_table = clinic["null"][0]
    null_search, _ = search_catalogue(null_table, spec, DRLearner(seed=0).fit(null_table, spec), STUDY)
    assert len(null_search.found) <= 1  # family-wise 5%: at most a chance finding


def test_spread_of_individual_effects_where_they_vary_with_baseline_traits(modified):
    """``effect-modification`` (effects grow with BMI, are larger in women, the young and atypical
    depression): the DR-learner's calibrated spread is within 25% of the true SD of the conditional effect
    τ(L) (computed 0.53 vs 0.54 kg; the individual effects' own SD, 0.79, also holds variation no
    baseline trait predicts) and the predictions correlate with the true effects (computed 0.67)."""
    table, truth = modified
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KetaweightWarning)
        r = individual_check(table, truth, STUDY, seed=0)
    assert r["sd_truth_given_baseline"] > 0.4 and r["sd_truth"] > r["sd_truth_given_baseline"]
    assert r["sd_calibrated"] == pytest.approx(r["sd_truth_given_baseline"], rel=0.25)
    assert r["correlation"] > 0.5


def test_validation_rows_do_not_depend_on_the_number_of_workers():
    """Each replicate cohort has its own seed, so one worker and two give the same rows, value for value."""
    settings = dict(replicates=2, n_patients=3_000, n_bootstrap=50, seed=5, measurement="substudy", mediation_only=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KetaweightWarning)
        one = validate_mechanisms(STUDY, ("article",), workers=1, **settings)
        two = validate_mechanisms(STUDY, ("article",), workers=2, **settings)
    assert one == two
    assert {r.quantity for r in one[0]} == {"total", "direct", "mood", "appetite", "metabolism"}
