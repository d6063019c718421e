"""Ground truth from the counterfactual worlds: per-patient and average effects.

Effects are differences of *true* (noise-free) weight change from index (day 0) to the
horizon between worlds that share every random number:

* total effect            = Y(course) − Y(no course)
* effect via a pathway    = Y(course) − Y(course with that pathway switched off)
  (pathways can interact, so the three need not add up to the total; the remainder is
  reported as ``interaction``)
* effect on depression    = MADRS(course) − MADRS(no course) at days 14, 28 and 84
* negative-control effects = exactly 0 by construction (resting heart rate and the control
  measurements ``control_01`` … never depend on ketamine in the model)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from ketaweight.core.schema import CONTROL_KINDS
from ketaweight.sources.simulator.dynamics import Trajectories
from ketaweight.sources.simulator.pd import madrs_true, natural_improvement
from ketaweight.sources.simulator.population import Population
from ketaweight.sources.simulator.scenario import Scenario

PATHWAYS = ("appetite", "metabolism", "mood")
MADRS_TRUTH_DAYS = (14, 28, 84)
"""Days (after index) at which the true effect on MADRS is reported."""


def weight_change(traj: Trajectories, world: int, horizon_day: int) -> tuple[np.ndarray, np.ndarray]:
    """True weight change (kg, %) from day 0 to ``horizon_day`` in one world."""
    grid = list(traj.grid_days)
    w0 = traj.weight_kg[world, grid.index(0)].astype(float)
    wh = traj.weight_kg[world, grid.index(horizon_day)].astype(float)
    return wh - w0, 100.0 * (wh - w0) / w0


def _summary(values: np.ndarray, treated: np.ndarray) -> dict[str, float]:
    return {
        "ate": float(values.mean()),
        "att": float(values[treated].mean()) if treated.any() else float("nan"),
        "atc": float(values[~treated].mean()) if (~treated).any() else float("nan"),
    }


def compute_truth(s: Scenario, pop: Population, traj: Trajectories, horizon_day: int
                  ) -> tuple[dict[str, Any], pa.Table]:
    """Average truths (JSON-ready dict) and the per-patient truth table."""
    i0, i1 = traj.world_index("no_course"), traj.world_index("course")
    kg0, pct0 = weight_change(traj, i0, horizon_day)
    kg1, pct1 = weight_change(traj, i1, horizon_day)
    effect_kg, effect_pct = kg1 - kg0, pct1 - pct0
    treated = pop.treated

    per_patient: dict[str, Any] = {
        "treated": treated,
        "weight_change_course_kg": kg1,
        "weight_change_no_course_kg": kg0,
        "effect_kg": effect_kg,
        "effect_pct": effect_pct,
    }
    pathways: dict[str, Any] = {}
    for name in PATHWAYS:
        world = f"course_without_{name}"
        if world in [w.name for w in traj.worlds]:
            kg_off, _ = weight_change(traj, traj.world_index(world), horizon_day)
            via = kg1 - kg_off
        else:  # pathway switched off in the scenario: it carries nothing, exactly
            via = np.zeros(pop.n)
        per_patient[f"effect_via_{name}_kg"] = via
        pathways[name] = _summary(via, treated)
    interaction = effect_kg - sum(per_patient[f"effect_via_{p}_kg"] for p in PATHWAYS)
    pathways["interaction"] = _summary(interaction, treated)

    madrs: dict[str, Any] = {}
    for day in MADRS_TRUTH_DAYS:
        g = list(traj.grid_days).index(day)
        nat = natural_improvement(pop.natural_pmax, day, s.pharmacology.natural_improvement_tau_days)
        effect = (madrs_true(pop.madrs0, traj.benefit[i1, g].astype(float), nat)
                  - madrs_true(pop.madrs0, np.zeros(pop.n), nat))
        per_patient[f"effect_madrs_day{day}"] = effect
        madrs[f"day_{day}"] = _summary(effect, treated)
    observed_change = np.where(treated, kg1, kg0)
    crude = float(observed_change[treated].mean() - observed_change[~treated].mean()) if 0 < treated.sum() < pop.n else float("nan")

    summary = {
        "horizon_days": horizon_day,
        "n_patients": pop.n,
        "n_treated": int(treated.sum()),
        "weight_change_kg": _summary(effect_kg, treated),
        "weight_change_pct": _summary(effect_pct, treated),
        "pathways_kg": pathways,
        "madrs_points": madrs,
        "negative_control_resting_hr_bpm": {"ate": 0.0, "att": 0.0, "atc": 0.0},
        "negative_controls": {kind: {"ate": 0.0, "att": 0.0, "atc": 0.0}
                              for kind in CONTROL_KINDS[: s.negative_controls.n_outcomes]},
        "individual_effect_kg": {
            "sd": float(effect_kg.std()),
            "p05": float(np.quantile(effect_kg, 0.05)),
            "p50": float(np.quantile(effect_kg, 0.50)),
            "p95": float(np.quantile(effect_kg, 0.95)),
            "share_losing_more_than_1kg": float((effect_kg < -1.0).mean()),
        },
        "crude_difference_true_weight_change_kg": crude,
        "notes": [
            "Effects are differences of true (noise-free) weight change from index to the horizon "
            "between worlds with common random numbers; 'course' means the patient's planned course "
            "with their own adherence (an intention-to-treat-like contrast of starting a course).",
            "Pathway effects switch one pathway off in the course world; pathways interact, so the "
            "remainder is reported as 'interaction'.",
        ],
    }
    return summary, pa.table({k: pa.array(v) for k, v in per_patient.items()})
