"""E-values: how strong unmeasured confounding would have to be to explain an estimate away.

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
from typing import Any

APPROXIMATION = (
    "continuous outcome: RR ≈ exp(0.91·d) with d = estimate / SD(outcome) "
    "(VanderWeele & Ding 2017, standardized-difference approximation)"
)


def _rr_of(difference: float, outcome_sd: float) -> float:
    """exp(0.91·d), infinite (not an OverflowError) for a standardized difference too large to exponentiate
    (a few rows with a huge difference); its E-value is then infinite too, written null in files."""
    log_rr = 0.91 * difference / outcome_sd
    return math.exp(log_rr) if abs(log_rr) < 700 else (math.inf if log_rr > 0 else 0.0)


def evalue_rr(rr: float) -> float:
    """E-value of a risk ratio (VanderWeele & Ding 2017, eq. 1); 1 at the null.

    >>> round(evalue_rr(3.9), 2), evalue_rr(1.0), round(evalue_rr(0.5), 2)   # 3.9: their smoking example
    (7.26, 1.0, 3.41)
    """
    if rr == 0 or rr == math.inf:  # an effect too large to exponentiate: no confounder could explain it away
        return math.inf
    if not math.isfinite(rr) or rr < 0:
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
    rr = _rr_of(estimate, outcome_sd)
    if math.isfinite(ci_low) and math.isfinite(ci_high):
        if ci_low <= 0 <= ci_high:
            limit, e_ci = None, 1.0
        else:
            limit = ci_low if estimate > 0 else ci_high
            e_ci = evalue_rr(_rr_of(limit, outcome_sd))
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
