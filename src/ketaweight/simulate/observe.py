"""The observation process: what a ketamine clinic's records would hold.

From the true trajectories of the factual world it makes the canonical tables: visits on a
weekly grid (screening at day −28, assessment at day 0 = time zero, then weekly), missed
visits, dropout after week 2 that depends on the week-2 depression score (non-responders
leave more often — the observed week-2 MADRS explains it, so censoring weights can use it),
scale noise with AR(1) correlation and a weekly cycle, rating noise, under-reported intake,
adverse events on session days at route-specific rates, lifestyle programmes and a
negative-control outcome (resting heart rate, moved by exercise and diet programmes and by
baseline traits, never by ketamine).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from ketaweight.simulate.energy import mifflin_st_jeor_rmr
from ketaweight.simulate.pd import madrs_to_phq9, madrs_true, natural_improvement
from ketaweight.simulate.population import Population, Sessions
from ketaweight.simulate.scenario import Scenario

FloatArray = NDArray[np.float64]

DEPRESSION_VISIT_DAYS = (0, 14, 28, 56, 84, 112, 140, 168)
"""Days (relative to index) with MADRS and PHQ-9 ratings, when the visit happens."""
DIARY_VISIT_DAYS = (0, 28, 56, 84)
"""Days with a food diary (energy intake), appetite rating and activity record."""
SEVERITY_SHARES = {"mild": 0.70, "moderate": 0.25, "severe": 0.05}


@dataclass(frozen=True)
class FactualView:
    """True states of the factual world at grid days, shape (grid days, patients)."""

    grid_days: NDArray[np.int64]
    weight_kg: NDArray[np.float32]
    benefit: NDArray[np.float32]
    intake_change: NDArray[np.float32]
    activity_min: NDArray[np.float32]


def patient_ids(n: int) -> pa.Array:
    """Pseudonymous identifiers ``SIM0000001`` … as a dictionary-encoded Arrow array."""
    width = max(7, len(str(n)))
    return pa.array([f"SIM{i:0{width}d}" for i in range(1, n + 1)])


def _dict_column(indices: NDArray[np.int64], dictionary: pa.Array) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(indices.astype(np.int32)), dictionary)


def _timestamps(pop: Population, patients: NDArray[np.int64], days: NDArray[np.int64],
                minutes_after_midnight: NDArray[np.int64]) -> pa.Array:
    base = pop.index_date[patients].astype("datetime64[m]")
    t = base + days.astype("timedelta64[D]") + minutes_after_midnight.astype("timedelta64[m]")
    return pa.array(t.astype("datetime64[s]"))


def attendance(s: Scenario, pop: Population, view: FactualView, rng: np.random.Generator) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    """Which grid visits happen (grid × patients) and the observed week-2 MADRS.

    Screening (first grid day), assessment (day 0) and week 2 always happen; other visits are
    missed at random; dropout after week 2 has a per-visit hazard that rises with the
    observed week-2 MADRS relative to 70% of the baseline score.
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
    hazard = np.clip(o.dropout_hazard * np.exp(o.dropout_per_week2_madrs_point * (madrs14 - 0.7 * pop.madrs0)), 0, 0.5)
    later = grid > 14
    leaves = (rng.random((len(grid), n)) < hazard[None, :]) & later[:, None]
    dropped = np.cumsum(leaves, axis=0) > 0
    attended &= ~dropped
    return attended, madrs14


