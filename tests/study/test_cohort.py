"""The analysis table from a tiny hand-made store: every value hand-computable."""

import pytest

from ketaweight.study.cohort import build_cohort
from ketaweight.store.store import Store
from ketaweight.study.spec import load_study

PATIENTS = """patient_id,sex,birth_year,height_cm,atypical_features
T1,F,1980,160,false
T2,M,1970,180,true
C1,F,1990,170,false
C2,M,2015,175,false
P1,F,1980,165,false
N1,M,1975,178,false
"""
# T1 treated (2 sessions in grace), weight 80 -> 78 at day 84; T2 treated, lost to follow-up (no weight near 84)
# C1 untreated, weight 70 at baseline (day -10), 71 at day 80 and 72 at day 88 (80 is nearer to 84)
# C2 is a minor (excluded by age). P1 had ketamine 100 days before time zero (not a new user).
# N1 has no baseline weight (excluded).
# T1's weekly app records: baseline week 2000 kcal/d; records dated day 7 and day 84 (covering days 77-83, before the
# horizon) count, day 85 does not; its MADRS on day 84 (the horizon) is not a mediator record (point kinds stop the day before).
MEASUREMENTS = """patient_id,time,kind,value,unit
T1,2024-01-01 09:00:00,madrs,30,score
T1,2024-01-01 09:05:00,weight,80,kg
T1,2024-03-25 09:00:00,weight,78,kg
T1,2024-01-15 09:00:00,madrs,20,score
T1,2024-03-25 09:00:00,madrs,10,score
T1,2024-01-01 00:00:00,energy_intake_7d,2000,kcal/d
T1,2024-01-08 00:00:00,energy_intake_7d,1900,kcal/d
T1,2024-03-25 00:00:00,energy_intake_7d,1800,kcal/d
T1,2024-03-26 00:00:00,energy_intake_7d,2500,kcal/d
T2,2024-02-01 09:00:00,madrs,35,score
T2,2024-02-01 09:05:00,weight,90,kg
C1,2024-01-01 09:00:00,madrs,25,score
C1,2023-12-22 09:00:00,weight,70,kg
C1,2024-03-21 09:00:00,weight,71,kg
C1,2024-03-29 09:00:00,weight,72,kg
C1,2024-01-01 00:00:00,energy_intake_7d,2200,kcal/d
C1,2024-03-18 00:00:00,energy_intake_7d,2100,kcal/d
C1,2024-03-25 00:00:00,energy_intake_7d,1000,kcal/d
C2,2024-01-01 09:00:00,madrs,25,score
C2,2024-01-01 09:00:00,weight,60,kg
P1,2024-01-01 09:00:00,madrs,25,score
P1,2024-01-01 09:00:00,weight,60,kg
N1,2024-01-01 09:00:00,madrs,25,score
"""
EXPOSURES = """patient_id,time,drug,dose_mg,route,duration_min
T1,2024-01-03 10:00:00,ketamine,40,iv,40
T1,2024-01-05 10:00:00,ketamine,40,iv,40
T2,2024-02-02 10:00:00,esketamine,56,intranasal,120
P1,2023-09-23 10:00:00,ketamine,30,iv,40
"""
LIFESTYLE = """patient_id,start,end,kind,detail
C1,2023-12-15,2024-03-15,diet_programme,x
T1,2024-02-01,2024-04-01,exercise_programme,started after time zero
"""


@pytest.fixture()
def cohort(tmp_path):
    for name, text in (("patients", PATIENTS), ("measurements", MEASUREMENTS), ("exposures", EXPOSURES), ("lifestyle", LIFESTYLE)):
        (tmp_path / f"{name}.csv").write_text(text)
    with Store(tmp_path / "s.duckdb") as store:
        store.load_folder(tmp_path)
        return build_cohort(store, load_study("ketamine-weight"))


def test_attrition_counts_each_step(cohort):
    steps = {s.step: (s.n_before, s.n_excluded, s.n_after) for s in cohort.attrition}
    assert steps["patients"] == (6, 0, 6)
    assert steps["age"] == (6, 1, 5)  # C2 is 9 years old
    assert steps["baseline weight"] == (5, 1, 4)  # N1
    assert steps["new users"] == (4, 1, 3)  # P1
    assert cohort.n == 3


def test_values(cohort):
    t = cohort.table.set_index("patient_id")
    assert list(t.index) == ["C1", "T1", "T2"]
    assert t.loc["T1", "treated"] == 1 and t.loc["T2", "treated"] == 1 and t.loc["C1", "treated"] == 0
    assert t.loc["T1", "outcome_change"] == pytest.approx(-2.0)
    assert t.loc["T1", "outcome_change_pct"] == pytest.approx(-2.5)
    assert t.loc["C1", "outcome_change"] == pytest.approx(1.0)  # day 80 is nearer to 84 than day 88
    assert t.loc["T2", "censored"] == 1 and t.loc["T1", "censored"] == 0
    assert t.loc["C1", "diet_programme"] == 1  # active at time zero
    assert t.loc["T1", "exercise_programme"] == 0  # started after time zero: not a baseline covariate
    assert t.loc["T1", "bmi"] == pytest.approx(80 / 1.6**2)
    assert t.loc["T1", "age"] == 44 and t.loc["T1", "female"] == 1
    assert t.loc["T1", "madrs_week2"] == 20
    assert t.loc["T1", "cumulative_mg_per_kg"] == pytest.approx(80 / 80)
    assert t.loc["T2", "first_route"] == "intranasal"
    assert t.loc["T1", "index_quarter"] == 1 and t.loc["T2", "atypical_features"] == 1


def test_mediators_cover_time_zero_to_the_horizon(cohort):
    t = cohort.table.set_index("patient_id")
    assert t.loc["T1", "intake_7d_change"] == pytest.approx((1900 + 1800) / 2 - 2000)
    assert t.loc["T1", "baseline_energy_intake_7d"] == 2000
    assert t.loc["T1", "madrs_change"] == pytest.approx(20 - 30)  # the day-84 rating is at the horizon, not before
    assert t["expenditure_7d_change"].isna().all()  # never recorded
    assert t.loc["C1", "intake_7d_change"] == pytest.approx(2100 - 2200)  # not the day-84 record: after the day-80 outcome


def test_holiday_days_from_the_calendar(cohort):
    t = cohort.table.set_index("patient_id")
    assert t.loc["T1", "holiday_days_baseline_week"] == 7  # 25-31 December
    assert t.loc["T1", "holiday_days_to_horizon"] == 5  # 1-5 January of days 0-83
    assert t.loc["T2", "holiday_days_baseline_week"] == 0 and t.loc["T2", "holiday_days_to_horizon"] == 0
