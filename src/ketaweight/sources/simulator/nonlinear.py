"""Harder worlds for validation: confounding through thresholds and interactions, and drug effects that
vary with baseline traits (the ``[nonlinear]`` and ``[modification]`` sections of a scenario).

Every function returns exactly zero (or a factor of exactly one) with the sections' defaults, so the
other scenarios — and every published number computed on them — are unchanged.  No function draws
random numbers: the scenario's random streams stay as they were.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit

from ketaweight.sources.simulator.scenario import Scenario

FloatArray = NDArray[np.float64]

def obese(s: Scenario, bmi: FloatArray) -> FloatArray:
    """Soft obesity indicator expit((BMI − centre)/width), in [0, 1]."""
    n = s.nonlinear
    return expit((bmi - n.bmi_threshold) / n.bmi_threshold_width)


def severe(s: Scenario, madrs_assessed: FloatArray) -> FloatArray:
    """1.0 where the assessed MADRS reaches the severity threshold, else 0.0."""
    return (madrs_assessed >= s.nonlinear.severe_madrs).astype(float)


def _young(s: Scenario, age: FloatArray) -> FloatArray:
    return (age < s.nonlinear.young_age).astype(float)


def uptake_logit(s: Scenario, bmi: FloatArray, madrs_assessed: FloatArray, age: FloatArray) -> FloatArray:
    """Extra logit of starting ketamine from the threshold and interaction terms."""
    n = s.nonlinear
    ob, sev = obese(s, bmi), severe(s, madrs_assessed)
    return n.uptake_obese_logit * ob + n.uptake_obese_severe_logit * ob * sev + n.uptake_young_severe_logit * _young(s, age) * sev


def diet_logit(s: Scenario, bmi: FloatArray) -> FloatArray:
    """Extra logit of joining a diet programme for obese patients."""
    return s.nonlinear.diet_obese_logit * obese(s, bmi)


def intake_from_index(s: Scenario, bmi: FloatArray, madrs_assessed: FloatArray, age: FloatArray) -> FloatArray:
    """Intake change (kcal/day) from index on in every world: the untreated course of the illness, which
    moves weight by baseline traits through thresholds and interactions."""
    n = s.nonlinear
    ob, sev = obese(s, bmi), severe(s, madrs_assessed)
    return n.intake_obese_kcal * ob + n.intake_obese_severe_kcal * ob * sev + n.intake_young_severe_kcal * _young(s, age) * sev


def has_nonlinear_intake(s: Scenario) -> bool:
    """Whether :func:`intake_from_index` can be nonzero (it is skipped otherwise)."""
    n = s.nonlinear
    return any((n.intake_obese_kcal, n.intake_obese_severe_kcal, n.intake_young_severe_kcal))


def effect_factor(s: Scenario, bmi: FloatArray, female: NDArray[np.bool_], age: FloatArray,
                  atypical: NDArray[np.bool_]) -> FloatArray:
    """Per-patient multiplier of the drug's appetite and metabolic effects (``[modification]``)."""
    m = s.modification
    raw = (1.0 + m.per_bmi_unit * (bmi - 28.0) + m.female * female + m.per_age_decade * (age - 44.0) / 10.0
           + m.atypical * atypical)
    return np.clip(raw, 0.0, None)


def has_modification(s: Scenario) -> bool:
    """Whether :func:`effect_factor` can differ from 1 (it is skipped otherwise)."""
    m = s.modification
    return any((m.per_bmi_unit, m.female, m.per_age_decade, m.atypical))
