"""Weekly records from a wrist wearable and a food-logging app.

Sparse clinic records cannot see the article's appetite and metabolism pathways: ketamine's
intake and expenditure changes happen on and just after session days, between four-weekly
food diaries, and nothing in a clinic chart measures energy expenditure.  Some patients share
a wearable and a food-logging app; what the clinic receives is one summary per week, dated at
midnight of the weekly visit day and covering the 7 days before it:

* ``energy_intake_7d`` (kcal/d) — mean logged intake, under-reported by the patient's own
  share (as their food diaries) plus noise;
* ``activity_7d`` (min/d) — mean active minutes;
* ``energy_expenditure_7d`` (kcal/d) — the device's estimate of total expenditure: baseline
  expenditure at the profile weight, plus what it sees of extra activity (1.5 MET above rest at
  the profile weight), exercise and the drug's session-day thermogenesis (ketamine is
  sympathomimetic: heart rate rises, and heart-rate-informed estimates follow), times a
  per-patient device bias.  It does not see adaptive thermogenesis or the fall of expenditure
  with weight, as devices that use a static profile weight do not.

Records exist for a random ``wearable_share`` of patients, for the baseline week and
``wearable_weeks`` weeks after index, with weeks missing at random and none after dropout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ketaweight.sources.simulator.dynamics import WEEK_DAYS, FactualView
from ketaweight.sources.simulator.energy import LIGHT_ACTIVITY_MET_ABOVE_REST, mifflin_st_jeor_rmr
from ketaweight.sources.simulator.population import Population
from ketaweight.sources.simulator.scenario import Scenario

FloatArray = NDArray[np.float64]
Record = tuple[str, str, NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], FloatArray]
"""(kind, unit, patient indices, days after index, minutes after midnight, values)."""

INTAKE_RANGE_KCAL = (300.0, 9000.0)
"""Reported intake is clipped to this range (kcal/d), as a diary app's plausibility check."""
ACTIVITY_RANGE_MIN = (0.0, 600.0)
"""Recorded activity is clipped to this range (min/d)."""


def recorded_activity(minutes: FloatArray) -> FloatArray:
    """Whole minutes per day within :data:`ACTIVITY_RANGE_MIN` (``+ 0.0`` turns −0 into 0)."""
    return np.clip(np.round(minutes), *ACTIVITY_RANGE_MIN) + 0.0


@dataclass(frozen=True)
class PatientBaseline:
    """Per-patient quantities every intake or activity record starts from."""

    intake_kcal: FloatArray  # baseline intake = expenditure at balance, PAL × RMR (kcal/d)
    underreport_share: FloatArray  # share of intake a patient leaves out of every record
    activity_change: FloatArray  # baseline recorded activity (min/d), rising with PAL

    @classmethod
    def of(cls, pop: Population, underreport_share: FloatArray) -> PatientBaseline:
        rmr = mifflin_st_jeor_rmr(pop.weight0_kg, pop.height_m, pop.age, pop.male)
        return cls(pop.pal * rmr, underreport_share, np.clip(45 + 120 * (pop.pal - 1.55), 5, None))

    def reported_intake(self, patients: NDArray[np.integer], intake_change_kcal: FloatArray) -> FloatArray:
        """What a patient reports of a true intake of baseline + change (kcal/d), before noise."""
        return (self.intake_kcal[patients] + intake_change_kcal) * (1 - self.underreport_share[patients])


def wearable_records(s: Scenario, pop: Population, view: FactualView, baseline: PatientBaseline,
                     dropped_at: NDArray[np.int64], rng: np.random.Generator) -> list[Record]:
    """The weekly wearable/app records of the factual world (empty when ``wearable_share`` is 0)."""
    o = s.observation
    grid = view.grid_days
    weeks = np.flatnonzero((grid >= 0) & (grid <= WEEK_DAYS * o.wearable_weeks))
    wears = rng.random(pop.n) < o.wearable_share
    present = (rng.random((len(weeks), pop.n)) >= o.wearable_missing_week_prob) & wears[None, :]
    present &= weeks[:, None] < dropped_at[None, :]
    device_bias = np.clip(rng.normal(0.0, o.wearable_expenditure_bias_cv, pop.n), -0.5, 0.5)
    w_idx, p_idx = np.nonzero(present)
    g_idx = weeks[w_idx]
    days = grid[g_idx].astype(np.int64)
    midnight = np.zeros(len(days), dtype=np.int64)
    n = len(days)

    d_intake = view.intake_7d_change[g_idx, p_idx].astype(float)
    d_activity = view.activity_7d_change[g_idx, p_idx].astype(float)
    d_expenditure = view.expenditure_7d_change[g_idx, p_idx].astype(float)
    intake = baseline.reported_intake(p_idx, d_intake) + rng.normal(0, o.app_intake_noise_kcal, n)
    activity = baseline.activity_change[p_idx] + d_activity + rng.normal(0, o.wearable_activity_noise_min, n)
    activity_kcal = d_activity * (LIGHT_ACTIVITY_MET_ABOVE_REST / 60.0) * pop.weight0_kg[p_idx]
    expenditure = ((baseline.intake_kcal[p_idx] + d_expenditure + activity_kcal) * (1 + device_bias[p_idx])
                   + rng.normal(0, o.wearable_expenditure_noise_kcal, n))
    return [
        ("energy_intake_7d", "kcal/d", p_idx, days, midnight, np.clip(np.round(intake), *INTAKE_RANGE_KCAL)),
        ("activity_7d", "min/d", p_idx, days, midnight, recorded_activity(activity)),
        ("energy_expenditure_7d", "kcal/d", p_idx, days, midnight, np.round(np.clip(expenditure, 500.0, None))),
    ]
