"""An optional research-grade validation substudy inside the simulated clinic (``observation.validation_share``).

A random share of patients is measured as nutrition studies measure a validation subsample with
recovery biomarkers (weighed intake, doubly labelled water): one record per week for the baseline
week and the ``wearable_weeks`` weeks after index, without logging noise, under-reporting, device
bias or missed weeks, and none after dropout:

* ``energy_intake_7d_ref`` (kcal/d) — true mean intake of the 7 days before the record's date;
* ``energy_expenditure_7d_ref`` (kcal/d) — the expenditure a perfect device of the clinic's kind
  would estimate (baseline expenditure at the profile weight, plus extra activity, exercise and the
  drug's session-day thermogenesis), the quantity the clinic's wearable measures with error;
* ``energy_expenditure_net_7d_ref`` (kcal/d) — non-activity expenditure: the total above minus the energy
  of the extra activity, as nutrition studies separate it (doubly labelled water minus a research-grade
  accelerometer's activity energy, or indirect calorimetry).  It carries the drug's session-day
  thermogenesis (and an exercise programme's expenditure) but not the activity that improved mood brings,
  so the metabolism pathway can be told from the mood pathway;
* ``activity_7d_ref`` (min/d) — the research-grade accelerometer's mean active minutes (no noise, no
  missed weeks).

These are the error-free versions of the clinic's ``energy_intake_7d`` and ``energy_expenditure_7d``
(:mod:`ketaweight.sources.simulator.wearable`), so mediation can calibrate the clinic's records on the
substudy (regression calibration, :mod:`ketaweight.mechanisms.calibration`).  The substudy's random
numbers come from their own stream, so every other table of a seed is unchanged by it.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ketaweight.sources.simulator.dynamics import WEEK_DAYS, FactualView
from ketaweight.sources.simulator.energy import LIGHT_ACTIVITY_MET_ABOVE_REST
from ketaweight.sources.simulator.population import Population
from ketaweight.sources.simulator.scenario import Scenario
from ketaweight.sources.simulator.wearable import ACTIVITY_RANGE_MIN, INTAKE_RANGE_KCAL, PatientBaseline, Record

SUBSTUDY_STREAM = 0x5B57
"""Mixed into the seed for the substudy's own random stream (``SeedSequence([seed, SUBSTUDY_STREAM])``)."""


def substudy_rng(seed: int) -> np.random.Generator:
    """The substudy's random stream for a simulation seed (independent of the simulator's other streams)."""
    return np.random.default_rng(np.random.SeedSequence([seed, SUBSTUDY_STREAM]))


def validation_records(s: Scenario, pop: Population, view: FactualView, baseline: PatientBaseline,
                       dropped_at: NDArray[np.int64], rng: np.random.Generator) -> list[Record]:
    """The substudy's weekly reference records (empty when ``validation_share`` is 0)."""
    o = s.observation
    if o.validation_share <= 0:
        return []
    grid = view.grid_days
    weeks = np.flatnonzero((grid >= 0) & (grid <= WEEK_DAYS * o.wearable_weeks))
    member = rng.random(pop.n) < o.validation_share
    present = member[None, :] & (weeks[:, None] < dropped_at[None, :])
    w_idx, p_idx = np.nonzero(present)
    g_idx = weeks[w_idx]
    days = grid[g_idx].astype(np.int64)
    midnight = np.zeros(len(days), dtype=np.int64)
    d_intake = view.intake_7d_change[g_idx, p_idx].astype(float)
    d_activity = view.activity_7d_change[g_idx, p_idx].astype(float)
    d_expenditure = view.expenditure_7d_change[g_idx, p_idx].astype(float)
    intake = baseline.intake_kcal[p_idx] + d_intake
    activity_kcal = d_activity * (LIGHT_ACTIVITY_MET_ABOVE_REST / 60.0) * pop.weight0_kg[p_idx]
    net = baseline.intake_kcal[p_idx] + d_expenditure
    expenditure = net + activity_kcal
    return [
        ("energy_intake_7d_ref", "kcal/d", p_idx, days, midnight, np.clip(np.round(intake, 1), *INTAKE_RANGE_KCAL)),
        ("energy_expenditure_7d_ref", "kcal/d", p_idx, days, midnight, np.round(np.clip(expenditure, 500.0, None), 1)),
        ("energy_expenditure_net_7d_ref", "kcal/d", p_idx, days, midnight, np.round(np.clip(net, 500.0, None), 1)),
        ("activity_7d_ref", "min/d", p_idx, days, midnight,
         np.round(np.clip(baseline.activity_change[p_idx] + d_activity, *ACTIVITY_RANGE_MIN), 1) + 0.0),
    ]
