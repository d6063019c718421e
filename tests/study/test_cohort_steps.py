"""The cohort's steps one by one: each on an empty population, each checking the columns it needs,
each eligibility step adding one attrition row; the cache of built cohorts."""

from __future__ import annotations

import pandas as pd
import pytest

from ketaweight.core.errors import InputError
from ketaweight.store.store import Store
from ketaweight.study import cohort as cohort_module
from ketaweight.study.catalogue import FOLLOWUP_CHANGES
from ketaweight.study.cohort import analysis_table, build_cohort, cached_cohort, cohort_columns
from ketaweight.study.covariates import (
    patients_at_time_zero,
    with_baselines,
    with_exposures,
    with_lifestyle,
    with_mediators,
    with_outcomes,
)
from ketaweight.study.eligibility import depressed_enough, has_baseline, has_time_zero, in_age_range, new_users, one_strategy
from ketaweight.study.spec import load_study

STUDY = load_study("ketamine-weight")
PATIENTS = "patient_id,sex,birth_year,height_cm\nA1,F,1980,160\nA2,M,1970,180\n"
# A1: assessment 1 Jan; baseline weight 80 (screening 81 on 15 Dec); two weights on day 84, at 09:00 and 15:00;
# sessions on days 2 and 4 (iv 40 mg, im 30.5 mg).  A2: no assessment (no time zero).
MEASUREMENTS = """patient_id,time,kind,value,unit
A1,2024-01-01 09:00:00,madrs,30,score
A1,2023-12-15 09:00:00,weight,81,kg
A1,2024-01-01 09:05:00,weight,80,kg
A1,2024-03-25 15:00:00,weight,76,kg
A1,2024-03-25 09:00:00,weight,77,kg
A1,2024-01-15 09:00:00,madrs,20,score
A2,2024-01-01 09:00:00,weight,90,kg
"""
EXPOSURES = """patient_id,time,drug,dose_mg,route,duration_min
A1,2024-01-03 10:00:00,ketamine,40,iv,40
A1,2024-01-05 10:00:00,ketamine,30.5,im,
"""


@pytest.fixture()
def store(tmp_path):
    for name, text in (("patients", PATIENTS), ("measurements", MEASUREMENTS), ("exposures", EXPOSURES)):
        (tmp_path / f"{name}.csv").write_text(text)
    with Store(tmp_path / "s.duckdb") as s:
        s.load_folder(tmp_path)
        yield s


COVARIATE_STEPS = (with_baselines, with_exposures, with_outcomes, with_mediators, with_lifestyle)
ELIGIBILITY_STEPS = (has_time_zero, in_age_range, lambda p, s: has_baseline(p, s, "weight"), depressed_enough, new_users,
                     one_strategy)


def test_each_step_on_an_empty_population(tmp_path):
    with Store(tmp_path / "empty.duckdb") as empty:
        population = patients_at_time_zero(empty, STUDY)
        assert population.n == 0 and [(s.step, s.n_before, s.n_after) for s in population.attrition] == [("patients", 0, 0)]
        for step in COVARIATE_STEPS:
            population = step(population, empty, STUDY)
            assert population.n == 0
        for step in ELIGIBILITY_STEPS:
            before = len(population.attrition)
            population = step(population, STUDY)
            assert population.n == 0 and len(population.attrition) == before + 1
            assert population.attrition[-1].n_before == population.attrition[-1].n_excluded == 0
        table = analysis_table(population, STUDY)
        assert table.empty and list(table.columns[: len(cohort_columns(STUDY))]) == cohort_columns(STUDY)
        with pytest.raises(InputError, match="the store has no patients"):
            build_cohort(empty, STUDY)


def test_a_step_names_the_column_it_lacks_and_the_step_that_adds_it(store):
    population = patients_at_time_zero(store, STUDY)
    with pytest.raises(InputError) as err:
        with_mediators(population, store, STUDY)
    message = str(err.value)
    assert "column 'mediator_end': step 'with_mediators' needs this column; run 'with_outcomes' first" in message
    assert "column 'baseline_madrs'" in message and "run 'with_baselines' first" in message
    with pytest.raises(InputError, match="column 'prior_sessions': step 'new_users' needs this column; run 'with_exposures'"):
        new_users(population, STUDY)


