"""Read what the report and the evidence grade need out of results files, without copying them.

The causal results (``kind = "causal"``) and the mechanisms results (``kind = "mechanisms"``:
mediation, dose-response, heterogeneity, written by ``ketaweight.pipelines.mechanisms``) have fixed
shapes (``docs/results-schema.md``); these readers turn the parts the report shows into
labelled estimate rows.  Nothing here invents a number: a missing part gives no row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EstimateRow:
    """One estimate with its interval, in the outcome's units (kg unless stated)."""

    label: str
    estimate: float
    ci_low: float
    ci_high: float
    n: int | str | None = None

    @property
    def excludes_zero(self) -> bool:
        """True when the interval lies entirely on one side of zero."""
        return self.ci_low > 0 or self.ci_high < 0


def _row(label: str, d: dict[str, Any]) -> EstimateRow:
    return EstimateRow(label, float(d["estimate"]), float(d["ci_low"]), float(d["ci_high"]), d.get("n"))


def mediation_rows(mechanisms: dict[str, Any]) -> list[EstimateRow]:
    """Total, each pathway, the direct and the interaction remainder (interventional effects, kg)."""
    m = mechanisms["results"]["mediation"]
    if m is None:  # not estimable in this run (the reason is in results["not_estimable"])
        return []
    return ([_row(m["total"]["estimand"], m["total"])]
            + [_row(r["estimand"], r) for r in m["pathways"].values()]
            + [_row(m["direct"]["estimand"], m["direct"]), _row(m["interaction"]["estimand"], m["interaction"])])


def pathway_rows(mechanisms: dict[str, Any]) -> list[EstimateRow]:
    """Only the named pathways (what 'plausibility' asks about)."""
    m = mechanisms["results"]["mediation"]
    return [] if m is None else [_row(r["estimand"], r) for r in m["pathways"].values()]


def curves(mechanisms: dict[str, Any], method: str = "msm") -> list[dict[str, Any]]:
    """Dose-response curves of one method over the whole treated group (not by a factor)."""
    return [c for c in mechanisms["results"]["dose_response"]
            if c["method"] == method and not c["settings"]["spec"].get("by")]


def gradient_rows(mechanisms: dict[str, Any]) -> list[EstimateRow]:
    """The MSM's linear dose term per exposure: the curve's slope at zero exposure (kg per unit)."""
    return [_row(f"{c['exposure']} (MSM slope, kg per unit)", {**c["coefficients"][c["exposure"]], "n": c.get("n")})
            for c in curves(mechanisms) if c["exposure"] in c["coefficients"]]


def subgroup_rows(mechanisms: dict[str, Any]) -> list[EstimateRow]:
    """Effect within each level of each prespecified modifier, then each version (route) vs none."""
    het = mechanisms["results"]["heterogeneity"]
    rows = [_row(r["estimand"], r) for m in het["subgroups"] for r in m["subgroups"]]
    return rows + [_row(r["estimand"], r) for v in het["versions"] for r in v["effects"]]


def primary_estimate(analysis: dict[str, Any], method: str) -> dict[str, Any] | None:
    """The estimate of ``method`` in one causal payload (``analyses[column]``), or None."""
    return next((e for e in analysis.get("estimates", []) if e.get("method") == method), None)


def horizon_phrase(days: int | float | None) -> str:
    """'12 weeks' for 84 days; '30 days' when not a whole number of weeks."""
    if days is None:
        return "the outcome horizon"
    d = int(days)
    return f"{d // 7} weeks" if d % 7 == 0 else f"{d} days"
