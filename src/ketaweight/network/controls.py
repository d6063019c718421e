"""Negative controls in outcome-equivalents, and positive controls by signal injection.

Systematic error is comparable across outcomes only on a common scale.  Each negative control's
change is converted to **outcome-equivalents** (kg-equivalents for weight): multiplied by
f_j = SD(outcome change | untreated) / SD(control change | untreated), so that a bias of one SD
of the control counts as one SD of the outcome.  AIPW with linear outcome models is scale
equivariant, so the converted estimate and SE are f_j times the raw ones.

**Positive controls** (OHDSI MethodEvaluation; Schuemie et al. 2018): into every negative control
a known effect is injected among the treated, Y⁺ = f_j·Y_j + δ·A·mᵢ, with mᵢ the patient's
baseline outcome value over its mean (weight-proportional effects, so the injected effect varies
with a confounder as a real one might); the true effect is then δ·mean(mᵢ) over the estimand's
population — δ for the ATE, exactly, and computed for the ATT.  The positive controls keep the
negative control's confounding, so they show how the error changes with the size of the effect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ketaweight.core.errors import InputError, Location


@dataclass(frozen=True)
class ControlOutcome:
    """One control as estimated: ``column`` of the analysis table, its negative control ``group``,
    the injected effect ``delta`` (0 for a negative control, outcome units) and ``factor`` (outcome
    units per unit of the column's estimate: f_j for a raw negative control, 1 for an injected one)."""

    name: str
    group: str
    column: str
    delta: float
    factor: float


@dataclass(frozen=True)
class ControlPlan:
    """The table with the injected columns, the controls, each control kind's f_j and the
    injection profile mᵢ (aligned with the table's rows)."""

    table: pd.DataFrame
    controls: tuple[ControlOutcome, ...]
    factors: dict[str, float]
    profile: np.ndarray
    outcome_sd_untreated: float


def _sd_untreated(values: pd.Series, treated: pd.Series) -> float:
    v = values[(treated == 0) & values.notna()]
    return float(v.std(ddof=1)) if len(v) > 1 else float("nan")


def design_controls(table: pd.DataFrame, *, outcome: str, treatment: str, control_columns: Sequence[str],
                    kinds: Sequence[str], effects: Sequence[float], baseline: str = "outcome_base") -> ControlPlan:
    """Convert each negative control to outcome-equivalents and inject ``effects`` into it (see module docstring).

    Raises :class:`InputError` naming a control whose change does not vary among the untreated.
    """
    treated = table[treatment]
    outcome_sd = _sd_untreated(table[outcome], treated)
    if not np.isfinite(outcome_sd) or outcome_sd <= 0:
        raise InputError([(Location("analysis table", column=outcome), "the outcome does not vary among the untreated")])
    base = table[baseline].to_numpy(dtype=float) if baseline in table.columns else np.ones(len(table))
    profile = base / np.nanmean(base) if np.all(base[np.isfinite(base)] > 0) else np.ones(len(table))
    profile = np.where(np.isfinite(profile), profile, 1.0)
    new_columns: dict[str, np.ndarray] = {}
    controls: list[ControlOutcome] = []
    factors: dict[str, float] = {}
    problems = []
    a = treated.to_numpy(dtype=float)
    for kind, col in zip(kinds, control_columns):
        sd = _sd_untreated(table[col], treated)
        if not np.isfinite(sd) or sd <= 0:
            problems.append((Location("analysis table", column=col), "the control's change does not vary among the untreated "
                                                                       "(too few measured?); leave it out of [network] negative_controls"))
            continue
        factors[kind] = outcome_sd / sd
        controls.append(ControlOutcome(kind, kind, col, 0.0, outcome_sd / sd))
        converted = table[col].to_numpy(dtype=float) * (outcome_sd / sd)
        for delta in effects:
            name = f"{kind}{delta:+g}"
            new_columns[name] = converted + delta * a * profile
            controls.append(ControlOutcome(name, kind, name, float(delta), 1.0))
    if problems:
        raise InputError(problems)
    injected = pd.DataFrame(new_columns, index=table.index)
    return ControlPlan(pd.concat([table, injected], axis=1), tuple(controls), factors, profile, outcome_sd)


def true_effect(delta: float, profile: np.ndarray, analysed: np.ndarray, treated: np.ndarray, estimand: str) -> float:
    """The injected effect's true value over the estimand's population (analysed rows, or their treated)."""
    if delta == 0:
        return 0.0
    rows = analysed & (treated == 1) if estimand == "ATT" else analysed
    return float(delta * profile[rows].mean())