def test_eligibility_steps_count_what_they_exclude(store):
    population = patients_at_time_zero(store, STUDY)
    kept = has_time_zero(population, STUDY)
    assert kept.attrition[-1].to_dict() == {"step": "time zero", "reason": "has a 'madrs' assessment (time zero)",
                                            "n_before": 2, "n_excluded": 1, "n_after": 1}
    assert list(kept.table["patient_id"]) == ["A1"]


def test_covariate_steps_one_family_each(store):
    population = in_age_range(has_time_zero(patients_at_time_zero(store, STUDY), STUDY), STUDY)
    baselines = with_baselines(population, store, STUDY).table.iloc[0]
    assert baselines["baseline_weight"] == 80 and baselines["screening_weight"] == 81 and baselines["baseline_madrs"] == 30
    exposures = with_exposures(population, store, STUDY).table.iloc[0]
    assert (exposures["grace_sessions"], exposures["first_session_day"], exposures["last_session_day"]) == (2, 2, 4)
    assert exposures["first_route"] == "iv" and exposures["dose_mg_to_horizon"] == pytest.approx(70.5)
    outcomes = with_outcomes(population, store, STUDY).table.iloc[0]
    assert outcomes["outcome_end"] == 77  # two weights on day 84: the earlier record
    assert outcomes["outcome_day"] == 84 and outcomes["mediator_end"] == 84 and outcomes["madrs_week2"] == 20


def test_a_cohort_is_built_once_per_store_content_and_protocol(store, tmp_path, monkeypatch):
    builds = []
    real = cohort_module.build_cohort
    monkeypatch.setattr(cohort_module, "build_cohort", lambda s, study, **kw: builds.append(kw) or real(s, study, **kw))
    monkeypatch.setattr(cohort_module, "_cache", type(cohort_module._cache)())
    first = cached_cohort(store, STUDY)
    first.table["treated"] = -1  # a caller's change stays its own
    second = cached_cohort(store, STUDY)
    assert len(builds) == 1 and (second.table["treated"] >= 0).all()
    cached_cohort(store, STUDY.model_copy(update={"analysis": STUDY.analysis.model_copy(update={"methods": ("ipw",)})}))
    assert len(builds) == 1  # the estimators are not part of the cohort
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "patients.csv").write_text("patient_id,sex,birth_year,height_cm\nA3,F,1990,170\n")
    store.load_folder(tmp_path / "more")
    assert cached_cohort(store, STUDY).attrition[0].n_after == 3 and len(builds) == 2
    with Store(":memory:") as memory:
        memory.load_folder(tmp_path / "more")
        cached_cohort(memory, STUDY), cached_cohort(memory, STUDY)
    assert len(builds) == 4  # in-memory stores are never cached


def test_a_cohort_without_mediators_has_the_same_other_columns(store, monkeypatch):
    """The study alone (``ketaweight analyze``) skips the mediator step; every other column is the
    full build's, bit for bit; a cached full build serves it, a mediator-less one never serves the
    mechanisms."""
    builds = []
    real = cohort_module.build_cohort
    monkeypatch.setattr(cohort_module, "build_cohort", lambda s, study, **kw: builds.append(kw) or real(s, study, **kw))
    monkeypatch.setattr(cohort_module, "_cache", type(cohort_module._cache)())
    lean = cached_cohort(store, STUDY, mediators=False)
    assert not set(FOLLOWUP_CHANGES) & set(lean.table.columns)
    full = cached_cohort(store, STUDY)
    assert builds == [{"mediators": False}, {"mediators": True}]
    assert set(FOLLOWUP_CHANGES) <= set(full.table.columns)
    pd.testing.assert_frame_equal(full.table.drop(columns=list(FOLLOWUP_CHANGES)), lean.table)
    assert cached_cohort(store, STUDY, mediators=False).table.columns.equals(full.table.columns) and len(builds) == 2
