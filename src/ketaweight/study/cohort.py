"""The one-row-per-patient analysis table of a study, built from the store by a chain of small steps
(OHDSI CohortMethod style): covariate steps add one family of columns each, from a narrow DuckDB
query joined back on patient (:mod:`ketaweight.study.covariates`); eligibility steps keep the
patients who meet one criterion and count the rest (:mod:`ketaweight.study.eligibility`).

Identifiers stay inside the table (for linking to simulation truth) and are never written to any
output.  :func:`cached_cohort` builds a study's cohort once per store content and study protocol.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from ketaweight.core.attrition import AttritionStep
from ketaweight.core.errors import InputError, Location
from ketaweight.core.schema import MEASUREMENT_KINDS
from ketaweight.store.store import LOADS_TABLE, Store
from ketaweight.study.catalogue import ACTIVITY_MET_ABOVE_REST, BASELINE_KINDS, FOLLOWUP_CHANGES
from ketaweight.study.covariates import (
    RowSource,
    patients_at_time_zero,
    with_baselines,
    with_exposures,
    with_lifestyle,
    with_mediators,
    with_outcomes,
)
from ketaweight.study.eligibility import depressed_enough, has_baseline, has_time_zero, in_age_range, new_users, one_strategy
from ketaweight.study.population import StudyPopulation
from ketaweight.study.spec import Study


@dataclass(frozen=True)
class Cohort:
    """The analysis table and how it was reached."""

    table: pd.DataFrame  # one row per eligible patient
    attrition: tuple[AttritionStep, ...]
    outcome_unit: str

    @property
    def n(self) -> int:
        return len(self.table)


def build_cohort(store: RowSource, study: Study, *, mediators: bool = True) -> Cohort:
    """The analysis table of ``study``: eligible patients, treatment, outcome, covariates; the steps'
    SQL runs where ``store`` lives (the DuckDB store, or Parquet tables on Spark: docs/scale.md).

    Columns: ``treated`` (0/1), ``outcome_change`` (canonical unit of the outcome kind),
    ``outcome_change_pct`` (% of baseline), ``censored`` (1 = no outcome measurement in the
    window), ``negative_control_change`` (when the study names one), every catalogue
    covariate, and exposure summaries (``sessions_to_horizon``, ``cumulative_mg_per_kg``,
    ``first_route``, ``last_session_day``) for dose-response analyses.  ``mediators=False``
    leaves out the mediator columns of :data:`~ketaweight.study.catalogue.FOLLOWUP_CHANGES`
    (only the mechanisms read them; their step is a third of the build at 10⁶ patients).
    """
    e = study.eligibility
    population = patients_at_time_zero(store, study)
    if population.n == 0:
        raise InputError([(Location(str(store.path), column="patients"), "the store has no patients")])
    population = in_age_range(has_time_zero(population, study), study)
    population = with_baselines(population, store, study)
    for kind in e.require_baseline:
        population = has_baseline(population, study, kind)
    if e.min_baseline_madrs is not None:
        population = depressed_enough(population, study)
    population = one_strategy(new_users(with_exposures(population, store, study), study), study)
    population = with_outcomes(population, store, study)
    if mediators:
        population = with_mediators(population, store, study)
    population = with_lifestyle(population, store, study)
    return Cohort(table=analysis_table(population, study, mediators=mediators), attrition=population.attrition,
                  outcome_unit=MEASUREMENT_KINDS[study.outcome.kind].unit)


def cohort_columns(study: Study, *, mediators: bool = True) -> list[str]:
    """The analysis table's columns before the analysis columns of :func:`analysis_table`, in order."""
    nc = ["nc_base", "nc_end"] if study.analysis.negative_control_kind else []
    changes = list(FOLLOWUP_CHANGES) if mediators else []
    return ["patient_id", "t0", "age", "female", "height_cm", *BASELINE_KINDS.values(), "screening_weight", *changes,
            "outcome_base", "outcome_end", "madrs_week2", *nc, "bmi", "screening_bmi", "diet_programme", "exercise_programme",
            "atypical_features", "index_quarter", "index_year", "prior_sessions", "grace_sessions", "sessions_to_horizon",
            "first_session_day", "first_route", "last_session_day", "cumulative_mg_per_kg"]


def analysis_table(population: StudyPopulation, study: Study, *, mediators: bool = True) -> pd.DataFrame:
    """The final table of an eligible population with every covariate step's columns: body-mass
    indices (kg/m²), the cumulative dose per kg of baseline weight (mg/kg), the treatment strategy
    followed, the outcome change (unit and % of baseline), censoring, the negative-control change and
    the holiday-season days of the baseline week and of the follow-up."""
    t = population.table
    height_m2 = (t["height_cm"].to_numpy() / 100.0) ** 2
    table = population.with_columns({
        "bmi": t["baseline_weight"].to_numpy() / height_m2,
        "screening_bmi": t["screening_weight"].to_numpy() / height_m2,
        "cumulative_mg_per_kg": t["dose_mg_to_horizon"].to_numpy() / t["baseline_weight"].to_numpy(),
    }).table[cohort_columns(study, mediators=mediators)]
    tr = study.treatment
    table["treated"] = (table["grace_sessions"] >= tr.min_sessions).astype(int)
    table["outcome_change"] = table["outcome_end"] - table["outcome_base"]
    table["outcome_change_pct"] = 100.0 * table["outcome_change"] / table["outcome_base"]
    table["censored"] = table["outcome_end"].isna().astype(int)
    if study.analysis.negative_control_kind:
        table["negative_control_change"] = table["nc_end"] - table["nc_base"]
    table["atypical_features"] = table["atypical_features"].astype("float")
    t0 = pd.to_datetime(table["t0"])
    table["holiday_days_baseline_week"] = holiday_days(t0 - pd.Timedelta(days=7), t0)
    table["holiday_days_to_horizon"] = holiday_days(t0, t0 + pd.Timedelta(days=study.outcome.horizon_days))
    return table


