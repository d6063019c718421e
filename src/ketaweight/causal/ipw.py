"""Inverse probability weighting (Hájek form), with optional censoring weights and truncation.

ψ̂ = μ̂₁ − μ̂₀ with μ̂_a = Σ 1{Aᵢ=a} Wᵢ Yᵢ / Σ 1{Aᵢ=a} Wᵢ over rows with an observed outcome,
Wᵢ = W_Aᵢ × W_Cᵢ (see :mod:`ketaweight.causal.weights`).  This equals the weighted regression
``Y ~ A`` of Hernán & Robins (2020, Programs 12.3–12.7).  Because the numerators of
stabilized weights are constant within an arm, stabilized and unstabilized weights give the
same Hájek estimate; stabilization changes the weights reported, not ψ̂.

Variance:

* ``"sandwich"`` (default): stacked estimating equations of the propensity model, the
  censoring model and the two weighted means (Lunceford & Davidian 2004; Stefanski & Boos
  2002).  IF_μa,i = [φ_a,i + Σ_k D_a,kᵀ I_k⁻¹ x_k,i (R_k,i − p_k,i)] / mean(1{A=a}W), with
  φ_a,i = 1{Aᵢ=a}Wᵢ(Yᵢ − μ_a), D_a,k = mean(φ_a,i s_k,i x_k,i) and s_k,i = ∂log Wᵢ/∂η_k,i.
  Accounts for estimating the weights (usually narrower than the fixed-weights variance).
* ``"fixed-weights"``: the robust (HC0) variance of the weighted regression with the
  weights treated as known — what a GEE with independence working correlation reports,
  and the CI Hernán & Robins print (3.44 (2.41, 4.47) on NHEFS); conservative for the ATE.
* ``"bootstrap"``: vectorised refits of every weight model per replicate
  (:mod:`ketaweight.causal.ipw_bootstrap`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ketaweight.causal.base import Estimator, Fitted, n_workers
from ketaweight.causal.data import AnalysisData
from ketaweight.causal.diagnostics import WarningLog
from ketaweight.causal.glm import fit_linear, linear_sandwich, solve_spd
from ketaweight.causal.ipw_bootstrap import bootstrap_ipw
from ketaweight.causal.positivity import pooled_truncation_record, truncate_by_arm
from ketaweight.causal.spec import Estimand
from ketaweight.core.errors import PositivityWarning
from ketaweight.causal.weights import (
    FittedModel,
    censoring_model,
    censoring_weights,
    propensity_model,
    treatment_weights,
)


TRUNCATION_WARN_SHARE = 0.10
"""Truncation that removes more than this share of an arm's total weight is warned about."""


def truncate_weights(w: np.ndarray, percentiles: tuple[float, float] | None) -> np.ndarray:
    """Clip positive weights at the given lower/upper percentiles (e.g. (1, 99)); zeros stay."""
    if percentiles is None:
        return w
    pos = w > 0
    lo, hi = np.percentile(w[pos], percentiles)
    return np.where(pos, np.clip(w, lo, hi), 0.0)


def hajek(w: np.ndarray, a: np.ndarray, y0: np.ndarray) -> tuple[float, float]:
    """Weighted means of ``y0`` (outcome with censored rows set to 0) in each arm."""
    t = a == 1
    return float(np.dot(w[t], y0[t]) / w[t].sum()), float(np.dot(w[~t], y0[~t]) / w[~t].sum())


def log_weight_slope(model: FittedModel, a: np.ndarray, estimand: Estimand) -> np.ndarray:
    """sᵢ = ∂ log Wᵢ / ∂ηᵢ for the model's linear predictor η (see module docstring)."""
    if model.name == "censoring":
        return -(model.response - model.fit.fitted)
    if estimand == "ATE":
        return -(a - model.fit.fitted)
    if estimand == "ATO":  # log(1 − e) for the treated, log e for the controls
        return (1.0 - a) - model.fit.fitted
    return 1.0 - a


def stacked_influence(
    w: np.ndarray, a: np.ndarray, y0: np.ndarray, mu: tuple[float, float], models: list[FittedModel], estimand: Estimand,
    capped: np.ndarray | None = None,
) -> np.ndarray:
    """Influence function of ψ̂ = μ̂₁ − μ̂₀ from stacked estimating equations (per row); ``capped`` marks
    rows whose weight was truncated to a fixed cap (their weight does not move with the models)."""
    n = a.size
    out = np.zeros(n)
    model_terms = []
    for m in models:
        resid = m.response - m.fit.fitted
        slope = log_weight_slope(m, a, estimand)
        if capped is not None:
            slope = np.where(capped, 0.0, slope)
        model_terms.append((m, resid, slope))
    for arm, mu_a, sign in ((1.0, mu[0], 1.0), (0.0, mu[1], -1.0)):
        in_arm = (a == arm) & (w > 0)
        phi = np.where(in_arm, w * (y0 - mu_a), 0.0)
        infl = phi.copy()
        for m, resid, slope in model_terms:
            d = m.x.T @ (phi * slope) / n
            infl += (m.x @ solve_spd(m.fit.information, d)) * resid
        out += sign * infl / (np.where(a == arm, w, 0.0).sum() / n)
    return out


