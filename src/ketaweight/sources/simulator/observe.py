"""The observation process: what a ketamine clinic's records would hold.

From the true trajectories of the factual world it makes the canonical tables: visits on a
weekly grid (screening at day −28, assessment at day 0 = time zero, then weekly), missed
visits, dropout after week 2 that depends on the week-2 depression score (non-responders
leave more often — the observed week-2 MADRS explains it, so censoring weights can use it),
scale noise with AR(1) correlation and a weekly cycle, rating noise, under-reported intake,
adverse events on session days at route-specific rates, lifestyle programmes, a
negative-control outcome (resting heart rate, moved by exercise and diet programmes and by
baseline traits, never by ketamine) and the many negative-control measurements of
:mod:`ketaweight.sources.simulator.controls`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from ketaweight.sources.simulator.controls import control_records
from ketaweight.sources.simulator.dynamics import FactualView
from ketaweight.sources.simulator.pd import madrs_to_phq9, madrs_true, natural_improvement
from ketaweight.sources.simulator.population import REGIMEN_NAMES, REGIMENS, Population, Sessions
from ketaweight.sources.simulator.scenario import Scenario
from ketaweight.sources.simulator.substudy import validation_records
from ketaweight.sources.simulator.wearable import INTAKE_RANGE_KCAL, PatientBaseline, recorded_activity, wearable_records

FloatArray = NDArray[np.float64]

DEPRESSION_VISIT_DAYS = (0, 14, 28, 56, 84, 112, 140, 168)
"""Days (relative to index) with MADRS and PHQ-9 ratings, when the visit happens."""
DIARY_VISIT_DAYS = (0, 28, 56, 84)
"""Days with a food diary (energy intake), appetite rating and activity record."""
SEVERITY_SHARES = {"mild": 0.70, "moderate": 0.25, "severe": 0.05}


def patient_ids(n: int) -> pa.Array:
    """Pseudonymous identifiers ``SIM0000001`` … (Arrow string array, built in Arrow compute)."""
    width = max(7, len(str(n)))
    digits = pc.utf8_lpad(pc.cast(pa.array(np.arange(1, n + 1)), pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(pa.scalar("SIM"), digits, "")


def _dict_column(indices: NDArray[np.integer], dictionary: pa.Array) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(indices.astype(np.int32, copy=False)), dictionary)


def _constant_dict_column(value_index: int, length: int, dictionary: pa.Array) -> pa.DictionaryArray:
    """One value repeated ``length`` times, with 8-bit indices when the dictionary is small enough (the
    measurements' kind and unit: 22 bytes a row instead of 28, ≈ 0.8 GB less at a million patients)."""
    index_type = np.int8 if len(dictionary) <= np.iinfo(np.int8).max else np.int32
    return pa.DictionaryArray.from_arrays(pa.array(np.full(length, value_index, dtype=index_type)), dictionary)


def _timestamps(pop: Population, patients: NDArray[np.integer], days: NDArray[np.integer],
                minutes_after_midnight: NDArray[np.integer]) -> pa.Array:
    """index date + days + minutes, as an Arrow timestamp[s] column (integer arithmetic, no copies of datetimes)."""
    index_day = pop.index_date.astype(np.int64)  # days since 1970-01-01
    seconds = (index_day[patients] + days) * 86400 + minutes_after_midnight.astype(np.int64) * 60
    return pa.array(seconds, type=pa.int64()).cast(pa.timestamp("s"))


@dataclass
class _VisitColumns:
    """The Arrow patient, time and unit columns of one set of record arrays, shared by the kinds recorded at
    the same visits (weight and resting heart rate; every negative control): one copy instead of one a kind
    (≈ 0.7 GB at a million patients with 30 controls)."""

    patients: NDArray[np.integer]
    days: NDArray[np.integer]
    minutes: NDArray[np.integer]
    patient_id: pa.DictionaryArray
    time: pa.Array
    units: dict[int, pa.DictionaryArray] = field(default_factory=dict)

    def records(self, patients: NDArray[np.integer], days: NDArray[np.integer], minutes: NDArray[np.integer]) -> bool:
        """Whether a kind's arrays are these very arrays (the same objects, not merely equal values)."""
        return patients is self.patients and days is self.days and minutes is self.minutes

    def unit(self, index: int, names: pa.Array) -> pa.DictionaryArray:
        if index not in self.units:
            self.units[index] = _constant_dict_column(index, len(self.patients), names)
        return self.units[index]


@dataclass(frozen=True)
class Attendance:
    """Which grid visits happen (grid × patients), the observed week-2 MADRS, and per patient
    the first grid index after dropout (``len(grid)`` for those who stay)."""

    attended: NDArray[np.bool_]
    madrs_week2: NDArray[np.float64]
    dropped_at: NDArray[np.int64]


def attendance(s: Scenario, pop: Population, view: FactualView, rng: np.random.Generator) -> Attendance:
    """Which grid visits happen, the observed week-2 MADRS and when patients drop out.

    Screening (first grid day), assessment (day 0) and week 2 always happen; other visits are
    missed at random; dropout after week 2 has a per-visit hazard that rises with the
    observed week-2 MADRS relative to 70% of the assessment score (both recorded).
    """
    o = s.observation
    grid = view.grid_days
    n = pop.n
    miss_p = np.where(grid <= 84, o.missed_visit_prob, o.missed_visit_prob_late)[:, None]
    attended = rng.random((len(grid), n)) >= miss_p
    always = (grid == grid[0]) | (grid == 0) | (grid == 14)
    attended[always] = True
    # Pre-index grid visits other than screening and assessment are not clinic visits.
    attended[(grid < 0) & (grid != grid[0])] = False
    g14 = int(np.flatnonzero(grid == 14)[0])
    madrs14 = np.clip(np.rint(madrs_true(pop.madrs0, view.benefit[g14].astype(float),
                                         natural_improvement(pop.natural_pmax, 14, s.pharmacology.natural_improvement_tau_days))
                               + rng.normal(0, o.madrs_noise_sd, n)), 0, 60)
    hazard = np.clip(o.dropout_hazard * np.exp(o.dropout_per_week2_madrs_point * (madrs14 - 0.7 * pop.madrs_assessed)), 0, 0.5)
    later = grid > 14
    leaves = (rng.random((len(grid), n)) < hazard[None, :]) & later[:, None]
    first_absent = np.where(leaves.any(axis=0), leaves.argmax(axis=0), len(grid))
    attended &= np.arange(len(grid))[:, None] < first_absent[None, :]
    return Attendance(attended, madrs14, first_absent)


def observe(s: Scenario, pop: Population, sessions: Sessions, view: FactualView,
            rng: np.random.Generator, wearable_rng: np.random.Generator,
            controls_rng: np.random.Generator,
            substudy_rng: np.random.Generator | None = None) -> dict[str, pa.Table]:
    """Make the canonical tables (Arrow) from the factual world.  ``sessions`` = factual sessions.

    ``wearable_rng`` draws the wearable/app records only and ``controls_rng`` the negative-control
    measurements only, so the other tables of a seed do not depend on whether (or how) those are made;
    ``substudy_rng`` the validation substudy's members (:mod:`ketaweight.sources.simulator.substudy`;
    None = no substudy).
    """
    o = s.observation
    n = pop.n
    grid = view.grid_days
    ids = patient_ids(n)
    visits = attendance(s, pop, view, rng)
    attended, madrs14 = visits.attended, visits.madrs_week2
    g_idx, p_idx = (a.astype(np.int32) for a in np.nonzero(attended))
    days = grid.astype(np.int32)[g_idx]
    visit_minutes = rng.integers(8 * 60, 17 * 60, size=len(days), dtype=np.int32)

    # --- weight: AR(1) scale noise over the patient's visits + weekly cycle
    innovations = rng.standard_normal(size=attended.shape, dtype=np.float32) * np.float32(o.scale_sd_kg)
    noise = np.empty_like(innovations)
    noise[0] = innovations[0]
    root = np.sqrt(1 - o.scale_ar1**2)
    for g in range(1, len(grid)):
        noise[g] = o.scale_ar1 * noise[g - 1] + root * innovations[g]
    index_weekday = ((pop.index_date.astype(np.int64) + 3) % 7).astype(np.int32)  # 1970-01-01 was a Thursday
    weekday = (index_weekday[p_idx] + days) % 7
    true_w = view.weight_kg[g_idx, p_idx].astype(float)
    weekly = o.weekly_cycle_share * true_w * np.cos(2 * np.pi * np.arange(7) / 7)[weekday]
    weight_obs = np.round(true_w + noise[g_idx, p_idx] + weekly, 1)
    del innovations, noise, weekly, true_w, weekday  # per-visit temporaries: keep peak memory down

    # --- negative-control outcome: resting heart rate (no ketamine effect)
    bmi0 = pop.weight0_kg / pop.height_m**2
    hr_patient = 70 + 0.35 * (bmi0 - 28) + 0.08 * (pop.age - 44) + rng.normal(0, 6, n)
    since_exercise = (days - pop.exercise_start[p_idx]).astype(np.float32)
    ex_adh = np.where(pop.exercise[p_idx] & (since_exercise >= 0),
                      np.exp(np.float32(-np.log(2) / s.confounding.exercise_adherence_half_life_days) * since_exercise),
                      np.float32(0.0))
    del since_exercise
    diet_on = pop.diet[p_idx] & (days >= pop.diet_start[p_idx])
    hr = hr_patient.astype(np.float32)[p_idx] - 5.0 * ex_adh - 2.0 * diet_on
    hr += rng.standard_normal(len(days), dtype=np.float32) * np.float32(4.0)
    hr = np.clip(np.rint(hr), 35, 140)
    del ex_adh, diet_on

    kinds: list[tuple[str, str, NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], FloatArray]] = [
        ("weight", "kg", p_idx, days, visit_minutes, weight_obs),
        ("resting_hr", "bpm", p_idx, days, visit_minutes, hr),
    ]

    # --- depression ratings
    dep = np.isin(grid, DEPRESSION_VISIT_DAYS)[g_idx]
    dp, dd, dg, dm = p_idx[dep], days[dep], g_idx[dep], visit_minutes[dep]
    true_m = madrs_true(pop.madrs0[dp], view.benefit[dg, dp].astype(float),
                        natural_improvement(pop.natural_pmax[dp], dd, s.pharmacology.natural_improvement_tau_days))
    madrs = np.clip(np.rint(true_m + rng.normal(0, o.madrs_noise_sd, len(dp))), 0, 60)
    madrs[dd == 14] = madrs14[dp[dd == 14]]  # the same week-2 rating that drove dropout
    madrs[dd == 0] = pop.madrs_assessed[dp[dd == 0]]  # the assessment rating that drove the decisions
    kinds.append(("madrs", "score", dp, dd, dm, madrs))
    kinds.append(("phq9", "score", dp, dd, dm, madrs_to_phq9(true_m, rng)))

    # --- diaries: intake (under-reported), appetite, activity
    diary = np.isin(grid, DIARY_VISIT_DAYS)[g_idx]
    yp, yd, yg, ym = p_idx[diary], days[diary], g_idx[diary], visit_minutes[diary]
    baseline = PatientBaseline.of(pop, np.clip(rng.normal(o.intake_underreport_mean, o.intake_underreport_sd, n), 0, 0.6))
    d_intake = view.intake_change[yg, yp].astype(float)
    reported = np.round(baseline.reported_intake(yp, d_intake) + rng.normal(0, 120, len(yp)), 0)
    appetite = np.clip(np.rint(5 + d_intake / 100 + rng.normal(0, 1.0, len(yp))), 0, 10)
    activity = baseline.activity_change[yp] + view.activity_change[yg, yp] + rng.normal(0, 10, len(yp))
    kinds += [("energy_intake", "kcal/d", yp, yd, ym, np.clip(reported, *INTAKE_RANGE_KCAL)),
              ("appetite", "score", yp, yd, ym, appetite),
              ("activity", "min/d", yp, yd, ym, recorded_activity(activity))]
    kinds += wearable_records(s, pop, view, baseline, visits.dropped_at, wearable_rng)
    kinds += control_records(s, pop, view, attended, controls_rng)
    if substudy_rng is not None:
        kinds += validation_records(s, pop, view, baseline, visits.dropped_at, substudy_rng)

    kind_names = pa.array([k[0] for k in kinds])
    units = sorted({k[1] for k in kinds})
    unit_names = pa.array(units)
    pieces = []
    visits_of: _VisitColumns | None = None
    kinds.reverse()
    while kinds:  # each kind's numpy arrays are dropped once its Arrow table exists (peak memory)
        i = len(pieces)
        _kind, unit, patients, kind_days, minutes, values = kinds.pop()
        if visits_of is None or not visits_of.records(patients, kind_days, minutes):
            visits_of = _VisitColumns(patients, kind_days, minutes, _dict_column(patients, ids),
                                      _timestamps(pop, patients, kind_days, minutes))
        pieces.append(pa.table({
            "patient_id": visits_of.patient_id,
            "time": visits_of.time,
            "kind": _constant_dict_column(i, len(patients), kind_names),
            "value": pa.array(np.asarray(values, dtype=float)),
            "unit": visits_of.unit(units.index(unit), unit_names),
        }))
        del patients, kind_days, minutes, values
    del visits_of
    measurements = pa.concat_tables(pieces)

    # --- exposures (sessions at 09:00-12:00)
    session_minutes = rng.integers(9 * 60, 12 * 60, size=len(sessions.day))
    # each regimen is recorded as its canonical drug and route (esketamine: its own ingredient, intranasal)
    drug_names, route_names = sorted({d for d, _ in REGIMENS.values()}), sorted({r for _, r in REGIMENS.values()})
    drug_of = np.array([drug_names.index(REGIMENS[r][0]) for r in REGIMEN_NAMES], dtype=np.int32)[sessions.regimen]
    route_of = np.array([route_names.index(REGIMENS[r][1]) for r in REGIMEN_NAMES], dtype=np.int32)[sessions.regimen]
    exposures = pa.table({
        "patient_id": _dict_column(sessions.patient, ids),
        "time": _timestamps(pop, sessions.patient, sessions.day, session_minutes),
        "drug": _dict_column(drug_of, pa.array(drug_names)),
        "dose_mg": pa.array(sessions.dose_mg),
        "route": _dict_column(route_of, pa.array(route_names)),
        "duration_min": pa.array(sessions.minutes),
    })

    # --- adverse events on session days
    term_names = sorted({term for rates in o.ae_rates.values() for term in rates})
    ae_hits, ae_terms = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int32)]
    for regimen, rates in o.ae_rates.items():
        on_regimen = np.flatnonzero(sessions.regimen == REGIMEN_NAMES.index(regimen))
        for term, rate in rates.items():
            hit = on_regimen[rng.random(len(on_regimen)) < rate]
            ae_hits.append(hit)
            ae_terms.append(np.full(len(hit), term_names.index(term), dtype=np.int32))
    hits, terms = np.concatenate(ae_hits), np.concatenate(ae_terms)
    severity = rng.choice(len(SEVERITY_SHARES), size=len(hits), p=list(SEVERITY_SHARES.values()))
    adverse_events = pa.table({
        "patient_id": _dict_column(sessions.patient[hits], ids),
        "time": _timestamps(pop, sessions.patient[hits], sessions.day[hits], session_minutes[hits] + 30),
        "term": _dict_column(terms, pa.array(term_names, pa.string())),
        "severity": _dict_column(severity, pa.array(list(SEVERITY_SHARES))),
    })

    # --- lifestyle programmes
    rows = []
    for flag, start, kind, detail, span in (
        (pop.diet, pop.diet_start, "diet_programme", "behavioural weight-management programme", 84),
        (pop.exercise, pop.exercise_start, "exercise_programme", "supervised exercise programme", 84),
    ):
        who = np.flatnonzero(flag)
        begin = pop.index_date[who] + start[who].astype("timedelta64[D]")
        rows.append((who, begin, begin + np.timedelta64(span, "D"), kind, detail))
    lifestyle = pa.table({
        "patient_id": _dict_column(np.concatenate([r[0] for r in rows]), ids),
        "start": pa.array(np.concatenate([r[1] for r in rows]).astype("datetime64[D]")),
        "end": pa.array(np.concatenate([r[2] for r in rows]).astype("datetime64[D]")),
        "kind": pa.array(np.concatenate([np.full(len(r[0]), r[3]) for r in rows]).astype(str)),
        "detail": pa.array(np.concatenate([np.full(len(r[0]), r[4]) for r in rows]).astype(str)),
    })

    birth_year = (pop.index_date.astype("datetime64[Y]").astype(int) + 1970 - np.floor(pop.age)).astype(int)
    patients = pa.table({
        "patient_id": ids,
        "sex": pa.array(np.where(pop.male, "M", "F")),
        "birth_year": pa.array(birth_year),
        "height_cm": pa.array(np.round(pop.height_m * 100, 1)),
        "atypical_features": pa.array(pop.atypical),
    })
    return {"patients": patients, "exposures": exposures, "measurements": measurements,
            "lifestyle": lifestyle, "adverse_events": adverse_events}