def observe(s: Scenario, pop: Population, sessions: Sessions, view: FactualView,
            rng: np.random.Generator) -> dict[str, pa.Table]:
    """Make the canonical tables (Arrow) from the factual world.  ``sessions`` = factual sessions."""
    o = s.observation
    n = pop.n
    grid = view.grid_days
    ids = patient_ids(n)
    attended, madrs14 = attendance(s, pop, view, rng)
    g_idx, p_idx = np.nonzero(attended)
    days = grid[g_idx]
    visit_minutes = rng.integers(8 * 60, 17 * 60, size=len(days))

    # --- weight: AR(1) scale noise over the patient's visits + weekly cycle
    innovations = rng.normal(0.0, o.scale_sd_kg, size=attended.shape)
    noise = np.empty_like(innovations)
    noise[0] = innovations[0]
    root = np.sqrt(1 - o.scale_ar1**2)
    for g in range(1, len(grid)):
        noise[g] = o.scale_ar1 * noise[g - 1] + root * innovations[g]
    weekday = ((pop.index_date[p_idx] + days.astype("timedelta64[D]")).astype("datetime64[D]").astype(np.int64) + 3) % 7
    true_w = view.weight_kg[g_idx, p_idx].astype(float)
    weekly = o.weekly_cycle_share * true_w * np.cos(2 * np.pi * weekday / 7)
    weight_obs = np.round(true_w + noise[g_idx, p_idx] + weekly, 1)

    # --- negative-control outcome: resting heart rate (no ketamine effect)
    bmi0 = pop.weight0_kg / pop.height_m**2
    hr_patient = 70 + 0.35 * (bmi0 - 28) + 0.08 * (pop.age - 44) + rng.normal(0, 6, n)
    ex_adh = np.where(pop.exercise[p_idx] & (days >= pop.exercise_start[p_idx]),
                      np.exp(-np.log(2) / s.confounding.exercise_adherence_half_life_days * (days - pop.exercise_start[p_idx])), 0.0)
    diet_on = pop.diet[p_idx] & (days >= pop.diet_start[p_idx])
    hr = np.rint(hr_patient[p_idx] - 5.0 * ex_adh - 2.0 * diet_on + rng.normal(0, 4, len(days)))
    hr = np.clip(hr, 35, 140)

    kinds: list[tuple[str, str, NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], FloatArray]] = [
        ("weight", "kg", p_idx, days, visit_minutes, weight_obs),
        ("resting_hr", "bpm", p_idx, days, visit_minutes, hr),
    ]

    # --- depression ratings
    dep = np.isin(days, DEPRESSION_VISIT_DAYS)
    dp, dd, dg, dm = p_idx[dep], days[dep], g_idx[dep], visit_minutes[dep]
    true_m = madrs_true(pop.madrs0[dp], view.benefit[dg, dp].astype(float),
                        natural_improvement(pop.natural_pmax[dp], dd, s.pharmacology.natural_improvement_tau_days))
    madrs = np.clip(np.rint(true_m + rng.normal(0, o.madrs_noise_sd, len(dp))), 0, 60)
    madrs[dd == 14] = madrs14[dp[dd == 14]]  # the same week-2 rating that drove dropout
    kinds.append(("madrs", "score", dp, dd, dm, madrs))
    kinds.append(("phq9", "score", dp, dd, dm, madrs_to_phq9(true_m, rng)))

    # --- diaries: intake (under-reported), appetite, activity
    diary = np.isin(days, DIARY_VISIT_DAYS)
    yp, yd, yg, ym = p_idx[diary], days[diary], g_idx[diary], visit_minutes[diary]
    rmr = mifflin_st_jeor_rmr(pop.weight0_kg, pop.height_m, pop.age, pop.male)
    intake0 = pop.pal * rmr
    under = np.clip(rng.normal(o.intake_underreport_mean, o.intake_underreport_sd, n), 0, 0.6)
    d_intake = view.intake_change[yg, yp].astype(float)
    reported = np.round((intake0[yp] + d_intake) * (1 - under[yp]) + rng.normal(0, 120, len(yp)), 0)
    appetite = np.clip(np.rint(5 + d_intake / 100 + rng.normal(0, 1.0, len(yp))), 0, 10)
    base_activity = np.clip(45 + 120 * (pop.pal - 1.55), 5, None)
    activity = np.clip(np.round(base_activity[yp] + view.activity_min[yg, yp] + rng.normal(0, 10, len(yp)), 0), 0, 600)
    kinds += [("energy_intake", "kcal/d", yp, yd, ym, np.clip(reported, 300, 9000)),
              ("appetite", "score", yp, yd, ym, appetite),
              ("activity", "min/d", yp, yd, ym, activity)]

    kind_names = pa.array([k[0] for k in kinds])
    units = sorted({k[1] for k in kinds})
    unit_names = pa.array(units)
    measurements = pa.table({
        "patient_id": _dict_column(np.concatenate([k[2] for k in kinds]), ids),
        "time": _timestamps(pop, np.concatenate([k[2] for k in kinds]), np.concatenate([k[3] for k in kinds]),
                            np.concatenate([k[4] for k in kinds])),
        "kind": _dict_column(np.concatenate([np.full(len(k[2]), i) for i, k in enumerate(kinds)]), kind_names),
        "value": pa.array(np.concatenate([k[5] for k in kinds]).astype(float)),
        "unit": _dict_column(np.concatenate([np.full(len(k[2]), units.index(k[1])) for k in kinds]), unit_names),
    })

    # --- exposures (sessions at 09:00-12:00)
    session_minutes = rng.integers(9 * 60, 12 * 60, size=len(sessions.day))
    route_names = np.where(sessions.route == "esketamine", "intranasal", sessions.route)
    exposures = pa.table({
        "patient_id": _dict_column(sessions.patient, ids),
        "time": _timestamps(pop, sessions.patient, sessions.day, session_minutes),
        "drug": pa.array(sessions.drug.astype(str)),
        "dose_mg": pa.array(sessions.dose_mg),
        "route": pa.array(route_names.astype(str)),
        "duration_min": pa.array(sessions.minutes),
    })

    # --- adverse events on session days
    ae_p, ae_t, ae_term = [], [], []
    for route, rates in o.ae_rates.items():
        on_route = np.flatnonzero(sessions.route == route)
        for term, rate in rates.items():
            hit = on_route[rng.random(len(on_route)) < rate]
            ae_p.append(hit)
            ae_term.append(np.full(len(hit), term, dtype=object))
    hits = np.concatenate(ae_p) if ae_p else np.zeros(0, dtype=np.int64)
    terms = np.concatenate(ae_term) if ae_term else np.zeros(0, dtype=object)
    sev_keys = list(SEVERITY_SHARES)
    severity = np.array(sev_keys)[rng.choice(len(sev_keys), size=len(hits), p=list(SEVERITY_SHARES.values()))]
    adverse_events = pa.table({
        "patient_id": _dict_column(sessions.patient[hits], ids),
        "time": _timestamps(pop, sessions.patient[hits], sessions.day[hits], session_minutes[hits] + 30),
        "term": pa.array(terms.astype(str)),
        "severity": pa.array(severity.astype(str)),
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
