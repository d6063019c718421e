"""Mechanism analyses against the simulator's truth, one cohort of 20,000 per scenario (seed 11).

Truths are the analysed patients' means from ``patient_truth`` (see
:mod:`ketaweight.causal.mechanisms_validation` for their exact definitions).  The coverage over
replicate cohorts is in docs/mechanisms.md (``ketaweight mechanisms-validate``).  Measured
mediators in the store are food-diary intake and appetite, activity and MADRS at days 28/56
(14 for MADRS); nothing measures energy expenditure.  So:

* the mood pathway is captured (mostly), the appetite pathway is NOT — its intake changes
  happen on and just after session days (days 0–14 of the course), between diaries — and the
  metabolic pathway can only show up as the direct remainder.  These tests pin that behaviour.
"""

from __future__ import annotations

import warnings

import pytest

from ketaweight.causal.mechanisms_validation import dose_check, individual_check, mediation_check, scenario_cohort
from ketaweight.exceptions import KetaweightWarning
from ketaweight.study import load_study

STUDY = load_study("ketamine-weight")


@pytest.fixture(scope="module")
def cohorts():
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KetaweightWarning)
        for scenario in ("null", "appetite", "metabolic", "mood-activity"):
            table, truth = scenario_cohort(scenario, STUDY, 20_000, 11)
            out[scenario] = (table, truth, mediation_check(table, truth, STUDY, n_bootstrap=100, seed=1))
    return out


@pytest.mark.parametrize("scenario", ["null", "appetite", "metabolic", "mood-activity"])
def test_total_effect_within_ci_of_truth(cohorts, scenario):
    est, lo, hi, truth = cohorts[scenario][2]["total"]
    assert lo <= truth <= hi


def test_null_every_pathway_near_zero(cohorts):
    """No drug effect on weight: every effect within 0.05 kg of 0 (the mood pathway's −0.02 kg is
    the unmeasured natural course of depression confounding MADRS change and weight change)."""
    for name, (est, lo, hi, truth) in cohorts["null"][2].items():
        assert truth == 0.0 and abs(est) < 0.05, name


def test_mood_activity_carried_by_mood(cohorts):
    """Mood carries ≥ 70% of the total (truth: all of it); appetite within 0.01 kg of 0."""
    m = cohorts["mood-activity"][2]
    assert m["mood"][0] / m["total"][0] >= 0.7
    assert abs(m["appetite"][0]) < 0.01 and m["appetite"][1] <= 0.0 <= m["appetite"][2] + 0.005


def test_metabolic_shows_as_direct_remainder(cohorts):
    """No expenditure measurement: the metabolic effect lands in the direct remainder (≥ 70% of the
    total), whose truth here is the metabolic pathway; appetite within 0.01 kg of 0."""
    m = cohorts["metabolic"][2]
    assert m["direct"][3] == pytest.approx(m["total"][3])
    assert m["direct"][0] / m["total"][0] >= 0.7
    assert abs(m["appetite"][0]) < 0.01


def test_appetite_pathway_missed_by_sparse_diaries(cohorts):
    """Documented limitation: the estimated appetite pathway captures < 15% of its truth and the
    direct remainder's CI excludes 0 although the true direct effect is 0."""
    m = cohorts["appetite"][2]
    assert abs(m["appetite"][0]) < 0.15 * abs(m["appetite"][3])
    assert m["direct"][3] == 0.0 and m["direct"][2] < 0.0


def test_dose_response_tracks_true_curve(cohorts):
    """MSM (quadratic) on sessions vs E[Y(course) | sessions]: slopes within 0.02 kg per session
    (computed: −0.081 vs −0.079), the band covers the true curve at ≥ 50% of the 14 session
    counts (computed 57%) and no point is off by more than 0.4 kg (computed 0.36 kg, at 14
    sessions, where the true curve turns up: in this simulator every 14-session course is oral,
    bioavailability 0.17, so less drug per session — sessions are not a pure dose, and a
    quadratic in sessions cannot follow the route mix; 10–13 sessions are mostly esketamine)."""
    table, truth, _ = cohorts["appetite"]
    d = dose_check(table, truth, STUDY)
    assert d["true_slope"] < -0.05
    assert d["estimated_slope"] == pytest.approx(d["true_slope"], abs=0.02)
    assert d["share_covered"] >= 0.5 and d["max_abs_error"] < 0.4


def test_individual_effects_against_truth(cohorts):
    """DR-learner on baseline covariates: in mood-activity, where the drug's mood effect varies with
    baseline traits (subtype, severity), predictions correlate with the true effects (> 0.2) and
    the calibration slope is positive; in null the truth is constant (correlation undefined)."""
    table, truth, _ = cohorts["mood-activity"]
    r = individual_check(table, truth, STUDY, seed=0)
    assert r["correlation"] > 0.2 and r["calibration_slope"] > 0
    table, truth, _ = cohorts["null"]
    r = individual_check(table, truth, STUDY, seed=0)
    assert r["sd_truth"] == 0.0 and r["correlation"] != r["correlation"]
