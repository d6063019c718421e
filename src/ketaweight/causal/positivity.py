"""Positivity tools: common-support trimming, arm-specific weight truncation, effective sample size per arm.

**Trimming** restricts the population to the rows whose propensity e(L) lies in [lo, hi], then every
estimator runs on the trimmed rows (its nuisance models refitted there).  The estimand changes: it is
the effect in the trimmed population, stated with every result (``diagnostics["trimming"]``) and in
the report.  Rules (propensity from the logistic model on the spec's design, fitted on every row):

* ``"common-support"``: [max(min e | A=1, min e | A=0), min(max e | A=1, max e | A=0)] — for the ATT
  this drops controls less likely to be treated than any treated row and treated rows with no
  comparable control (Dehejia & Wahba 1999);
* ``"crump"``: [α, 1 − α] with Crump, Hotz, Imbens & Mitnik's (2009) optimal α, which minimises the
  asymptotic variance of the ATE in the trimmed population: with g = 1/(e(1 − e)), α = 0 when
  max g ≤ 2·mean g, otherwise γ solves γ = 2·E[g | g ≤ γ] and α = 1/2 − √(1/4 − 1/γ);
* ``"fixed"``: [α, 1 − α] for a given α (e.g. 0.1, the rule of thumb Crump et al. derive).

**Arm-specific truncation** (:func:`truncate_by_arm`) caps the weights of each arm whose weights
vary at that arm's own upper percentile: both arms for the ATE, the controls only for the ATT
(treated weights are 1), the treated only for the ATC.  Pooled percentiles mix arms whose weights
live on different scales — with few treated rows, the pooled 99th percentile of ATT weights lies
below 1 and clips every treated weight — so they can move an estimate far without saying so.  The
share of each arm's total weight removed is reported.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ketaweight.causal.data import AnalysisData
from ketaweight.causal.weights import propensity_model
from ketaweight.core.attrition import AttritionStep
from ketaweight.core.errors import InputError, Location
from ketaweight.core.vocabulary import TRIM_RULES, TrimRule


@dataclass(frozen=True, kw_only=True)
class Trimming:
    """A common-support trimming rule (module docstring); ``alpha`` is used by ``rule="fixed"``."""

    rule: TrimRule = "none"
    alpha: float = 0.1

    def __post_init__(self) -> None:
        problems = []
        if self.rule not in TRIM_RULES:
            problems.append(f"trimming rule {self.rule!r} is not one of {list(TRIM_RULES)}")
        if not (isinstance(self.alpha, (int, float)) and 0 < self.alpha < 0.5):
            problems.append(f"trimming alpha={self.alpha!r} must be in (0, 0.5), e.g. 0.1")
        if problems:
            raise ValueError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def crump_alpha(e: np.ndarray) -> float:
    """Crump et al.'s (2009) optimal trimming threshold α for propensities ``e`` (module docstring)."""
    with np.errstate(divide="ignore"):  # a propensity of 0 or 1 is the error below
        g = 1.0 / (e * (1.0 - e))
    if not np.all(np.isfinite(g)):
        raise InputError([(Location("table"), "propensities of exactly 0 or 1 (separation): no optimal trimming "
                                              "rule exists; coarsen the covariates that predict treatment perfectly")])
    if g.max() <= 2.0 * g.mean():
        return 0.0
    s = np.sort(g)
    below = s - 2.0 * np.cumsum(s) / np.arange(1, s.size + 1)  # γ − 2·E[g | g ≤ γ] at γ = each sorted g
    gamma = float(s[np.argmax(below >= 0)])
    return float(0.5 - np.sqrt(max(0.25 - 1.0 / gamma, 0.0)))


def trimming_bounds(e: np.ndarray, a: np.ndarray, trimming: Trimming) -> tuple[float, float, float | None]:
    """(lo, hi, α) of the rule (α None for the common-support rule)."""
    if trimming.rule == "common-support":
        t, c = e[a == 1], e[a == 0]
        return max(float(t.min()), float(c.min())), min(float(t.max()), float(c.max())), None
    alpha = crump_alpha(e) if trimming.rule == "crump" else float(trimming.alpha)
    return alpha, 1.0 - alpha, alpha


RULE_TEXT = {"common-support": "common support (rows outside the overlap of the two arms' propensities removed)",
             "crump": "Crump, Hotz, Imbens & Mitnik (2009) optimal rule",
             "fixed": "fixed propensity bounds"}


