"""Daily dynamics of several "worlds" at once: the same patients, with or without the
ketamine course and with pathways switched on or off, stepped together (common random
numbers: every world sees the same patients, programmes, holidays and noise).

The article's three pathways enter the Hall energy balance as:

* appetite   — intake change on a session day and the day after (``appetite_dose_day_kcal``)
  plus a sustained change proportional to decaying drug exposure A (1 unit = a typical IV
  session's AUC; half-life ``appetite_half_life_days``);
* metabolism — extra expenditure on session days (``metabolism_dose_day_kcal``);
* mood       — the drug's share of the MADRS improvement, M0·(1−P)·B, raises light activity
  (``activity_min_per_madrs_point``) and moves intake by depression subtype.

The natural course of depression (P) moves activity and intake the same way in every world,
so it never contributes to an effect.  Besides the states at grid days, the loop keeps the
mean intake, activity and extra expenditure of the 7 days before each grid day, which the
wearable/app records summarise.  Units: kcal/day, minutes/day, kg, days.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ketaweight.sources.simulator import nonlinear
from ketaweight.sources.simulator.energy import LIGHT_ACTIVITY_MET_ABOVE_REST, EnergyState
from ketaweight.sources.simulator.pd import benefit_after_session, natural_improvement
from ketaweight.sources.simulator.population import Population, Sessions
from ketaweight.sources.simulator.scenario import Scenario

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class World:
    """One counterfactual world: whether the planned course is given, and which pathways act."""

    name: str
    course: bool
    appetite: bool
    metabolism: bool
    mood: bool


@dataclass(frozen=True)
class Trajectories:
    """True (noise-free) states at the grid days, float32, shape (worlds, grid days, patients).

    ``benefit``, ``intake_change``, ``activity_change`` and the ``*_7d`` means are kept only for
    the first ``n_detailed`` worlds (those observation needs); ``weight_kg`` for all.  The
    ``*_7d`` arrays are means over the :data:`WEEK_DAYS` days before the grid day (what a
    wearable or a food-logging app summarises at a weekly visit); NaN where that week was not
    simulated (the first grid day).
    """

    worlds: tuple[World, ...]
    grid_days: NDArray[np.int64]
    weight_kg: NDArray[np.float32]
    benefit: NDArray[np.float32]
    intake_change: NDArray[np.float32]  # kcal/day vs baseline, on the grid day
    activity_change: NDArray[np.float32]  # extra minutes/day of activity vs baseline
    intake_7d_change: NDArray[np.float32]  # kcal/day vs baseline, mean of the week before the grid day
    activity_7d_change: NDArray[np.float32]  # extra minutes/day of activity, mean of the week before
    expenditure_7d_change: NDArray[np.float32]  # extra expenditure (drug + exercise, not activity), kcal/day, mean of the week before
    lifestyle_kg: NDArray[np.float32]  # (grid days, patients): the patient's own energy balance so far, kg-equivalents (every world)

    def world_index(self, name: str) -> int:
        return [w.name for w in self.worlds].index(name)


def grid_days(s: Scenario) -> NDArray[np.int64]:
    """Visit grid relative to index: −pre_index_days … follow_up_days, step visit_interval_days."""
    o = s.observation
    start = -(o.pre_index_days // o.visit_interval_days) * o.visit_interval_days
    return np.arange(start, o.follow_up_days + 1, o.visit_interval_days)


ENERGY_DENSITY_KCAL_PER_KG = 11_500.0
"""kcal per kg-equivalent of the shared energy balance: what Hall's model turns a sustained intake change
into over the 12 weeks after index (about two-thirds of the 7,700 kcal/kg yardstick; the thermic effect,
adaptive thermogenesis and the lower expenditure of a lighter body absorb the rest: 0.64-0.69 for a
diet programme and for constant shifts at 70-95 kg).  A first-order likeness of weight, not a weight."""

WEEK_DAYS = 7
"""Days summarised by the weekly ``*_7d`` means (the days before a grid day)."""

CHUNK_PATIENTS = 32_768
"""Patients stepped together in one chunk: small enough for the working set to stay in cache,
fixed so results never depend on the number of threads."""

HOLIDAY_FIRST_DOY = 323  # 20 November (0-based day of year, ignoring leap days)
HOLIDAY_LENGTH_DAYS = 47  # 20 November - 5 January


def _sessions_by_day(sessions: Sessions, first_day: int, last_day: int) -> list[tuple[NDArray[np.int64], FloatArray]]:
    """For each day in [first_day, last_day], the (patients, AUCs) of that day's sessions."""
    order = np.argsort(sessions.day, kind="stable")
    days = sessions.day[order]
    bounds = np.searchsorted(days, np.arange(first_day, last_day + 2))
    return [
        (sessions.patient[order[a:b]], sessions.auc[order[a:b]]) for a, b in zip(bounds[:-1], bounds[1:])
    ]


