"""Build the one-row-per-patient analysis table of a study from the store, in DuckDB SQL.

Every eligibility filter is an explicit, counted attrition step (OHDSI CohortMethod style).
Times are compared at day resolution: "day d" means the calendar day d days after the day of
time zero.  Identifiers stay inside the table (for linking to simulation truth) and are never
written to any output.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from ketaweight.core.attrition import AttritionStep
from ketaweight.core.errors import InputError, Location
from ketaweight.core.schema import MEASUREMENT_KINDS
from ketaweight.study.catalogue import BASELINE_KINDS, COVARIATES, FOLLOWUP_CHANGES
from ketaweight.store.spark import SparkTables
from ketaweight.store.store import Store
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


def _sql(study: Study) -> str:
    e, tz, tr, out = study.eligibility, study.time_zero, study.treatment, study.outcome
    drugs = ", ".join(f"'{d}'" for d in tr.drugs)
    routes = f"AND route IN ({', '.join(repr(r) for r in tr.routes)})" if tr.routes else ""
    nc = study.analysis.negative_control_kind
    kinds = sorted({*BASELINE_KINDS, out.kind, *([nc] if nc else [])})
    kind_list = ", ".join(f"'{k}'" for k in kinds)

    def baseline(kind: str) -> str:
        return (f"arg_max(value, time) FILTER (WHERE kind = '{kind}' AND day BETWEEN -{e.baseline_window_days} AND 0)")

    def nearest(kind: str, day: int, window: int, column: str = "value") -> str:
        # nearest to the target day; ties go to the earlier measurement
        return (f"arg_min({column}, abs(day - {day}) * 2 + (day > {day})::INT) "
                f"FILTER (WHERE kind = '{kind}' AND day BETWEEN {day - window} AND {day + window})")

    def followup(kind: str) -> str:
        # Mediator window: what happened from time zero up to the outcome measurement (the horizon when the outcome
        # was measured later or not at all) — the days that can move the outcome: point records dated 1 … end − 1;
        # p-day summaries dated p … end (covering 0 … end − 1).  Nothing measured after the outcome is a mediator.
        period = MEASUREMENT_KINDS[kind].period_days
        first, last = (period, "mediator_end") if period else (1, "mediator_end - 1")
        return f"avg(value) FILTER (WHERE kind = '{kind}' AND day BETWEEN {first} AND {last})"

    outcome_nearest = nearest(out.kind, out.horizon_days, out.window_days)
    outcome_day = nearest(out.kind, out.horizon_days, out.window_days, column="day")
    baselines = ",\n            ".join(f"{baseline(kind)} AS {col}" for kind, col in BASELINE_KINDS.items())
    followups = ",\n            ".join(f"{followup(kind)} - {baseline(kind)} AS {col}" for col, kind in FOLLOWUP_CHANGES.items())
    nc_cols = (f", {baseline(nc)} AS nc_base, {nearest(nc, out.horizon_days, out.window_days)} AS nc_end") if nc else ""
    return f"""
    WITH t0 AS (
        SELECT patient_id, CAST(min(time) AS DATE) AS t0
        FROM measurements WHERE kind = '{tz.kind}' GROUP BY patient_id
    ),
    m AS (
        SELECT m.patient_id, m.kind, m.value, m.time, date_diff('day', t0.t0, CAST(m.time AS DATE)) AS day
        FROM measurements m JOIN t0 USING (patient_id) WHERE m.kind IN ({kind_list})
    ),
    od AS (
        SELECT patient_id, least(coalesce({outcome_day}, {out.horizon_days}), {out.horizon_days}) AS mediator_end
        FROM m GROUP BY patient_id
    ),
    mm AS (
        SELECT patient_id,
            {baselines},
            arg_min(value, time) FILTER (WHERE kind = 'weight' AND day BETWEEN -{e.baseline_window_days} AND 0) AS screening_weight,
            {followups},
            {baseline(out.kind)} AS outcome_base,
            {outcome_nearest} AS outcome_end,
            {nearest('madrs', 14, 4)} AS madrs_week2
            {nc_cols}
        FROM m JOIN od USING (patient_id) GROUP BY patient_id
    ),
    ex AS (
        SELECT x.patient_id,
            count(*) FILTER (WHERE day BETWEEN -{e.washout_days} AND -1) AS prior_sessions,
            count(*) FILTER (WHERE day BETWEEN 0 AND {tr.grace_days}) AS grace_sessions,
            count(*) FILTER (WHERE day BETWEEN 0 AND {out.horizon_days}) AS sessions_to_horizon,
            min(day) FILTER (WHERE day >= 0) AS first_session_day,
            arg_min(route, day) FILTER (WHERE day >= 0) AS first_route,
            sum(dose_mg) FILTER (WHERE day BETWEEN 0 AND {out.horizon_days}) AS dose_mg_to_horizon,
            max(day) FILTER (WHERE day BETWEEN 0 AND {out.horizon_days}) AS last_session_day
        FROM (
            SELECT e.patient_id, e.route, e.dose_mg, date_diff('day', t0.t0, CAST(e.time AS DATE)) AS day
            FROM exposures e JOIN t0 USING (patient_id) WHERE e.drug IN ({drugs}) {routes}
        ) x GROUP BY x.patient_id
    ),
    ls AS (
        SELECT l.patient_id,
            max((l.kind = 'diet_programme' AND l.start <= t0.t0 AND (l."end" IS NULL OR l."end" >= t0.t0))::INT) AS diet_programme,
            max((l.kind = 'exercise_programme' AND l.start <= t0.t0 AND (l."end" IS NULL OR l."end" >= t0.t0))::INT) AS exercise_programme
        FROM lifestyle l JOIN t0 USING (patient_id) GROUP BY l.patient_id
    )
    SELECT p.patient_id, t0.t0,
        year(t0.t0) - p.birth_year AS age,
        (p.sex = 'F')::INT AS female,
        p.height_cm,
        mm.* EXCLUDE (patient_id),
        mm.baseline_weight / ((p.height_cm / 100.0) ^ 2) AS bmi,
        mm.screening_weight / ((p.height_cm / 100.0) ^ 2) AS screening_bmi,
        coalesce(ls.diet_programme, 0) AS diet_programme,
        coalesce(ls.exercise_programme, 0) AS exercise_programme,
        p.atypical_features::INT AS atypical_features,
        quarter(t0.t0) AS index_quarter,
        year(t0.t0) AS index_year,
        coalesce(ex.prior_sessions, 0) AS prior_sessions,
        coalesce(ex.grace_sessions, 0) AS grace_sessions,
        coalesce(ex.sessions_to_horizon, 0) AS sessions_to_horizon,
        ex.first_session_day, ex.first_route, ex.last_session_day,
        coalesce(ex.dose_mg_to_horizon, 0) / mm.baseline_weight AS cumulative_mg_per_kg
    FROM patients p
    LEFT JOIN t0 USING (patient_id)
    LEFT JOIN mm USING (patient_id)
    LEFT JOIN ex USING (patient_id)
    LEFT JOIN ls USING (patient_id)
    ORDER BY p.patient_id
    """


RowSource = Store | SparkTables
"""Where the cohort's SQL runs: the DuckDB store (default) or canonical Parquet tables on Spark."""


