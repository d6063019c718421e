"""Balance, overlap and weight diagnostics carried by every result, and their warnings.

* Standardized mean difference (Austin 2009) per design column (linear terms and level
  indicators): SMD = (m₁ − m₀) / √((s₁² + s₀²)/2), weighted means m_a; the denominator is
  always the *unweighted* pooled SD so weighted and unweighted SMDs are comparable.
* Overlap: propensity quantiles by arm and the share of rows outside the common support
  [max(min e | A=1, min e | A=0), min(max e | A=1, max e | A=0)].
* Weights: range, mean, percentiles, Kish effective sample size (Σw)²/Σw² (Kish 1965).

Each failed check becomes a warning of the :class:`KetaweightWarning` family that states its
threshold, or a :class:`NumericalError` when the estimator's ``on_failure`` is ``"raise"``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ketaweight.causal.data import AnalysisData, memoised
from ketaweight.causal.spec import OnFailure, Thresholds
from ketaweight.causal.weights import FittedModel, ModelFacts
from ketaweight.core.errors import (
    BalanceWarning,
    ConvergenceWarning,
    KetaweightWarning,
    NumericalError,
    PositivityWarning,
    SeparationWarning,
)

QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)


class WarningLog:
    """Collects an estimator's warnings for its result and emits them (or raises)."""

    def __init__(self, on_failure: OnFailure, *, silent: bool = False) -> None:
        self.on_failure = on_failure
        self.silent = silent
        self.messages: list[str] = []

    def warn(self, category: type[KetaweightWarning], message: str) -> None:
        """Record and emit ``message``; raise :class:`NumericalError` in hard-stop mode."""
        if self.silent:
            return
        if self.on_failure == "raise":
            raise NumericalError(f"{category.__name__}: {message}")
        self.messages.append(f"{category.__name__}: {message}")
        warnings.warn(message, category, stacklevel=4)


def check_model(model: ModelFacts, log: WarningLog) -> None:
    """Warn when a nuisance model did not converge or separates the data."""
    if not model.converged:
        log.warn(
            ConvergenceWarning,
            f"the {model.name} model did not converge in {model.newton_steps} Newton steps "
            "(threshold: relative deviance change < 1e-10)",
        )
    if model.separated:
        log.warn(
            SeparationWarning,
            f"the {model.name} model separates the data: some fitted probabilities are within 1e-10 of 0 or 1 "
            "(threshold 1e-10); remove or coarsen the covariates that predict it perfectly",
        )


def smd(x: np.ndarray, a: np.ndarray, w: np.ndarray | None = None, *, sd: np.ndarray | None = None) -> np.ndarray:
    """Standardized mean differences of the columns of ``x`` (treated − control).

    ``w`` are row weights for the means (None: unweighted); the denominator is the
    unweighted pooled SD (:func:`pooled_sd`, or ``sd`` when already computed for ``x`` and ``a``).
    A column constant within both arms gives 0.  Means and variances come from matrix–vector
    products (no per-arm copies of ``x``), which matters at n = 10⁶.
    """
    t = (a == 1).astype(float)
    c = 1.0 - t
    n1, n0 = t.sum(), c.sum()
    if n1 == 0 or n0 == 0:
        return np.zeros(x.shape[1])
    if sd is None:
        sd = pooled_sd(x, a)
    if w is not None:
        wt, wc = w * t, w * c
        m1, m0 = wt @ x / wt.sum(), wc @ x / wc.sum()
    else:
        m1, m0 = t @ x / n1, c @ x / n0
    diff = m1 - m0
    return np.where(sd > 1e-12, diff / np.where(sd > 1e-12, sd, 1.0), 0.0)


def pooled_sd(x: np.ndarray, a: np.ndarray) -> np.ndarray:
    """√((s₁² + s₀²)/2) per column of ``x``: the arms' (population) variances, unweighted (both arms non-empty)."""
    t = (a == 1).astype(float)
    c = 1.0 - t
    n1, n0 = t.sum(), c.sum()
    squares = x * x
    m1, m0 = t @ x / n1, c @ x / n0
    var1 = np.maximum(t @ squares / n1 - m1**2, 0.0)
    var0 = np.maximum(c @ squares / n0 - m0**2, 0.0)
    return np.sqrt((var1 + var0) / 2.0)