@dataclass(frozen=True, kw_only=True)
class IPW(Estimator):
    """Inverse probability (of treatment and censoring) weighting.

    Settings beyond :class:`~ketaweight.causal.base.Estimator`:

    stabilized:
        Report stabilized weights (numerators P(A=a) and P(R=1 | A)); the estimate is the
        same either way (Hájek form).
    truncate:
        ``None`` or (lower, upper) percentiles at which to clip the weights, e.g. (1, 99), over both
        arms pooled.  With the ATT the treated weights are 1 and the controls' lie on another scale,
        so pooled percentiles can clip every treated weight; a warning says what was changed in each
        arm (prefer ``truncate_by_arm``).  The sandwich variance treats the clipping points as fixed.
    truncate_by_arm:
        ``None`` or an upper percentile, e.g. 99: each arm whose weights vary (both for the ATE and
        ATO, the controls for the ATT) is capped at its own percentile
        (:func:`ketaweight.causal.positivity.truncate_by_arm`); the share of each arm's weight removed
        is reported in ``diagnostics["truncation"]``.

    Example: the NHEFS analysis in :mod:`ketaweight.causal` (IPW with censoring weights 3.5 kg, as Hernán & Robins' Program 12.6).
    """

    method: ClassVar[str] = "ipw"
    variances: ClassVar[tuple[str, ...]] = ("sandwich", "fixed-weights", "bootstrap")
    stabilized: bool = True
    truncate: tuple[float, float] | None = None
    truncate_by_arm: float | None = None

    def _problems(self) -> list[str]:
        out = super()._problems()
        t = self.truncate
        if t is not None and not (len(t) == 2 and 0 <= t[0] < t[1] <= 100):
            out.append(f"truncate={t!r} must be None or (lower, upper) percentiles with 0 <= lower < upper <= 100")
        u = self.truncate_by_arm
        if u is not None and not (isinstance(u, (int, float)) and 50 < u <= 100):
            out.append(f"truncate_by_arm={u!r} must be None or an upper percentile in (50, 100], e.g. 99")
        if t is not None and u is not None:
            out.append("give truncate (pooled percentiles) or truncate_by_arm (each arm's own percentile), not both")
        return out

    def _fit(self, data: AnalysisData, log: WarningLog, *, analytic: bool) -> Fitted:
        estimand = data.spec.estimand
        ps = propensity_model(data)
        cm = censoring_model(data)
        models = [ps] if cm is None else [ps, cm]
        wa = treatment_weights(ps.fit.fitted, data.a, estimand, stabilized=self.stabilized)
        wc = (
            data.observed.astype(float)
            if cm is None
            else censoring_weights(cm.fit.fitted, data.observed, data.a, stabilized=self.stabilized)
        )
        raw = wa * wc
        truncation = None
        if self.truncate_by_arm is not None:
            w, truncation = truncate_by_arm(raw, data.a, estimand, float(self.truncate_by_arm))
            for arm, rec in truncation["arms"].items():
                if rec["share_of_weight_removed"] > TRUNCATION_WARN_SHARE:
                    log.warn(PositivityWarning,
                             f"truncation at the {self.truncate_by_arm:g}th percentile removed "
                             f"{rec['share_of_weight_removed']:.0%} of the {arm} arm's weight (threshold "
                             f"{TRUNCATION_WARN_SHARE:.0%}): the weight sits in a few rows, so the estimate no longer "
                             f"targets the {estimand}; trim to the common support instead (analyze --trim)")
        else:
            w = truncate_weights(raw, self.truncate)
            if self.truncate is not None:
                truncation = pooled_truncation_record(raw, w, data.a, self.truncate)
                changed = truncation["arms"]["treated"]["share_of_weight_changed"]
                if estimand != "ATE" and changed > 0:
                    log.warn(PositivityWarning,
                             f"pooled percentile truncation {list(self.truncate)} with the {estimand} changed "
                             f"{changed:.0%} of the treated arm's weight (threshold: any), whose weights are on another "
                             "scale than the controls'; use truncate_by_arm (analyze --truncate-by-arm) instead")
        capped = None if truncation is None else w != raw
        y0 = np.where(data.observed, data.y, 0.0)
        mu = hajek(w, data.a, y0)
        estimate = mu[0] - mu[1]
        se, text = float("nan"), ""
        if analytic and self.variance == "fixed-weights":
            obs = data.observed
            x = np.column_stack([np.ones(obs.sum()), data.a[obs]])
            fit = fit_linear(x, data.y[obs], sample_weight=w[obs])
            se = float(np.sqrt(linear_sandwich(fit, x, sample_weight=w[obs])[1, 1]))
            text = (
                "robust (HC0) sandwich of the weighted regression with the weights treated as known "
                "(GEE, independence working correlation, as Hernán & Robins 2020); ignores weight estimation"
            )
        elif analytic:
            infl = stacked_influence(w, data.a, y0, mu, models, estimand, capped)
            se = float(np.sqrt(np.sum(infl**2)) / data.n)
            text = (
                "sandwich: stacked estimating equations of the propensity"
                + (" and censoring" if cm is not None else "")
                + " logistic model(s) and the weighted means (accounts for estimating the weights"
                + ("; truncation points treated as fixed" if truncation else "")
                + ")"
            )
        return Fitted(
            estimate,
            se,
            text,
            ps.fit.fitted,
            models,
            wa,
            w,
            extra={
                "weights_stabilized": self.stabilized,
                "treatment_weights": _range(wa),
                "censoring_weights": None if cm is None else _range(wc[data.observed]),
                **({"truncation": truncation} if truncation else {}),
            },
        )

    def _bootstrap(self, data: AnalysisData) -> np.ndarray:
        if data.spec.estimand == "ATO" or self.truncate_by_arm is not None:  # the vectorised refits know ATE/ATT weights
            return super()._bootstrap(data)
        return bootstrap_ipw(
            data,
            n_bootstrap=self.n_bootstrap,
            seed=self.seed,
            n_jobs=n_workers(self.n_jobs),
            stabilized=self.stabilized,
            truncate=self.truncate,
            scheduler=self.scheduler,
        )


def _range(w: np.ndarray) -> dict[str, float]:
    return {"min": float(w.min()), "mean": float(w.mean()), "max": float(w.max())} if w.size else {}
