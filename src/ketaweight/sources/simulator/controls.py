"""Negative-control outcomes: measurements the drug cannot change that share weight's confounding.

OHDSI studies calibrate every estimate with 50-100 negative controls; a simulated clinic records
``negative_controls.n_outcomes`` of them as measurement kinds ``control_01`` … (see
:class:`ketaweight.sources.simulator.scenario.NegativeControls` for the model).  They follow the
patient's own energy balance, L_i(t) — the inputs every counterfactual world shares: diet and
exercise programmes, holiday eating, the unmeasured habits of motivated patients
(``confounding.unmeasured_intake_kcal_per_sd``) and the natural course of depression — plus a
drift with measured baseline traits, so they are confounded as weight is, by the same causes and
with the same switchable unmeasured confounder, but the drug never moves them: their true effect
is exactly 0 for every patient.  They are measured at the visits of ``negative_controls.days``
(the assessment and the 12-week visit by default) when those visits happen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ketaweight.core.schema import CONTROL_KINDS
from ketaweight.sources.simulator.dynamics import FactualView
from ketaweight.sources.simulator.population import Population
from ketaweight.sources.simulator.scenario import Scenario

FloatArray = NDArray[np.float64]
Record = tuple[str, str, NDArray[np.integer], NDArray[np.int64], NDArray[np.int64], FloatArray]

TRAITS = ("age", "bmi", "female", "severity")
"""Standardised baseline traits the controls drift with: (age − 44)/12, (BMI − 28)/5, female − 0.58,
(assessed MADRS − 33)/6 — all measured, so adjustment removes their part."""


@dataclass(frozen=True)
class ControlDesign:
    """The controls' loadings and units (one row per control), from ``negative_controls.design_seed``."""

    kinds: tuple[str, ...]
    lifestyle_loading: FloatArray  # a_j
    trait_drift: FloatArray  # b_jk, kg-equivalents per SD over 84 days, shape (controls, traits)
    scale: FloatArray  # arbitrary units per kg-equivalent
    offset: FloatArray  # arbitrary units


def control_design(s: Scenario) -> ControlDesign:
    """The design of the scenario's negative controls (identical for every simulation seed)."""
    nc = s.negative_controls
    rng = np.random.default_rng(nc.design_seed)
    k = nc.n_outcomes
    return ControlDesign(
        kinds=CONTROL_KINDS[:k],
        lifestyle_loading=rng.normal(nc.lifestyle_loading_mean, nc.lifestyle_loading_sd, k),
        trait_drift=rng.normal(0.0, nc.trait_drift_sd, (k, len(TRAITS))),
        scale=np.exp(rng.normal(1.0, 1.0, k)),
        offset=rng.uniform(20.0, 200.0, k),
    )


def standardised_traits(pop: Population) -> FloatArray:
    """(patients, traits) in the order of :data:`TRAITS`."""
    bmi = pop.weight0_kg / pop.height_m**2
    return np.column_stack([(pop.age - 44.0) / 12.0, (bmi - 28.0) / 5.0, (~pop.male) - 0.58,
                            (pop.madrs_assessed - 33.0) / 6.0])


def control_records(s: Scenario, pop: Population, view: FactualView, attended: NDArray[np.bool_],
                    rng: np.random.Generator) -> list[Record]:
    """The negative-control measurements at the visits of ``negative_controls.days`` that happen.

    ``attended`` is the (grid days × patients) visit mask of the observation process; ``rng`` is the
    controls' own stream, so the other tables of a seed do not depend on the controls.  Every control
    shares the patient, day and time arrays (one record per visit that happens).
    """
    nc = s.negative_controls
    if nc.n_outcomes == 0:
        return []
    design = control_design(s)
    grid = list(view.grid_days)
    k = nc.n_outcomes
    drift = design.trait_drift @ standardised_traits(pop).T  # (controls, patients): kg-equivalents per 84 days
    level = rng.normal(0.0, nc.level_sd, (k, pop.n))
    day0 = view.lifestyle_kg[grid.index(0)]
    who = [np.flatnonzero(attended[grid.index(day)]) for day in nc.days]
    patients = np.concatenate(who).astype(np.int32)  # every record of one control: the visits one after another
    days = np.concatenate([np.full(len(w), day, dtype=np.int64) for w, day in zip(who, nc.days)])
    life = np.concatenate([(view.lifestyle_kg[grid.index(day), w] - day0[w]).astype(float) for w, day in zip(who, nc.days)])
    share = days / 84.0
    noise = rng.normal(0.0, nc.noise_sd, (k, len(patients)))
    minutes = np.full(len(patients), 8 * 60, dtype=np.int64)  # drawn at the start of the visit, before the weighing
    records: list[Record] = []
    for j, kind in enumerate(design.kinds):  # rows of (controls, …) arrays are contiguous: one control at a time
        kg_eq = level[j, patients] + design.lifestyle_loading[j] * life + drift[j, patients] * share + noise[j]
        records.append((kind, "au", patients, days, minutes, np.round(design.offset[j] + design.scale[j] * kg_eq, 3)))
    return records