def _balance_before(data: AnalysisData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The balance columns of the design, their pooled SDs and unweighted SMDs: the same for every
    estimator run on ``data``, so computed once per data object."""
    def compute() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        xb = data.x.matrix[:, data.x.balance_columns()]
        t = (data.a == 1)
        sd = pooled_sd(xb, data.a) if 0 < t.sum() < t.size else np.zeros(xb.shape[1])
        return xb, sd, smd(xb, data.a, sd=sd)
    return memoised(data, "balance before weighting", compute)


def kish_ess(w: np.ndarray) -> float:
    """Kish (1965) effective sample size (Σw)²/Σw² of non-negative weights."""
    s2 = float(np.dot(w, w))
    return float(w.sum() ** 2 / s2) if s2 > 0 else 0.0


def overlap_summary(e: np.ndarray, a: np.ndarray) -> dict[str, Any]:
    """Propensity quantiles by arm and the share of rows outside the common support."""
    t, c = a == 1, a == 0
    out: dict[str, Any] = {"quantiles": list(QUANTILES)}
    for label, mask in (("treated", t), ("control", c)):
        out[label] = np.quantile(e[mask], QUANTILES).tolist() if mask.any() else None
    if t.any() and c.any():
        lo, hi = max(e[t].min(), e[c].min()), min(e[t].max(), e[c].max())
        outside = (e < lo) | (e > hi)
        out["common_support"] = [float(lo), float(hi)]
        out["share_outside_support"] = float(outside.mean())
        out["n_outside_support"] = int(outside.sum())
    else:
        out["common_support"] = None
        out["share_outside_support"] = float("nan")
        out["n_outside_support"] = 0
    return out


def weight_summary(w: np.ndarray, a: np.ndarray | None = None) -> dict[str, Any]:
    """Range, mean, percentiles and Kish ESS of the positive weights; with the treatment ``a``, also
    per arm (``by_arm``: rows with positive weight, their ESS and their largest weight) — an arm's
    ESS is what its weighted mean rests on, and a pooled ESS can hide an arm of a few rows."""
    pos = w[w > 0]
    if pos.size == 0:
        return {"min": float("nan"), "max": float("nan"), "mean": float("nan"), "ess": 0.0, "n": 0}
    p1, p99 = np.percentile(pos, [1, 99])
    out: dict[str, Any] = {
        "n": int(pos.size),
        "min": float(pos.min()),
        "p01": float(p1),
        "mean": float(pos.mean()),
        "p99": float(p99),
        "max": float(pos.max()),
        "ess": kish_ess(pos),
    }
    if a is not None:
        out["by_arm"] = ess_by_arm(w, a)
    return out


def ess_by_arm(w: np.ndarray, a: np.ndarray) -> dict[str, dict[str, float]]:
    """Per arm: rows with positive weight, Kish ESS and the largest weight."""
    out = {}
    for arm, name in ((1, "treated"), (0, "control")):
        arm_w = w[(a == arm) & (w > 0)]
        out[name] = {"n": int(arm_w.size), "ess": kish_ess(arm_w), "max": float(arm_w.max()) if arm_w.size else float("nan")}
    return out


def diagnose(
    data: AnalysisData,
    propensity: np.ndarray,
    models: Sequence[FittedModel | ModelFacts],
    balance_weights: np.ndarray,
    used_weights: np.ndarray | None,
    thresholds: Thresholds,
    log: WarningLog,
    *,
    adjusted: bool,
) -> dict[str, Any]:
    """The diagnostics block of a result, with warnings for failed checks.

    ``propensity`` is e(L) per analysed row (for the overlap summary); ``models`` the nuisance
    fits whose convergence is reported; ``balance_weights`` are the treatment weights implied by the propensity model (every
    analysed row); ``used_weights`` the weights the estimator actually averages with (None
    if it uses none).  ``adjusted=False`` (crude difference) reports without warning.
    """
    facts = [m if isinstance(m, ModelFacts) else m.facts for m in models]
    names = [data.x.names[j] for j in data.x.balance_columns()]
    xb, sd, before = _balance_before(data)
    after = smd(xb, data.a, balance_weights, sd=sd)
    overlap = overlap_summary(propensity, data.a)
    out: dict[str, Any] = {
        "n_analysed": data.n,
        "n_observed_outcome": data.n_observed,
        "n_treated": int(data.a.sum()),
        "n_control": int(data.n - data.a.sum()),
        "outcome_sd": data.outcome_sd,
        "attrition": [s.to_dict() for s in data.attrition],
        "balance": {
            "covariates": names,
            "smd_unweighted": before.tolist(),
            "smd_weighted": after.tolist(),
            "max_abs_smd_unweighted": float(np.max(np.abs(before))) if before.size else 0.0,
            "max_abs_smd_weighted": float(np.max(np.abs(after))) if after.size else 0.0,
            "weights": "inverse probability of treatment weights from the propensity model",
            "threshold": thresholds.smd,
        },
        "overlap": overlap,
        "weights": weight_summary(used_weights if used_weights is not None else balance_weights, data.a),
        "weights_used_by_estimator": used_weights is not None,
        "models": [m.report() for m in facts],
        "thresholds": thresholds.to_dict(),
    }
    if data.trimming is not None:
        out["trimming"] = data.trimming
    for m in facts:
        check_model(m, log)
    if not adjusted or data.n == 0:
        return out
    bad = [f"{n} ({v:+.3f})" for n, v in zip(names, after) if abs(v) > thresholds.smd]
    if bad:
        log.warn(
            BalanceWarning,
            f"{len(bad)} covariate column(s) have |SMD| > {thresholds.smd} after weighting "
            f"(threshold {thresholds.smd}): {', '.join(bad[:8])}",
        )
    share = overlap["share_outside_support"]
    if share > thresholds.outside_support:
        log.warn(
            PositivityWarning,
            f"{share:.1%} of rows lie outside the common propensity support "
            f"(threshold {thresholds.outside_support:.0%}); consider restricting the population to the common "
            "support (trimming: analyze --trim crump or --trim common-support)",
        )
    if used_weights is not None:
        ws = out["weights"]
        if ws["n"] and ws["max"] > thresholds.extreme_weight * ws["mean"]:
            log.warn(
                PositivityWarning,
                f"extreme weights: max {ws['max']:.3g} is {ws['max'] / ws['mean']:.1f}× the mean weight "
                f"(threshold {thresholds.extreme_weight:g}×); consider trimming (analyze --trim) or truncating "
                f"each arm's weights (--truncate-by-arm 99)",
            )
        if ws["n"] and ws["ess"] < thresholds.min_ess_share * ws["n"]:
            log.warn(
                PositivityWarning,
                f"Kish effective sample size {ws['ess']:.0f} is {ws['ess'] / ws['n']:.1%} of the {ws['n']} "
                f"weighted rows (threshold: at least {thresholds.min_ess_share:.0%})",
            )
    return out
