"""The one catalogue of analysis-table columns a study may name: baseline covariates, post-baseline
mediators (computed by :func:`ketaweight.study.cohort.build_cohort`) and the derived mechanism columns
(:func:`ketaweight.study.cohort.add_mechanism_columns`).  Plain data, so the study spec can validate
names without importing the SQL that computes them."""

from __future__ import annotations

from dataclasses import dataclass


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
    "baseline_energy_intake_7d_ref": Covariate("reference-method mean intake of the week before time zero (validation "
                                               "substudy only)", "kcal/d"),
    "baseline_energy_expenditure_7d_ref": Covariate("reference-method mean expenditure of the week before time zero "
                                                    "(validation substudy only)", "kcal/d"),
    "baseline_energy_expenditure_net_7d_ref": Covariate("reference-method mean non-activity expenditure of the week "
                                                        "before time zero (validation substudy only)", "kcal/d"),
    "baseline_activity_7d_ref": Covariate("research-grade accelerometer mean active minutes of the week before time "
                                          "zero (validation substudy only)", "min/d"),
    # Mediators (mechanisms): mean of the records covering time zero up to the outcome measurement, minus baseline.
    "intake_change": Covariate("reported energy intake (food diaries) during follow-up minus baseline (mediator)", "kcal/d", True),
    "appetite_change": Covariate("appetite rating during follow-up minus baseline (mediator)", "0-10", True),
    "activity_change": Covariate("activity (diaries) during follow-up minus baseline (mediator)", "min/d", True),
    "madrs_change": Covariate("MADRS during follow-up minus baseline (mediator)", "points", True),
    "intake_7d_change": Covariate("app-logged weekly mean intake during follow-up minus baseline week (mediator)", "kcal/d", True),
    "activity_7d_change": Covariate("wearable weekly mean activity during follow-up minus baseline week (mediator)", "min/d", True),
    "expenditure_7d_change": Covariate("wearable weekly mean expenditure during follow-up minus baseline week (mediator)", "kcal/d", True),
    "intake_7d_ref_change": Covariate("reference-method weekly mean intake during follow-up minus baseline week (the "
                                      "validation substudy's error-free intake_7d_change)", "kcal/d", True),
    "expenditure_7d_ref_change": Covariate("reference-method weekly mean expenditure during follow-up minus baseline week "
                                           "(the validation substudy's error-free expenditure_7d_change)", "kcal/d", True),
    "expenditure_net_7d_ref_change": Covariate("reference-method weekly mean non-activity expenditure (doubly labelled "
                                               "water minus accelerometer activity energy) during follow-up minus baseline "
                                               "week (the validation substudy's error-free expenditure_net_7d_change)",
                                               "kcal/d", True),
    "activity_7d_ref_change": Covariate("research-grade accelerometer weekly mean activity during follow-up minus "
                                        "baseline week (the validation substudy's error-free activity_7d_change)",
                                        "min/d", True),
}
"""Covariates a study may name; all are computed for every patient by :func:`build_cohort`."""

BASELINE_KINDS: dict[str, str] = {
    "weight": "baseline_weight", "madrs": "baseline_madrs", "phq9": "baseline_phq9", "resting_hr": "baseline_resting_hr",
    "activity": "baseline_activity", "energy_intake": "baseline_energy_intake", "appetite": "baseline_appetite",
    "energy_intake_7d": "baseline_energy_intake_7d", "activity_7d": "baseline_activity_7d",
    "energy_expenditure_7d": "baseline_energy_expenditure_7d",
    "energy_intake_7d_ref": "baseline_energy_intake_7d_ref", "energy_expenditure_7d_ref": "baseline_energy_expenditure_7d_ref",
    "energy_expenditure_net_7d_ref": "baseline_energy_expenditure_net_7d_ref", "activity_7d_ref": "baseline_activity_7d_ref",
}
"""Measurement kind → its baseline column (the last record in the baseline window)."""

FOLLOWUP_CHANGES: dict[str, str] = {
    "intake_change": "energy_intake", "appetite_change": "appetite", "activity_change": "activity",
    "madrs_change": "madrs", "intake_7d_change": "energy_intake_7d", "activity_7d_change": "activity_7d",
    "expenditure_7d_change": "energy_expenditure_7d",
    "intake_7d_ref_change": "energy_intake_7d_ref", "expenditure_7d_ref_change": "energy_expenditure_7d_ref",
    "expenditure_net_7d_ref_change": "energy_expenditure_net_7d_ref", "activity_7d_ref_change": "activity_7d_ref",
}
"""Mediator column → measurement kind: mean of the follow-up records minus the kind's baseline."""

MECHANISM_COLUMNS: dict[str, str] = {
    "sessions_to_horizon": "sessions from time zero to the outcome horizon (count)",
    "cumulative_mg_per_kg": "cumulative dose to the horizon per kg of baseline weight (mg/kg)",
    "first_route": "route of the first session (iv, im, intranasal, oral)",
    "sessions_per_week": "7 × (sessions − 1) / (last − first session day); undefined for a single session (sessions/week)",
    "course_length_days": "last − first session day + 1 (days)",
    "bmi_class": "baseline BMI class: normal (<25), overweight (25-30), obese (>=30)",
    "severity": "baseline MADRS: moderate (<35), severe (>=35)",
    "activity_energy_7d_change": "wearable activity change as energy: activity_7d_change x 1.5 MET/60 x baseline weight "
                                 "(kcal/d; the mood pathway's energy mediator, in the unit of the energy balance)",
    "activity_energy_7d_ref_change": "research accelerometer's activity change as energy: activity_7d_ref_change x 1.5 "
                                     "MET/60 x baseline weight (kcal/d; the substudy's error-free activity_energy_7d_change)",
    "expenditure_net_7d_change": "wearable expenditure change net of the activity energy it counts: expenditure_7d_change "
                                 "- activity_energy_7d_change (kcal/d; the device-side match of the substudy's "
                                 "expenditure_net_7d_ref_change, the metabolism pathway's mediator)",
}
"""Columns the mechanism analyses may name besides the cohort covariate catalogue."""


ACTIVITY_MET_ABOVE_REST = 1.5
"""METs above rest of light activity (≈ 2.5 METs; 1 MET ≈ 1 kcal/kg/h, Ainsworth 2011 Compendium): what a
wearable charges an active minute, used to take activity energy out of its expenditure change."""


def known_columns() -> list[str]:
    """Every column name a study may use (covariates, mediators, mechanism columns)."""
    return [*COVARIATES, *MECHANISM_COLUMNS]
