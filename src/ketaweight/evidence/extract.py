"""What the report and the evidence grade show of the typed results, as labelled estimate rows.

Reads :class:`~ketaweight.pipelines.results.MechanismsResults` (mediation, dose-response,
heterogeneity) and causal analyses; nothing here invents a number: a missing part gives no row.
"""

from __future__ import annotations

from dataclasses import dataclass

from ketaweight.causal.result import CausalResult
from ketaweight.core.protocol import Count
from ketaweight.mechanisms.dose_response import DoseResponseResult
from ketaweight.pipelines.results import MechanismsResults
from ketaweight.study.labels import label, level_label


@dataclass(frozen=True)
class EstimateRow:
    """One estimate with its interval, in the outcome's units (kg unless stated)."""

    label: str
    estimate: float
    ci_low: float
    ci_high: float
    n: Count | None = None

    @property
    def excludes_zero(self) -> bool:
        """True when the interval lies entirely on one side of zero."""
        return self.ci_low > 0 or self.ci_high < 0

    @classmethod
    def of(cls, r: CausalResult, label: str | None = None) -> EstimateRow:
        return cls(label or r.estimand, r.estimate, r.ci_low, r.ci_high, r.n)


def mediation_rows(m: MechanismsResults) -> list[EstimateRow]:
    """Total, each pathway, the direct and the interaction remainder (interventional effects, kg)."""
    if m.mediation is None:  # not estimable in this run (the reason is in m.not_estimable)
        return []
    return [EstimateRow.of(r) for r in m.mediation.effects]


def pathway_rows(m: MechanismsResults) -> list[EstimateRow]:
    """Only the named pathways (what 'plausibility' asks about)."""
    return [] if m.mediation is None else [EstimateRow.of(r) for r in m.mediation.pathways.values()]


def curves(m: MechanismsResults, method: str = "msm") -> list[DoseResponseResult]:
    """Dose-response curves of one method over the whole treated group (not by a factor)."""
    return [c for c in m.dose_response if c.method == method and not c.by]


def gradient_rows(m: MechanismsResults) -> list[EstimateRow]:
    """The MSM's linear dose term per exposure: the curve's slope at zero exposure (kg per unit)."""
    rows = []
    for c in curves(m):
        if c.exposure in c.coefficients:
            k = c.coefficients[c.exposure]
            rows.append(EstimateRow(f"{label(c.exposure)}: slope (MSM, kg per unit)", k["estimate"], k["ci_low"],
                                    k["ci_high"], c.n))
    return rows


def subgroup_rows(m: MechanismsResults) -> list[EstimateRow]:
    """Effect within each level of each prespecified modifier, then each version (route) vs none."""
    het = m.heterogeneity
    rows = [EstimateRow.of(r, f"{label(mod.modifier)}: {level_label(mod.modifier, lev)}")
            for mod in het.subgroups for lev, r in zip(mod.levels, mod.subgroups)]
    return rows + [EstimateRow.of(r, f"{label(v.version)}: {level_label(v.version, lev)} vs no course")
                   for v in het.versions for lev, r in zip(v.levels, v.effects)]


def found_rows(m: MechanismsResults) -> list[EstimateRow]:
    """Effect within each level (numeric modifiers by tertile) of each modifier the catalogue search found."""
    return [EstimateRow.of(r, f"{label(mod.modifier)}: {level_label(mod.modifier, lev)}")
            for mod in m.heterogeneity.found for lev, r in zip(mod.levels, mod.subgroups)]


def horizon_phrase(days: int | float | None) -> str:
    """'12 weeks' for 84 days; '30 days' when not a whole number of weeks.

    >>> horizon_phrase(84), horizon_phrase(30)
    ('12 weeks', '30 days')
    """
    if days is None:
        return "the outcome horizon"
    d = int(days)
    return f"{d // 7} weeks" if d % 7 == 0 else f"{d} days"