def query_frame(source: RowSource, sql: str) -> pd.DataFrame:
    """``sql`` (DuckDB dialect) run where ``source`` lives; the Arrow result as pandas, converted the one
    way DuckDB converts (nullable integers, dates as datetimes) whichever engine computed it."""
    table = source.arrow(sql)
    with duckdb.connect() as con:  # its own connection: cohorts may be built in several threads at once
        return con.from_arrow(table).df()


def build_cohort(store: RowSource, study: Study) -> Cohort:
    """The analysis table of ``study``: eligible patients, treatment, outcome, covariates.

    Columns: ``treated`` (0/1), ``outcome_change`` (canonical unit of the outcome kind),
    ``outcome_change_pct`` (% of baseline), ``censored`` (1 = no outcome measurement in the
    window), ``negative_control_change`` (when the study names one), every catalogue
    covariate, and exposure summaries (``sessions_to_horizon``, ``cumulative_mg_per_kg``,
    ``first_route``, ``last_session_day``) for dose-response analyses.
    """
    e, tr = study.eligibility, study.treatment
    frame = query_frame(store, _sql(study))
    steps: list[AttritionStep] = []
    n0 = len(frame)
    if n0 == 0:
        raise InputError([(Location(str(store.path), column="patients"), "the store has no patients")])
    steps.append(AttritionStep("patients", "patients in the store", n0, 0, n0))

    def keep(mask: pd.Series, step: str, reason: str) -> None:
        nonlocal frame
        before = len(frame)
        frame = frame.loc[mask.fillna(False).astype(bool)]
        steps.append(AttritionStep(step, reason, before, before - len(frame), len(frame)))

    keep(frame["t0"].notna(), "time zero", f"has a '{study.time_zero.kind}' assessment (time zero)")
    age_ok = frame["age"] >= e.min_age
    if e.max_age is not None:
        age_ok &= frame["age"] <= e.max_age
    keep(age_ok, "age", f"age {e.min_age:g}{'–' + format(e.max_age, 'g') if e.max_age else '+'} years at time zero")
    for kind in e.require_baseline:
        col = BASELINE_KINDS.get(kind)
        if col is None:
            col = "outcome_base" if kind == study.outcome.kind else None
        if col is None:
            raise InputError([(Location("study", column="eligibility.require_baseline"),
                               f"baseline of {kind!r} is not computed; use one of {', '.join(BASELINE_KINDS)} or the outcome kind")])
        keep(frame[col].notna(), f"baseline {kind}", f"a {kind} measurement within {e.baseline_window_days} days before time zero")
    if e.min_baseline_madrs is not None:
        keep(frame["baseline_madrs"] >= e.min_baseline_madrs, "depression", f"baseline MADRS ≥ {e.min_baseline_madrs:g}")
    keep(frame["prior_sessions"] == 0, "new users", f"no ketamine/esketamine in the {e.washout_days} days before time zero")
    ambiguous = (frame["grace_sessions"] > 0) & (frame["grace_sessions"] < tr.min_sessions)
    keep(~ambiguous, "strategy", f"follows one strategy: ≥ {tr.min_sessions} session(s) or none within {tr.grace_days} days")

    table = frame.copy()
    table["treated"] = (table["grace_sessions"] >= tr.min_sessions).astype(int)
    table["outcome_change"] = table["outcome_end"] - table["outcome_base"]
    table["outcome_change_pct"] = 100.0 * table["outcome_change"] / table["outcome_base"]
    table["censored"] = table["outcome_end"].isna().astype(int)
    if study.analysis.negative_control_kind:
        table["negative_control_change"] = table["nc_end"] - table["nc_base"]
    for col in ("atypical_features",):
        table[col] = table[col].astype("float")
    t0 = pd.to_datetime(table["t0"])
    table["holiday_days_baseline_week"] = holiday_days(t0 - pd.Timedelta(days=7), t0)
    table["holiday_days_to_horizon"] = holiday_days(t0, t0 + pd.Timedelta(days=study.outcome.horizon_days))
    unit = _outcome_unit(study)
    return Cohort(table=table.reset_index(drop=True), attrition=tuple(steps), outcome_unit=unit)


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


def _outcome_unit(study: Study) -> str:
    return MEASUREMENT_KINDS[study.outcome.kind].unit


__all__ = ["Cohort", "add_mechanism_columns", "build_cohort"]
