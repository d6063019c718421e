"""One labels table: what people read for every column name the analyses use.

The report, the terminal and the figures show these labels, never the code names (``female``,
``cumulative_mg_per_kg``, ``first_route``); a browser test checks the page against this table.
Design columns (``bmi^2``, ``index_quarter[4]``) and factor levels (``female = 1``) are labelled
from the same table.
"""

from __future__ import annotations

import re

LABELS: dict[str, str] = {
    # baseline covariates
    "age": "age (years)",
    "female": "sex",
    "height_cm": "height (cm)",
    "baseline_weight": "baseline weight (kg)",
    "bmi": "BMI (kg/m²)",
    "screening_bmi": "BMI at screening (kg/m²)",
    "baseline_madrs": "baseline MADRS",
    "baseline_phq9": "baseline PHQ-9",
    "baseline_resting_hr": "baseline resting heart rate (bpm)",
    "baseline_activity": "baseline activity (min/day)",
    "baseline_energy_intake": "baseline energy intake (kcal/day)",
    "baseline_appetite": "baseline appetite (0–10)",
    "baseline_energy_intake_7d": "logged intake, week before (kcal/day)",
    "baseline_activity_7d": "wearable activity, week before (min/day)",
    "baseline_energy_expenditure_7d": "wearable expenditure, week before (kcal/day)",
    "baseline_energy_intake_7d_ref": "reference intake, week before (kcal/day)",
    "baseline_energy_expenditure_7d_ref": "reference expenditure, week before (kcal/day)",
    "baseline_energy_expenditure_net_7d_ref": "reference non-activity expenditure, week before (kcal/day)",
    "baseline_activity_7d_ref": "reference activity, week before (min/day)",
    "diet_programme": "in a diet programme",
    "exercise_programme": "in an exercise programme",
    "atypical_features": "depression with atypical features",
    "index_quarter": "calendar quarter",
    "index_year": "calendar year",
    "holiday_days_baseline_week": "holiday days in the baseline week",
    "holiday_days_to_horizon": "holiday days to week 12",
    "madrs_week2": "MADRS at week 2",
    # mediators
    "intake_change": "change in energy intake (kcal/day)",
    "appetite_change": "change in appetite (0–10)",
    "activity_change": "change in activity (min/day)",
    "madrs_change": "change in MADRS",
    "intake_7d_change": "change in logged intake (kcal/day)",
    "activity_7d_change": "change in wearable activity (min/day)",
    "expenditure_7d_change": "change in wearable expenditure (kcal/day)",
    "intake_7d_ref_change": "change in intake, reference method (kcal/day)",
    "expenditure_7d_ref_change": "change in expenditure, reference method (kcal/day)",
    "expenditure_net_7d_ref_change": "change in non-activity expenditure, reference method (kcal/day)",
    "activity_7d_ref_change": "change in activity, reference accelerometer (min/day)",
    "expenditure_net_7d_change": "change in wearable non-activity expenditure (kcal/day)",
    "activity_energy_7d_change": "change in wearable activity energy (kcal/day)",
    "activity_energy_7d_ref_change": "change in activity energy, reference accelerometer (kcal/day)",
    # exposures and derived columns
    "sessions_to_horizon": "sessions (count)",
    "cumulative_mg_per_kg": "cumulative dose (mg/kg)",
    "first_route": "route of the first session",
    "sessions_per_week": "sessions per week",
    "course_length_days": "course length (days)",
    "bmi_class": "BMI class",
    "severity": "depression severity",
    # outcomes
    "outcome_change": "weight change (kg)",
    "outcome_change_pct": "weight change (%)",
    "negative_control_change": "change in resting heart rate (negative control, bpm)",
    "treated": "started a course",
}
"""Column name → label for people (units in brackets)."""

LEVEL_LABELS: dict[str, dict[str, str]] = {
    "female": {"0": "male", "1": "female"},
    "diet_programme": {"0": "no", "1": "yes"},
    "exercise_programme": {"0": "no", "1": "yes"},
    "atypical_features": {"0": "no", "1": "yes"},
    "first_route": {"iv": "IV", "im": "IM", "intranasal": "intranasal", "oral": "oral", "subcutaneous": "subcutaneous"},
}
"""Column → level as written in the data → label (levels not listed are shown as they are)."""


_CODE_NAME = re.compile(r"\b(" + "|".join(re.escape(k) for k in sorted(LABELS, key=len, reverse=True) if "_" in k)
                        + r")(\[[^\]]+\]|\^2)?(?![\w])")


def relabel(text: str) -> str:
    """``text`` with every code name of the labels table (those with an underscore) replaced by its label,
    quotes around it dropped; for sentences written by the engines (warnings, notes) before people read them.

    >>> relabel("1 covariate column(s) have |SMD| > 0.1: index_quarter[4] (-0.112)")
    '1 covariate column(s) have |SMD| > 0.1: calendar quarter: 4 (-0.112)'
    >>> relabel("the estimate on the negative control 'negative_control_change' is 0.1")
    'the estimate on the negative control change in resting heart rate (negative control, bpm) is 0.1'
    """
    text = re.sub(r"'(" + _CODE_NAME.pattern + r")'", r"\1", text)
    return _CODE_NAME.sub(lambda m: label(m.group(0)), text)


def label(name: str) -> str:
    """The label of a column (a name not in the table is shown with its underscores as spaces).

    >>> label("cumulative_mg_per_kg"), label("bmi^2"), label("index_quarter[4]"), label("some_new_column")
    ('cumulative dose (mg/kg)', 'BMI (kg/m²), squared', 'calendar quarter: 4', 'some new column')
    """
    squared = re.fullmatch(r"(.+)\^2", name)
    if squared:
        return f"{label(squared.group(1))}, squared"
    level = re.fullmatch(r"(.+)\[(.+)\]", name)
    if level:
        return f"{label(level.group(1))}: {level_label(level.group(1), level.group(2))}"
    return LABELS.get(name, name.replace("_", " "))


def level_label(column: str, level: str) -> str:
    """The label of one level of a factor column.

    >>> level_label("female", "1"), level_label("first_route", "im"), level_label("bmi_class", "obese (>=30)")
    ('female', 'IM', 'obese (>=30)')
    """
    return LEVEL_LABELS.get(column, {}).get(str(level), str(level))
