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
Record = tuple[str, str, NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], FloatArray]

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
    controls' own stream, so the other tables of a seed do not depend on the controls.
    """
    nc = s.negative_controls
    if nc.n_outcomes == 0:
        return []
    design = control_design(s)
    grid = list(view.grid_days)
    z = standardised_traits(pop)
    drift = z @ design.trait_drift.T  # (patients, controls), kg-equivalents per 84 days
    level = rng.normal(0.0, nc.level_sd, (pop.n, nc.n_outcomes))
    day0 = view.lifestyle_kg[grid.index(0)].astype(float)
    records: list[Record] = []
    visits = [(day, np.flatnonzero(attended[grid.index(day)])) for day in nc.days]
    noise = [rng.normal(0.0, nc.noise_sd, (len(who), nc.n_outcomes)) for _, who in visits]
    for j, kind in enumerate(design.kinds):
        pieces = []
        for (day, who), eps in zip(visits, noise):
            life = view.lifestyle_kg[grid.index(day), who].astype(float) - day0[who]
            kg_eq = level[who, j] + design.lifestyle_loading[j] * life + drift[who, j] * day / 84.0 + eps[:, j]
            value = np.round(design.offset[j] + design.scale[j] * kg_eq, 3)
            pieces.append((who, np.full(len(who), day), value))
        patients = np.concatenate([p[0] for p in pieces]).astype(np.int64)
        days = np.concatenate([p[1] for p in pieces]).astype(np.int64)
        values = np.concatenate([p[2] for p in pieces])
        # drawn at the start of the visit, before the weighing (distinct times keep the key unique per kind)
        records.append((kind, "au", patients, days, np.full(len(patients), 8 * 60, dtype=np.int64), values))
    return records
