"""A network of simulated sites: the same kind of clinic in K databases that differ.

Sites differ in size, case mix (age, BMI, baseline severity, share of women), confounding
strength (how much motivation drives starting ketamine and joining a programme) and measurement
quality (scale noise, missed visits, share of patients with a wearable).  Optionally one site has
an unmeasured confounder (``confounding.unmeasured_intake_kcal_per_sd``: motivated patients also
eat less, which no recorded variable shows), so that one database is biased in a known way.  Every
site keeps the scenario's drug effects and the negative controls' design (``design_seed``), so the
network studies the same question with the same controls.  The variation is drawn from the
network seed; each site gets its own simulation seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from pydantic import BaseModel

from ketaweight.sources.simulator.scenario import Scenario

UNMEASURED_KCAL_PER_SD = -60.0
"""The biased site's unmeasured confounder: kcal/day less intake per SD of motivation (about −0.6 kg
over 12 weeks per SD), on top of motivation's recorded paths [assumption]."""


@dataclass(frozen=True)
class SiteSpec:
    """One simulated site: its name, scenario, size, seed, and what sets it apart (in words)."""

    name: str
    scenario: Scenario
    n_patients: int
    seed: int
    unmeasured_confounder: bool
    differences: dict[str, float]


Section = TypeVar("Section", bound=BaseModel)


def _update(model: Section, **changes: float) -> Section:
    """A scenario section with some fields replaced, validated again."""
    return type(model).model_validate({**model.model_dump(), **changes})


def network_sites(base: Scenario, k: int, n_patients: int, seed: int, *, unmeasured_site: bool = True,
                  unmeasured_kcal_per_sd: float = UNMEASURED_KCAL_PER_SD) -> list[SiteSpec]:
    """``k`` sites around ``base`` of ``n_patients`` on average (see module docstring).

    With ``unmeasured_site`` (and k ≥ 2) the last site has the unmeasured confounder.
    """
    if k < 1:
        raise ValueError(f"a network needs at least one site, got {k}")
    design_ss, *site_ss = np.random.SeedSequence(seed).spawn(k + 1)
    rng = np.random.default_rng(design_ss)
    sites = []
    for i in range(k):
        p, t, c, o = base.population, base.treatment, base.confounding, base.observation
        size = float(np.clip(np.exp(rng.normal(0.0, 0.35)), 0.4, 2.0)) if k > 1 else 1.0
        diff = {
            "size_factor": size,
            "age_mean": float(p.age_mean + rng.normal(0, 4)),
            "bmi_median": float(p.bmi_median * np.exp(rng.normal(0, 0.05))),
            "madrs_mean": float(p.madrs_mean + rng.normal(0, 2)),
            "female_share": float(np.clip(p.female_share + rng.normal(0, 0.05), 0.3, 0.8)),
            "confounding_factor": float(rng.uniform(0.6, 1.4)),
            "scale_sd_kg": float(o.scale_sd_kg * rng.uniform(0.7, 1.6)),
            "missed_visit_prob": float(np.clip(o.missed_visit_prob + rng.uniform(-0.05, 0.1), 0.02, 0.4)),
            "wearable_share": float(rng.uniform(0.3, 0.8)),
        }
        if k == 1:  # one site: the scenario as written
            diff = {"size_factor": 1.0}
        biased = unmeasured_site and k >= 2 and i == k - 1
        f = diff.get("confounding_factor", 1.0)
        s = base.model_copy(update={
            "name": f"{base.name} (site {i + 1})",
            "population": _update(p, **{key: diff[key] for key in ("age_mean", "bmi_median", "madrs_mean", "female_share") if key in diff}),
            "treatment": _update(t, uptake_per_motivation_sd=t.uptake_per_motivation_sd * f),
            "confounding": _update(c, diet_per_motivation_sd=c.diet_per_motivation_sd * f,
                                   exercise_per_motivation_sd=c.exercise_per_motivation_sd * f,
                                   unmeasured_intake_kcal_per_sd=unmeasured_kcal_per_sd if biased else c.unmeasured_intake_kcal_per_sd),
            "observation": _update(o, **{key: diff[key] for key in ("scale_sd_kg", "missed_visit_prob", "wearable_share") if key in diff}),
        })
        seed_i = int(site_ss[i].generate_state(1)[0])
        sites.append(SiteSpec(f"site-{i + 1}", s, max(200, int(round(n_patients * size))), seed_i, biased, diff))
    return sites
