"""Sensitivity to unmeasured confounding: E-values and negative-control outcomes.

E-value (VanderWeele & Ding 2017): the minimum strength of association, on the risk-ratio
scale, that an unmeasured confounder would need with both treatment and outcome to explain
away the estimate: E = RR + √(RR·(RR − 1)) for RR ≥ 1 (use 1/RR below 1).  For the CI, the
limit nearer the null is used, and the E-value is 1 when the CI includes the null.

The outcomes here are differences in means (kg), so the risk ratio is approximated from the
standardized difference d = estimate / SD(outcome) by RR ≈ exp(0.91·d) (VanderWeele & Ding
2017, section on continuous outcomes, after Hasselblad & Hedges 1995).  Every E-value this
module returns says so in its ``approximation`` field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import pandas as pd

from ketaweight.causal.spec import AnalysisSpec

if TYPE_CHECKING:
    from ketaweight.causal.base import Estimator
    from ketaweight.causal.result import CausalResult

APPROXIMATION = (
    "continuous outcome: RR ≈ exp(0.91·d) with d = estimate / SD(outcome) "
    "(VanderWeele & Ding 2017, standardized-difference approximation)"
)


def evalue_rr(rr: float) -> float:
    """E-value of a risk ratio (VanderWeele & Ding 2017, eq. 1); 1 at the null."""
    if not math.isfinite(rr) or rr <= 0:
        return float("nan")
    if rr < 1:
        rr = 1.0 / rr
    return rr + math.sqrt(rr * (rr - 1.0))


def evalue_difference(estimate: float, ci_low: float, ci_high: float, outcome_sd: float) -> dict[str, Any]:
    """E-values for a difference in means and its CI, via the standardized difference.

    Returns ``{"rr", "evalue_estimate", "evalue_ci", "ci_limit_used", "outcome_sd",
    "approximation"}``; ``evalue_ci`` is 1 when the CI includes 0.
    """
    if not (math.isfinite(estimate) and math.isfinite(outcome_sd) and outcome_sd > 0):
        return {"rr": None, "evalue_estimate": None, "evalue_ci": None, "ci_limit_used": None,
                "outcome_sd": outcome_sd, "approximation": APPROXIMATION}
    rr = math.exp(0.91 * estimate / outcome_sd)
    if math.isfinite(ci_low) and math.isfinite(ci_high):
        if ci_low <= 0 <= ci_high:
            limit, e_ci = None, 1.0
        else:
            limit = ci_low if estimate > 0 else ci_high
            e_ci = evalue_rr(math.exp(0.91 * limit / outcome_sd))
    else:
        limit, e_ci = None, float("nan")
    return {
        "rr": rr,
        "evalue_estimate": evalue_rr(rr),
        "evalue_ci": e_ci,
        "ci_limit_used": limit,
        "outcome_sd": outcome_sd,
        "approximation": APPROXIMATION,
    }


@dataclass(frozen=True)
class NegativeControl:
    """An estimator run on a negative-control outcome: an outcome the treatment cannot
    affect but that shares the confounding (Lipsitch, Tchetgen Tchetgen & Cohen 2010).

    A CI that excludes 0 signals residual confounding or bias in the main analysis.
    """

    outcome: str
    result: CausalResult
    covers_null: bool
    interpretation: str

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for the results file."""
        return {
            "outcome": self.outcome,
            "covers_null": self.covers_null,
            "interpretation": self.interpretation,
            "result": self.result.to_dict(),
        }


def negative_control(estimator: Estimator, table: pd.DataFrame, spec: AnalysisSpec, outcome: str) -> NegativeControl:
    """Run ``estimator`` with ``outcome`` swapped for the negative-control column ``outcome``."""
    result = estimator.fit(table, replace(spec, outcome=outcome))
    covers = bool(result.ci_low <= 0 <= result.ci_high)
    if covers:
        text = (
            f"the {result.method} estimate on the negative control '{outcome}' is {result.estimate:.3g} "
            f"({result.ci_low:.3g}, {result.ci_high:.3g}); its CI covers 0: no sign of residual confounding"
        )
    else:
        text = (
            f"the {result.method} estimate on the negative control '{outcome}' is {result.estimate:.3g} "
            f"({result.ci_low:.3g}, {result.ci_high:.3g}); its CI excludes 0: residual confounding or bias is likely"
        )
    return NegativeControl(outcome, result, covers, text)