def simulate_worlds(
    s: Scenario,
    pop: Population,
    sessions: Sessions,
    worlds: tuple[World, ...],
    *,
    n_detailed: int,
    on_patients: Callable[[int], None] | None = None,
    threads: int | None = None,
) -> Trajectories:
    """Step all ``worlds`` together, one Euler day at a time, from the pre-index start.

    ``sessions`` (sorted by patient) are applied in every world with ``course=True``.
    Patients never interact, so they are simulated in fixed chunks of
    :data:`CHUNK_PATIENTS` on a thread pool (numpy releases the GIL in array operations);
    ``on_patients(k)`` is called as each chunk of ``k`` patients finishes.
    """
    grid = grid_days(s)
    n, n_worlds = pop.n, len(worlds)
    shape, detail_shape = (n_worlds, len(grid), n), (n_detailed, len(grid), n)
    out = Trajectories(
        worlds=worlds, grid_days=grid, weight_kg=np.empty(shape, dtype=np.float32),
        lifestyle_kg=np.empty((len(grid), n), dtype=np.float32),
        **{name: np.empty(detail_shape, dtype=np.float32)
           for name in ("benefit", "intake_change", "activity_change", "intake_7d_change", "activity_7d_change", "expenditure_7d_change")},
    )
    bounds = [(lo, min(lo + CHUNK_PATIENTS, n)) for lo in range(0, n, CHUNK_PATIENTS)]

    def run(lo_hi: tuple[int, int]) -> None:
        lo, hi = lo_hi
        a, b = np.searchsorted(sessions.patient, [lo, hi])
        chunk_sessions = sessions.subset(slice(a, b))
        chunk_sessions = Sessions(**{**chunk_sessions.__dict__, "patient": chunk_sessions.patient - lo})
        _simulate_chunk(s, pop.slice(lo, hi), chunk_sessions, worlds, n_detailed, out, lo, hi)
        if on_patients is not None:
            on_patients(hi - lo)

    workers = threads or os.cpu_count() or 1
    if workers == 1 or len(bounds) == 1:
        for lo_hi in bounds:
            run(lo_hi)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(run, bounds))
    return out