def trim(data: AnalysisData, trimming: Trimming) -> AnalysisData:
    """``data`` restricted to the rows whose propensity lies inside the rule's bounds, with a counted
    attrition step and the trimming record in ``data.trimming`` (every result carries it)."""
    if trimming.rule == "none":
        return data
    e = propensity_model(data).fit.fitted
    lo, hi, alpha = trimming_bounds(e, data.a, trimming)
    keep = (e >= lo) & (e <= hi)
    n1, n0 = int(data.a.sum()), int(data.n - data.a.sum())
    kept1, kept0 = int(data.a[keep].sum()), int(keep.sum() - data.a[keep].sum())
    if kept1 < 1 or kept0 < 1:
        raise InputError([(Location("table", column=data.spec.treatment),
                           f"trimming ({trimming.rule}, propensity in [{lo:.3g}, {hi:.3g}]) leaves {kept1} treated and "
                           f"{kept0} untreated rows; the arms do not overlap")])
    reason = (f"propensity outside [{lo:.4g}, {hi:.4g}] ({RULE_TEXT[trimming.rule]}"
              + (f", alpha = {alpha:.4g}" if alpha is not None else "") + "); the estimand becomes the effect in the "
              "trimmed population")
    step = AttritionStep("trimming", reason, data.n, int(data.n - keep.sum()), int(keep.sum()))
    record = {"rule": trimming.rule, "description": RULE_TEXT[trimming.rule], "alpha": alpha, "bounds": [lo, hi],
              "n_before": data.n, "n_excluded": int(data.n - keep.sum()), "n_after": int(keep.sum()),
              "treated": {"n_before": n1, "n_excluded": n1 - kept1}, "control": {"n_before": n0, "n_excluded": n0 - kept0},
              "estimand": f"{data.spec.estimand} in the trimmed population (propensity in [{lo:.3g}, {hi:.3g}])",
              "propensity_model": "logistic on the spec's design, fitted on every row before trimming"}
    rows = np.flatnonzero(keep)
    sub = data.subset(rows)
    return AnalysisData(sub.spec, sub.a, sub.y, sub.observed, sub.x, sub.z, (*data.attrition, step), trimming=record)


def weighted_arms(estimand: str) -> tuple[int, ...]:
    """The arms whose weights vary (and may be truncated) under ``estimand``."""
    return {"ATT": (0,), "ATC": (1,)}.get(estimand, (1, 0))


def truncate_by_arm(w: np.ndarray, a: np.ndarray, estimand: str, percentile: float
                    ) -> tuple[np.ndarray, dict[str, Any]]:
    """Cap each weighted arm's positive weights at that arm's ``percentile`` (e.g. 99); returns the
    truncated weights and, per arm, the cap, the rows capped (``capped.n``) and the share of the arm's
    weight removed."""
    out = w.copy()
    record: dict[str, Any] = {"kind": "by arm", "upper_percentile": percentile, "arms": {}}
    for arm in weighted_arms(estimand):
        rows = (a == arm) & (w > 0)
        if not rows.any():
            continue
        cap = float(np.percentile(w[rows], percentile))
        capped = rows & (w > cap)
        out[capped] = cap
        total = float(w[rows].sum())
        record["arms"]["treated" if arm == 1 else "control"] = {
            "cap": cap, "capped": {"n": int(capped.sum())},
            "share_of_weight_removed": float((w[rows].sum() - out[rows].sum()) / total) if total > 0 else 0.0}
    return out, record


def pooled_truncation_record(w: np.ndarray, clipped: np.ndarray, a: np.ndarray, percentiles: tuple[float, float]
                             ) -> dict[str, Any]:
    """What pooled percentile truncation did to each arm (share of the arm's weight moved, rows clipped)."""
    record: dict[str, Any] = {"kind": "pooled", "percentiles": list(percentiles), "arms": {}}
    for arm, name in ((1, "treated"), (0, "control")):
        rows = (a == arm) & (w > 0)
        total = float(w[rows].sum())
        record["arms"][name] = {"clipped": {"n": int(np.sum(rows & (clipped != w)))},
                                "share_of_weight_changed": float(np.abs(w[rows] - clipped[rows]).sum() / total) if total else 0.0}
    return record
