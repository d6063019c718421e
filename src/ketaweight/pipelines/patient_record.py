"""One patient's record from the store, for a clinician's view: weight, dose (with mg/kg from the
nearest weight) and depression-score trajectories, blood pressure and adverse events.

Patient-level by design; callers (the clinic service) decide who may see it and audit each view.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ketaweight.store import Store


@dataclass(frozen=True)
class PatientRecord:
    """Time-ordered tables for one patient (times as pandas Timestamps; canonical units)."""

    patient_id: str
    sex: str
    birth_year: int
    height_cm: float
    weights: pd.DataFrame  # time, value (kg)
    sessions: pd.DataFrame  # time, drug, route, dose_mg, mg_per_kg (nearest weight; NaN without one)
    depression: pd.DataFrame  # time, kind (madrs, phq9), value (score)
    vitals: pd.DataFrame  # time, kind (systolic_bp, diastolic_bp, resting_hr), value
    adverse_events: pd.DataFrame  # time, term, severity


def patient_ids(store: Store | str | Path) -> set[str]:
    """Every patient identifier in the store (an open Store or a path)."""
    if isinstance(store, Store):
        return set(store.query("SELECT patient_id FROM patients")["patient_id"])
    with Store(store, read_only=True) as opened:
        return patient_ids(opened)


def patient_record(store: Store | str | Path, patient_id: str) -> PatientRecord | None:
    """The patient's record, or None when the store has no such patient."""
    if not isinstance(store, Store):
        with Store(store, read_only=True) as opened:
            return patient_record(opened, patient_id)
    p = store.query("SELECT sex, birth_year, height_cm FROM patients WHERE patient_id = ?", [patient_id])
    if p.empty:
        return None
    m = store.query("SELECT time, kind, value FROM measurements WHERE patient_id = ? ORDER BY time", [patient_id])
    sessions = store.query("SELECT time, drug, route, dose_mg FROM exposures WHERE patient_id = ? ORDER BY time", [patient_id])
    weights = m.loc[m["kind"] == "weight", ["time", "value"]].reset_index(drop=True)
    if len(sessions) and len(weights):  # mg/kg from the nearest weight, as the monitoring rules compute it
        near = pd.merge_asof(sessions[["time"]], weights.rename(columns={"value": "kg"}), on="time", direction="nearest")
        sessions["mg_per_kg"] = sessions["dose_mg"].to_numpy() / near["kg"].to_numpy()
    else:
        sessions["mg_per_kg"] = float("nan")
    ae = store.query("SELECT time, term, severity FROM adverse_events WHERE patient_id = ? ORDER BY time", [patient_id])
    row = p.iloc[0]
    return PatientRecord(
        patient_id=patient_id, sex=str(row["sex"]), birth_year=int(row["birth_year"]), height_cm=float(row["height_cm"]),
        weights=weights,
        sessions=sessions,
        depression=m.loc[m["kind"].isin(["madrs", "phq9"])].reset_index(drop=True),
        vitals=m.loc[m["kind"].isin(["systolic_bp", "diastolic_bp", "resting_hr"])].reset_index(drop=True),
        adverse_events=ae,
    )