def _simulate_chunk(s: Scenario, pop: Population, sessions: Sessions, worlds: tuple[World, ...],
                    n_detailed: int, out: Trajectories, lo: int, hi: int) -> None:
    """Simulate one chunk of patients and write its columns [lo, hi) of ``out``."""
    c, pw, ph = s.confounding, s.pathways, s.pharmacology
    n, n_worlds = pop.n, len(worlds)
    grid = out.grid_days
    first_day, last_day = int(grid[0]), int(grid[-1])
    by_day = _sessions_by_day(sessions, first_day, last_day)

    appetite_on = np.array([w.course and w.appetite for w in worlds], dtype=float)[:, None]
    metabolism_on = np.array([w.course and w.metabolism for w in worlds], dtype=float)[:, None]
    mood_on = np.array([w.course and w.mood for w in worlds], dtype=float)[:, None]
    course_rows = np.flatnonzero([w.course for w in worlds])

    energy = EnergyState.at_balance(pop.weight0_kg, pop.height_m, pop.age, pop.male, pop.pal)
    energy.fat_kg = np.repeat(energy.fat_kg[None, :], n_worlds, axis=0)
    energy.lean_kg = np.repeat(energy.lean_kg[None, :], n_worlds, axis=0)
    energy.adaptive_thermogenesis = np.zeros((n_worlds, n))

    benefit = np.zeros((n_worlds, n))
    exposure = np.zeros((n_worlds, n))  # decaying drug exposure A, typical-session units
    dosed_today = np.zeros((n_worlds, n), dtype=bool)
    dosed_yesterday = np.zeros((n_worlds, n), dtype=bool)
    benefit_decay = 0.5 ** (1.0 / ph.benefit_half_life_days)
    exposure_decay = 0.5 ** (1.0 / pw.appetite_half_life_days)
    intake_per_point = np.where(pop.atypical, pw.intake_kcal_per_madrs_point_atypical,
                                pw.intake_kcal_per_madrs_point_typical)
    # Programme effects decay exponentially from their start: coef_i·exp(−k·day) for day ≥ start_i.
    diet_k = np.log(2.0) / c.diet_adherence_half_life_days
    exercise_k = np.log(2.0) / c.exercise_adherence_half_life_days
    diet_coef = np.where(pop.diet, np.exp(diet_k * pop.diet_start), 0.0)
    exercise_coef = np.where(pop.exercise, np.exp(exercise_k * pop.exercise_start), 0.0)
    holiday_offset = ((HOLIDAY_FIRST_DOY - pop.index_doy) % 365).astype(np.int16)
    unmeasured = c.unmeasured_intake_kcal_per_sd * pop.motivation
    bmi0 = pop.weight0_kg / pop.height_m**2
    extra_intake = (nonlinear.intake_from_index(s, bmi0, pop.madrs_assessed, pop.age)
                    if nonlinear.has_nonlinear_intake(s) else None)
    factor = (nonlinear.effect_factor(s, bmi0, ~pop.male, pop.age, pop.atypical)
              if nonlinear.has_modification(s) else None)
    grid_pos = {int(d): i for i, d in enumerate(grid)}
    # Weekly means: day d counts towards the next grid day G > d when G − d ≤ WEEK_DAYS.
    next_grid = np.searchsorted(grid, np.arange(first_day, last_day + 1), side="right")
    week_sums = np.zeros((3, n_detailed, n))  # intake, activity, expenditure
    lifestyle_kcal = np.zeros(n)  # the shared inputs' net energy since the first day, kcal
    activity_kcal_per_min = LIGHT_ACTIVITY_MET_ABOVE_REST / 60.0 * pop.weight0_kg

    for offset, day in enumerate(range(first_day, last_day + 1)):
        benefit *= benefit_decay
        exposure *= exposure_decay
        dosed_yesterday, dosed_today = dosed_today, dosed_yesterday
        dosed_today[:] = False
        g = grid_pos.get(day)
        if g is not None:  # visits are before the day's session (pre-dose ratings)
            out.weight_kg[:, g, lo:hi] = energy.weight_kg
            out.lifestyle_kg[g, lo:hi] = lifestyle_kcal / ENERGY_DENSITY_KCAL_PER_KG
            out.benefit[:, g, lo:hi] = benefit[:n_detailed]
            week_complete = day - first_day >= WEEK_DAYS
            for target, sums in zip((out.intake_7d_change, out.activity_7d_change, out.expenditure_7d_change), week_sums):
                target[:, g, lo:hi] = sums / WEEK_DAYS if week_complete else np.nan
            week_sums[:] = 0.0
        patients, auc = by_day[offset]
        if len(patients) and len(course_rows):
            rows = np.ix_(course_rows, patients)
            benefit[rows] = benefit_after_session(benefit[rows], pop.emax[patients], auc, ph.ec50_auc_mg_h_per_l)
            exposure[rows] += auc / pw.typical_auc_mg_h_per_l
            dosed_today[rows] = True

        # Inputs shared by every world (the patients' own lives).
        natural_points = pop.madrs0 * natural_improvement(pop.natural_pmax, day, ph.natural_improvement_tau_days)
        diet_kcal = c.diet_kcal * np.exp(-diet_k * day) * diet_coef * (day >= pop.diet_start)
        ex_adh = np.exp(-exercise_k * day) * exercise_coef * (day >= pop.exercise_start)
        holiday = ((day - holiday_offset) % 365) < HOLIDAY_LENGTH_DAYS
        shared_intake = (diet_kcal + (c.exercise_compensation * c.exercise_kcal) * ex_adh
                         + c.holiday_kcal * holiday + unmeasured + intake_per_point * natural_points)
        if extra_intake is not None and day >= 0:
            shared_intake = shared_intake + extra_intake
        shared_activity = c.exercise_activity_min * ex_adh + pw.activity_min_per_madrs_point * natural_points
        shared_expenditure = c.exercise_kcal * ex_adh
        lifestyle_kcal += shared_intake - shared_expenditure - activity_kcal_per_min * shared_activity

        # Drug-induced inputs, per world.
        drug_points = mood_on * ((pop.madrs0 - natural_points) * benefit)
        appetite_kcal = appetite_on * (pw.appetite_dose_day_kcal * (dosed_today | dosed_yesterday)
                                       + pw.appetite_sustained_kcal * exposure)
        drug_expenditure = metabolism_on * pw.metabolism_dose_day_kcal * dosed_today
        if factor is not None:
            appetite_kcal = appetite_kcal * factor
            drug_expenditure = drug_expenditure * factor
        intake = shared_intake + appetite_kcal + intake_per_point * drug_points
        activity = shared_activity + pw.activity_min_per_madrs_point * drug_points
        expenditure = shared_expenditure + drug_expenditure
        if g is not None:
            out.intake_change[:, g, lo:hi] = intake[:n_detailed]
            out.activity_change[:, g, lo:hi] = activity[:n_detailed]
        nxt = next_grid[offset]
        if nxt < len(grid) and grid[nxt] - day <= WEEK_DAYS:  # each is (worlds, patients)
            for sums, value in zip(week_sums, (intake, activity, expenditure)):
                sums += value[:n_detailed]
        energy.step(intake, expenditure, activity)


@dataclass(frozen=True)
class FactualView:
    """True states of the factual world at grid days, shape (grid days, patients)."""

    grid_days: NDArray[np.int64]
    weight_kg: NDArray[np.float32]
    benefit: NDArray[np.float32]
    intake_change: NDArray[np.float32]
    activity_change: NDArray[np.float32]
    intake_7d_change: NDArray[np.float32]  # means over the week before the grid day (Trajectories)
    activity_7d_change: NDArray[np.float32]
    expenditure_7d_change: NDArray[np.float32]
    lifestyle_kg: NDArray[np.float32]  # shared by every world (Trajectories)
