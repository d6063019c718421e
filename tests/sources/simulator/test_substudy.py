"""The research-grade validation substudy: its records are the error-free versions of the clinic's, and its
non-activity expenditure carries the drug's thermogenesis and nothing of the activity that mood brings."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ketaweight.core.errors import KetaweightWarning
from ketaweight.pipelines.mechanisms_validation import scenario_cohort
from ketaweight.study.catalogue import ACTIVITY_MET_ABOVE_REST
from ketaweight.study.spec import load_study


@pytest.fixture(scope="module")
def cohort():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KetaweightWarning)
        table, _truth = scenario_cohort("article", load_study("ketamine-weight"), 4000, 3, "substudy")
    steady = (table["exercise_programme"] == 0) & table["expenditure_net_7d_ref_change"].notna()
    return table, table[steady]


def test_the_substudy_is_a_random_tenth_with_every_reference_kind(cohort):
    table, _ = cohort
    share = table["expenditure_net_7d_ref_change"].notna().mean()
    assert share == pytest.approx(0.10, abs=0.02)
    for ref in ("intake_7d_ref_change", "expenditure_7d_ref_change", "activity_7d_ref_change"):
        assert (table[ref].notna() == table["expenditure_net_7d_ref_change"].notna()).all(), ref


def test_non_activity_expenditure_is_the_thermogenesis_of_the_sessions(cohort):
    """Untreated (no exercise programme): no change at all (rounding 0.1 kcal/d); treated: the
    session-day thermogenesis, 40 kcal on each session day averaged over the weeks recorded (at most
    40 kcal/d, every day a session), so it rises with the session count (r > 0.5; dropout shortens
    the weeks averaged)."""
    _, rows = cohort
    untreated, treated = rows[rows["treated"] == 0], rows[rows["treated"] == 1]
    assert len(untreated) > 30 and len(treated) > 30
    assert np.abs(untreated["expenditure_net_7d_ref_change"]).max() <= 0.15
    net, sessions = treated["expenditure_net_7d_ref_change"], treated["sessions_to_horizon"]
    assert np.corrcoef(net, sessions)[0, 1] > 0.5
    assert (net > 0).all() and (net <= 40.0 + 0.15).all()


def test_total_minus_net_is_the_activity_energy(cohort):
    """Total − non-activity reference expenditure = the reference accelerometer's extra minutes at
    1.5 MET above rest (the profile weight: within 5 % of the baseline weight)."""
    _, rows = cohort
    moved = rows[np.abs(rows["activity_7d_ref_change"]) > 2]
    activity_kcal = rows["expenditure_7d_ref_change"] - rows["expenditure_net_7d_ref_change"]
    implied_weight = (activity_kcal / (moved["activity_7d_ref_change"] * ACTIVITY_MET_ABOVE_REST / 60.0)).dropna()
    assert len(implied_weight) > 30
    assert np.median(np.abs(implied_weight / moved["baseline_weight"] - 1)) < 0.05


def test_the_wearable_side_of_the_net_mediator(cohort):
    """expenditure_net_7d_change = the wearable's expenditure change − its activity change × 1.5 MET/60 ×
    baseline weight: mostly device noise beside the reference value (SD over 3 times larger), which is
    why the metabolism pathway needs the substudy."""
    table, rows = cohort
    expected = (table["expenditure_7d_change"]
                - table["activity_7d_change"] * ACTIVITY_MET_ABOVE_REST / 60.0 * table["baseline_weight"])
    np.testing.assert_allclose(table["expenditure_net_7d_change"], expected, equal_nan=True)
    both = rows[rows["expenditure_net_7d_change"].notna()]
    assert len(both) > 30
    assert both["expenditure_net_7d_change"].std() > 3 * both["expenditure_net_7d_ref_change"].std()