# ---------------------------------------------------------------------- built once per store and study
CACHE_SIZE = 2
"""Cohorts kept in memory (a demo analyses two studies, and the weight study's mechanisms reuse its cohort)."""

_cache: OrderedDict[tuple[str, str], tuple[Cohort, bool]] = OrderedDict()
"""(store, protocol) → the cohort and whether it has the mediator columns."""


def store_fingerprint(store: Store) -> str | None:
    """What identifies a store file's content: its path, size and modification time (and its
    write-ahead log's), and its load history; None for an in-memory store (never cached)."""
    if str(store.path) == ":memory:":
        return None
    path = store.path.resolve()
    files = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in (path, path.with_name(path.name + ".wal")) if p.exists()]
    try:
        loads = store.con.execute(f'SELECT load_no, loaded_utc, rows_json FROM "{LOADS_TABLE}" ORDER BY load_no').fetchall()
    except duckdb.CatalogException:
        loads = []
    return _digest([files, loads])


def protocol_fingerprint(study: Study) -> str:
    """What identifies a study's cohort: the protocol sections it is built from (not the estimators)."""
    sections = study.model_dump(mode="json", include={"eligibility", "time_zero", "treatment", "outcome"})
    return _digest([sections, study.analysis.negative_control_kind])


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def cached_cohort(store: Store, study: Study, *, mediators: bool = True) -> Cohort:
    """:func:`build_cohort`, built once per (store content, study protocol) and reused: the study,
    its mechanisms and the demo share one build.  Each caller gets its own shallow copy of the table
    (copy-on-write: changing it never changes the cached one).  In-memory stores are not cached.
    ``mediators=False`` (the study alone) is served by a cached build with or without them."""
    store_key = store_fingerprint(store)
    if store_key is None:
        return build_cohort(store, study, mediators=mediators)
    key = (store_key, protocol_fingerprint(study))
    cached = _cache.get(key)
    if cached is not None and (cached[1] or not mediators):
        _cache.move_to_end(key)
    else:
        _cache[key] = (build_cohort(store, study, mediators=mediators), mediators)
        _cache.move_to_end(key)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    cohort = _cache[key][0]
    return Cohort(cohort.table.copy(deep=False), cohort.attrition, cohort.outcome_unit)


def add_mechanism_columns(table: pd.DataFrame) -> pd.DataFrame:
    """The cohort table with the derived columns of :data:`MECHANISM_COLUMNS` (a copy)."""
    out = table.copy()
    first, last = (pd.to_numeric(out[c]).astype(float) for c in ("first_session_day", "last_session_day"))
    span = (last - first).to_numpy()
    out["course_length_days"] = span + 1
    with np.errstate(divide="ignore", invalid="ignore"):
        out["sessions_per_week"] = np.where(span > 0, 7.0 * (out["sessions_to_horizon"].astype(float) - 1) / span, np.nan)
    out["bmi_class"] = pd.cut(out["bmi"], [-np.inf, 25, 30, np.inf], right=False,  # ordered: normal < overweight < obese
                              labels=["normal (<25)", "overweight (25-30)", "obese (>=30)"], ordered=True)
    if "expenditure_7d_change" in out.columns:  # mediator columns present (build_cohort(mediators=True))
        kcal_per_minute = (ACTIVITY_MET_ABOVE_REST / 60.0) * out["baseline_weight"]
        out["activity_energy_7d_change"] = out["activity_7d_change"] * kcal_per_minute
        out["expenditure_net_7d_change"] = out["expenditure_7d_change"] - out["activity_energy_7d_change"]
        if "activity_7d_ref_change" in out.columns:
            out["activity_energy_7d_ref_change"] = out["activity_7d_ref_change"] * kcal_per_minute
    out["severity"] = np.where(out["baseline_madrs"] >= 35, "severe (>=35)", "moderate (<35)")
    out.loc[out["baseline_madrs"].isna(), "severity"] = None
    return out


def is_holiday_season(dates: pd.DatetimeIndex) -> np.ndarray:
    """True on 20 November - 5 January (the season of holiday weight gain)."""
    month, day = dates.month, dates.day
    return np.asarray(((month == 11) & (day >= 20)) | (month == 12) | ((month == 1) & (day <= 5)))


def holiday_days(start: pd.Series, end: pd.Series) -> np.ndarray:
    """Holiday-season days in [start, end) per row (dates; NaT gives NaN), by prefix sums over a calendar."""
    ok = start.notna() & end.notna()
    out = np.full(len(start), np.nan)
    if not ok.any():
        return out
    first, last = start[ok].min().normalize(), end[ok].max().normalize()
    calendar = pd.date_range(first, last, freq="D")
    before = np.concatenate([[0], np.cumsum(is_holiday_season(calendar))])  # holidays before calendar[i]
    lo = (start[ok].dt.normalize() - first).dt.days.to_numpy()
    hi = (end[ok].dt.normalize() - first).dt.days.to_numpy()
    out[ok.to_numpy()] = before[hi] - before[lo]
    return out


__all__ = ["Cohort", "add_mechanism_columns", "analysis_table", "build_cohort", "cached_cohort", "cohort_columns"]
