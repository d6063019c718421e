"""The eligibility steps of the cohort: each keeps the patients who meet one criterion of the study's
protocol and appends exactly one counted :class:`~ketaweight.core.attrition.AttritionStep`.  Each
checks on entry that the columns it tests are there (and names the step that adds them)."""

from __future__ import annotations

from ketaweight.core.errors import InputError, Location
from ketaweight.study.catalogue import BASELINE_KINDS
from ketaweight.study.covariates import PRODUCERS
from ketaweight.study.population import StudyPopulation, require
from ketaweight.study.spec import Study


def has_time_zero(population: StudyPopulation, study: Study) -> StudyPopulation:
    """Patients with a ``time_zero.kind`` record (the assessment that is time zero)."""
    require(population, "has_time_zero", ("t0",), PRODUCERS)
    return population.keep(population.table["t0"].notna(), "time zero",
                           f"has a '{study.time_zero.kind}' assessment (time zero)")


def in_age_range(population: StudyPopulation, study: Study) -> StudyPopulation:
    """Patients aged ``min_age`` (to ``max_age``) years at time zero."""
    require(population, "in_age_range", ("age",), PRODUCERS)
    e = study.eligibility
    ok = population.table["age"] >= e.min_age
    if e.max_age is not None:
        ok &= population.table["age"] <= e.max_age
    return population.keep(ok, "age", f"age {e.min_age:g}{'–' + format(e.max_age, 'g') if e.max_age else '+'} years at time zero")


def baseline_column(kind: str, study: Study) -> str:
    """The population column holding the baseline of ``kind`` (InputError when none is computed)."""
    col = BASELINE_KINDS.get(kind) or ("outcome_base" if kind == study.outcome.kind else None)
    if col is None:
        raise InputError([(Location("study", column="eligibility.require_baseline"),
                           f"baseline of {kind!r} is not computed; use one of {', '.join(BASELINE_KINDS)} or the outcome kind")])
    return col


def has_baseline(population: StudyPopulation, study: Study, kind: str) -> StudyPopulation:
    """Patients with a ``kind`` record in the baseline window."""
    col = baseline_column(kind, study)
    require(population, "has_baseline", (col,), PRODUCERS)
    return population.keep(population.table[col].notna(), f"baseline {kind}",
                           f"a {kind} measurement within {study.eligibility.baseline_window_days} days before time zero")


def depressed_enough(population: StudyPopulation, study: Study) -> StudyPopulation:
    """Patients whose baseline MADRS is at least ``min_baseline_madrs`` (points)."""
    require(population, "depressed_enough", ("baseline_madrs",), PRODUCERS)
    threshold = study.eligibility.min_baseline_madrs
    return population.keep(population.table["baseline_madrs"] >= threshold, "depression", f"baseline MADRS ≥ {threshold:g}")


def new_users(population: StudyPopulation, study: Study) -> StudyPopulation:
    """Patients with no session of the study's drugs in the washout before time zero."""
    require(population, "new_users", ("prior_sessions",), PRODUCERS)
    return population.keep(population.table["prior_sessions"] == 0, "new users",
                           f"no ketamine/esketamine in the {study.eligibility.washout_days} days before time zero")


def one_strategy(population: StudyPopulation, study: Study) -> StudyPopulation:
    """Patients who follow one of the two strategies in the grace period: at least ``min_sessions``
    sessions (start a course) or none."""
    require(population, "one_strategy", ("grace_sessions",), PRODUCERS)
    tr = study.treatment
    grace = population.table["grace_sessions"]
    ambiguous = (grace > 0) & (grace < tr.min_sessions)
    return population.keep(~ambiguous, "strategy",
                           f"follows one strategy: ≥ {tr.min_sessions} session(s) or none within {tr.grace_days} days")
