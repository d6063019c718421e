"""Columns the mechanism analyses derive from a study's cohort table (numpy/pandas only, so the
study spec can validate names without importing the estimators)."""

from __future__ import annotations

import numpy as np
import pandas as pd

MECHANISM_COLUMNS: dict[str, str] = {
    "sessions_to_horizon": "sessions from time zero to the outcome horizon (count)",
    "cumulative_mg_per_kg": "cumulative dose to the horizon per kg of baseline weight (mg/kg)",
    "first_route": "route of the first session (iv, im, intranasal, oral)",
    "sessions_per_week": "7 × (sessions − 1) / (last − first session day); undefined for a single session (sessions/week)",
    "course_length_days": "last − first session day + 1 (days)",
    "bmi_class": "baseline BMI class: normal (<25), overweight (25-30), obese (>=30)",
    "severity": "baseline MADRS: moderate (<35), severe (>=35)",
}
"""Columns the mechanism analyses may name besides the cohort covariate catalogue."""


def add_mechanism_columns(table: pd.DataFrame) -> pd.DataFrame:
    """The cohort table with the derived columns of :data:`MECHANISM_COLUMNS` (a copy)."""
    out = table.copy()
    first, last = (pd.to_numeric(out[c]).astype(float) for c in ("first_session_day", "last_session_day"))
    span = (last - first).to_numpy()
    out["course_length_days"] = span + 1
    with np.errstate(divide="ignore", invalid="ignore"):
        out["sessions_per_week"] = np.where(span > 0, 7.0 * (out["sessions_to_horizon"].astype(float) - 1) / span, np.nan)
    out["bmi_class"] = pd.cut(out["bmi"], [-np.inf, 25, 30, np.inf], right=False,
                              labels=["normal (<25)", "overweight (25-30)", "obese (>=30)"]).astype(object)
    out["severity"] = np.where(out["baseline_madrs"] >= 35, "severe (>=35)", "moderate (<35)")
    out.loc[out["baseline_madrs"].isna(), "severity"] = None
    return out
