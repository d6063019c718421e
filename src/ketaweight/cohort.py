"""Build the one-row-per-patient analysis table of a study from the store, in DuckDB SQL.

Every eligibility filter is an explicit, counted attrition step (OHDSI CohortMethod style).
Times are compared at day resolution: "day d" means the calendar day d days after the day of
time zero.  Identifiers stay inside the table (for linking to simulation truth) and are never
written to any output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ketaweight.causal.data import AttritionStep
from ketaweight.exceptions import InputError, Location
from ketaweight.schema import MEASUREMENT_KINDS
from ketaweight.store import Store
from ketaweight.study import Study


@dataclass(frozen=True)
class Covariate:
    description: str
    unit: str = ""
    post_baseline: bool = False


COVARIATES: dict[str, Covariate] = {
    "age": Covariate("age at time zero", "years"),
    "female": Covariate("1 = female, 0 = male"),
    "height_cm": Covariate("height", "cm"),
    "baseline_weight": Covariate("last weight in the baseline window", "kg"),
    "bmi": Covariate("baseline weight / height²", "kg/m²"),
    "screening_bmi": Covariate("first weight in the baseline window (the screening visit) / height²: the BMI the "
                               "treatment decision saw, before any pre-index programme moved it", "kg/m²"),
    "baseline_madrs": Covariate("last MADRS in the baseline window", "points"),
    "baseline_phq9": Covariate("last PHQ-9 in the baseline window", "points"),
    "baseline_resting_hr": Covariate("last resting heart rate in the baseline window", "bpm"),
    "baseline_activity": Covariate("last activity record in the baseline window", "min/d"),
    "baseline_energy_intake": Covariate("last reported energy intake in the baseline window", "kcal/d"),
    "diet_programme": Covariate("1 = in a diet programme at time zero (started in the baseline window or earlier, not ended)"),
    "exercise_programme": Covariate("1 = in an exercise programme at time zero"),
    "atypical_features": Covariate("1 = depression with atypical features"),
    "index_quarter": Covariate("calendar quarter of time zero (1-4; season and holidays)"),
    "index_year": Covariate("calendar year of time zero"),
    "holiday_days_baseline_week": Covariate("days of the 7 before time zero in the holiday season (20 Nov - 5 Jan): "
                                            "the baseline week's intake is then not the usual one", "days"),
    "holiday_days_to_horizon": Covariate("days from time zero to the outcome horizon in the holiday season "
                                         "(known at time zero: the calendar)", "days"),
    "madrs_week2": Covariate("MADRS nearest day 14 (± 4 days); after time zero: censoring models only", "points", True),
    "baseline_appetite": Covariate("last appetite rating in the baseline window", "0-10"),
    "baseline_energy_intake_7d": Covariate("app-logged mean intake of the week before time zero", "kcal/d"),
    "baseline_activity_7d": Covariate("wearable mean active minutes of the week before time zero", "min/d"),
    "baseline_energy_expenditure_7d": Covariate("wearable mean expenditure of the week before time zero", "kcal/d"),
    # Mediators (mechanisms): mean of the records covering time zero up to the outcome measurement, minus baseline.
    "intake_change": Covariate("reported energy intake (food diaries) during follow-up minus baseline (mediator)", "kcal/d", True),
    "appetite_change": Covariate("appetite rating during follow-up minus baseline (mediator)", "0-10", True),
    "activity_change": Covariate("activity (diaries) during follow-up minus baseline (mediator)", "min/d", True),
    "madrs_change": Covariate("MADRS during follow-up minus baseline (mediator)", "points", True),
    "intake_7d_change": Covariate("app-logged weekly mean intake during follow-up minus baseline week (mediator)", "kcal/d", True),
    "activity_7d_change": Covariate("wearable weekly mean activity during follow-up minus baseline week (mediator)", "min/d", True),
    "expenditure_7d_change": Covariate("wearable weekly mean expenditure during follow-up minus baseline week (mediator)", "kcal/d", True),
}
"""Covariates a study may name; all are computed for every patient by :func:`build_cohort`."""

BASELINE_KINDS: dict[str, str] = {
    "weight": "baseline_weight", "madrs": "baseline_madrs", "phq9": "baseline_phq9", "resting_hr": "baseline_resting_hr",
    "activity": "baseline_activity", "energy_intake": "baseline_energy_intake", "appetite": "baseline_appetite",
    "energy_intake_7d": "baseline_energy_intake_7d", "activity_7d": "baseline_activity_7d",
    "energy_expenditure_7d": "baseline_energy_expenditure_7d",
}
"""Measurement kind → its baseline column (the last record in the baseline window)."""

FOLLOWUP_CHANGES: dict[str, str] = {
    "intake_change": "energy_intake", "appetite_change": "appetite", "activity_change": "activity",
    "madrs_change": "madrs", "intake_7d_change": "energy_intake_7d", "activity_7d_change": "activity_7d",
    "expenditure_7d_change": "energy_expenditure_7d",
}
"""Mediator column → measurement kind: mean of the follow-up records minus the kind's baseline."""


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


def build_cohort(store: Store, study: Study) -> Cohort:
    """The analysis table of ``study``: eligible patients, treatment, outcome, covariates.

    Columns: ``treated`` (0/1), ``outcome_change`` (canonical unit of the outcome kind),
    ``outcome_change_pct`` (% of baseline), ``censored`` (1 = no outcome measurement in the
    window), ``negative_control_change`` (when the study names one), every catalogue
    covariate, and exposure summaries (``sessions_to_horizon``, ``cumulative_mg_per_kg``,
    ``first_route``, ``last_session_day``) for dose-response analyses.
    """
    e, tr = study.eligibility, study.treatment
    frame = store.query(_sql(study))
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


__all__ = ["BASELINE_KINDS", "COVARIATES", "FOLLOWUP_CHANGES", "Cohort", "Covariate", "build_cohort"]
