"""One patient's record from the store, for a clinician's view: weight, dose (with mg/kg from the
nearest weight) and depression-score trajectories, blood pressure and adverse events.

Patient-level by design; callers (the clinic service) decide who may see it and audit each view.
The record is plain tuples, not DataFrames: a page reads one patient (tens to hundreds of rows), where
building pandas frames cost more than the four indexed-by-zone-map DuckDB lookups themselves.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import duckdb

from ketaweight.store import Store

DEPRESSION_KINDS = ("madrs", "phq9")
VITAL_KINDS = ("systolic_bp", "diastolic_bp", "resting_hr")


class Weight(NamedTuple):
    time: dt.datetime
    kg: float


class Session(NamedTuple):
    time: dt.datetime
    drug: str
    route: str
    dose_mg: float
    mg_per_kg: float
    """From the weight nearest in time (as the monitoring rules compute it); NaN when the patient has no weight."""


class Reading(NamedTuple):
    time: dt.datetime
    kind: str  # madrs, phq9 (score) or systolic_bp, diastolic_bp (mmHg), resting_hr (beats/min)
    value: float


class Event(NamedTuple):
    time: dt.datetime
    term: str
    severity: str


@dataclass(frozen=True)
class PatientRecord:
    """Time-ordered rows for one patient (canonical units)."""

    patient_id: str
    sex: str
    birth_year: int
    height_cm: float
    weights: tuple[Weight, ...]
    sessions: tuple[Session, ...]
    depression: tuple[Reading, ...]
    vitals: tuple[Reading, ...]
    adverse_events: tuple[Event, ...]

    def scores(self, kind: str) -> tuple[Reading, ...]:
        """The depression readings of one scale (``madrs`` or ``phq9``)."""
        return tuple(r for r in self.depression if r.kind == kind)


def patient_ids(store: Store | str | Path) -> set[str]:
    """Every patient identifier in the store (an open Store or a path)."""
    if isinstance(store, Store):
        return {row[0] for row in store.con.execute("SELECT patient_id FROM patients").fetchall()}
    with Store(store, read_only=True) as opened:
        return patient_ids(opened)


def _nearest_kg(weights: tuple[Weight, ...], times: list[dt.datetime], at: dt.datetime) -> float:
    """The weight nearest in time to ``at`` (the earlier one on a tie); NaN without weights."""
    if not weights:
        return math.nan
    i = bisect.bisect_left(times, at)
    candidates = [j for j in (i - 1, i) if 0 <= j < len(weights)]
    return weights[min(candidates, key=lambda j: (abs((weights[j].time - at).total_seconds()), j))].kg


def _read(con: duckdb.DuckDBPyConnection, patient_id: str) -> PatientRecord | None:
    person = con.execute("SELECT sex, birth_year, height_cm FROM patients WHERE patient_id = ?", [patient_id]).fetchall()
    if not person:
        return None
    measured = con.execute("SELECT time, kind, value FROM measurements WHERE patient_id = ? ORDER BY time, kind",
                           [patient_id]).fetchall()
    doses = con.execute("SELECT time, drug, route, dose_mg FROM exposures WHERE patient_id = ? ORDER BY time",
                        [patient_id]).fetchall()
    events = con.execute("SELECT time, term, severity FROM adverse_events WHERE patient_id = ? ORDER BY time",
                         [patient_id]).fetchall()
    weights = tuple(Weight(t, float(v)) for t, kind, v in measured if kind == "weight")
    times = [w.time for w in weights]
    sex, birth_year, height_cm = person[0]
    return PatientRecord(
        patient_id=patient_id, sex=str(sex), birth_year=int(birth_year), height_cm=float(height_cm), weights=weights,
        sessions=tuple(Session(t, drug, route, float(mg), float(mg) / _nearest_kg(weights, times, t) if weights else math.nan)
                       for t, drug, route, mg in doses),
        depression=tuple(Reading(t, kind, float(v)) for t, kind, v in measured if kind in DEPRESSION_KINDS),
        vitals=tuple(Reading(t, kind, float(v)) for t, kind, v in measured if kind in VITAL_KINDS),
        adverse_events=tuple(Event(t, term, str(severity)) for t, term, severity in events))


def patient_record(store: Store | str | Path, patient_id: str) -> PatientRecord | None:
    """The patient's record, or None when the store has no such patient."""
    if not isinstance(store, Store):
        with Store(store, read_only=True) as opened:
            return patient_record(opened, patient_id)
    return _read(store.con, patient_id)


class PatientReader:
    """A store kept open read-only for many record lookups from several threads (a web server's pages).

    Opening a store file costs 25-45 ms; a lookup through the open one costs a few ms.  Each lookup runs
    on its own DuckDB cursor (DuckDB connections are not shared across threads).  The database runs
    single-threaded: a lookup scans one row group, and the server's threads are the parallelism."""

    def __init__(self, path: str | Path) -> None:
        self._store = Store(path, read_only=True)
        self._store.con.execute("SET threads = 1")
        self._lock = threading.Lock()

    def record(self, patient_id: str) -> PatientRecord | None:
        with self._lock:
            cursor = self._store.con.cursor()
        try:
            return _read(cursor, patient_id)
        finally:
            cursor.close()

    def close(self) -> None:
        self._store.close()
