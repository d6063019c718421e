"""G-estimation of a linear structural nested mean model (closed form).

Model: E[Y^a − Y^0 | A = a, L] = ψ·a (one parameter, no effect modification), so the
effect is the same in everyone and the ATE equals the ATT.  With e(L) = P(A = 1 | L) and
censoring weights W_C = R/π(A, L) (unstabilized), ψ solves
Σᵢ W_Cᵢ (Aᵢ − eᵢ)(Yᵢ − ψAᵢ) = 0:

    ψ̂ = Σ W_Cᵢ (Aᵢ − eᵢ) Yᵢ / Σ W_Cᵢ (Aᵢ − eᵢ) Aᵢ

where the propensity model is fitted among the uncensored rows weighted by W_C (Hernán &
Robins 2020, Program 14.3; NHEFS: 3.446 kg).  Variance: the sandwich of the stacked estimating
equations of the censoring model (γ), the weighted propensity model (β) and ψ (Stefanski & Boos
2002), with the Jacobian in closed form: the equations are linear in ψ and the stack is block
lower-triangular (γ, then β given γ, then ψ), so only ψ's row of the inverse is needed, by back
substitution (:func:`snmm_variance`).  Two weighted Gram matrices and a few matrix-vector
products at n = 10⁶, instead of 2·dim(θ) + 1 evaluations of every row's estimating functions for a
numerical Jacobian; ``tests/causal/test_gestimation_variance.py`` checks it against the generic
numerical one (:mod:`ketaweight.causal.mestimation`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ketaweight.causal.base import Estimator, Fitted
from ketaweight.causal.data import AnalysisData
from ketaweight.causal.diagnostics import WarningLog
from ketaweight.causal.glm import fit_logistic, solve_spd, weighted_gram
from ketaweight.causal.weights import FittedModel, censoring_design, censoring_model, treatment_weights


@dataclass(frozen=True, kw_only=True)
class GEstimation(Estimator):
    """G-estimation of the one-parameter linear SNMM (constant effect, so ATE = ATT)."""

    method: ClassVar[str] = "g-estimation"

    def _fit(self, data: AnalysisData, log: WarningLog, *, analytic: bool) -> Fitted:
        x, a, obs = data.x.matrix, data.a, data.observed
        cm = censoring_model(data)
        wc = obs.astype(float) if cm is None else np.where(obs, 1.0 / cm.fit.fitted, 0.0)
        ps = FittedModel("propensity", x, a, fit_logistic(x, a, sample_weight=wc))
        e = ps.fit.fitted
        y0 = np.where(obs, data.y, 0.0)
        estimate = float(np.sum(wc * (a - e) * y0) / np.sum(wc * (a - e) * a))
        se = float("nan")
        if analytic:
            z = None if cm is None else censoring_design(data)
            pi = None if cm is None else cm.fit.fitted
            se = float(np.sqrt(snmm_variance(x, a, y0, obs, e, estimate, z, pi)))
        models = [ps] if cm is None else [cm, ps]
        return Fitted(
            estimate,
            se,
            "sandwich: stacked estimating equations of the censoring model, the weighted propensity model and "
            "the SNMM parameter (analytic Jacobian; accounts for estimating both models)",
            e,
            models,
            treatment_weights(e, a, data.spec.estimand, stabilized=False),
            extra={"snmm": "E[Y^a - Y^0 | A=a, L] = psi*a (no effect modification; ATE = ATT)"},
        )


def snmm_variance(x: np.ndarray, a: np.ndarray, y0: np.ndarray, observed: np.ndarray, e: np.ndarray, psi: float,
                  z: np.ndarray | None = None, pi: np.ndarray | None = None) -> float:
    """Var(ψ̂) (outcome units²) from the stacked estimating equations, summed over rows i:

    * censoring model (with ``z``, ``pi`` = π(z γ̂)): U_c = z (R − π);
    * propensity model, weighted by W = R/π (R without censoring): U_e = x W (A − e);
    * the SNMM: U_ψ = W (A − e)(Y − ψA) (``y0``: Y, 0 where censored).

    Var = gᵀ (Σ UᵢUᵢᵀ) g = Σ (Uᵢ·g)² with g = J⁻ᵀ e_ψ, J = ∂ΣU/∂θ.  J is block lower-triangular:
    ∂U_c/∂γ = −Σ π(1−π) z zᵀ; ∂U_e/∂γ = −Σ W(1−π)(A−e) x zᵀ (∂W/∂γ = −W(1−π)z);
    ∂U_e/∂β = −Σ W e(1−e) x xᵀ; ∂U_ψ/∂γ = −Σ W(1−π)(A−e)(Y−ψA) zᵀ;
    ∂U_ψ/∂β = −Σ W e(1−e)(Y−ψA) xᵀ; ∂U_ψ/∂ψ = −Σ W(A−e)A.  Back substitution gives g's blocks
    without forming the off-diagonal blocks (only their products with g)."""
    w = observed.astype(float) if pi is None else np.where(observed, 1.0 / pi, 0.0)
    resid = a - e
    r_psi = y0 - psi * a
    g_psi = -1.0 / float(np.sum(w * resid * a))
    h_e = x.T @ (w * e * (1.0 - e) * r_psi)
    g_e = -solve_spd(weighted_gram(x, w * e * (1.0 - e)), h_e) * g_psi
    xg = x @ g_e
    contribution = w * resid * (xg + r_psi * g_psi)  # u_e·g_e + u_ψ g_ψ per row
    if z is not None and pi is not None:
        q = -(z.T @ (w * (1.0 - pi) * resid * (xg + r_psi * g_psi)))
        g_c = solve_spd(weighted_gram(z, pi * (1.0 - pi)), q)
        contribution = contribution + (observed - pi) * (z @ g_c)
    return float(np.dot(contribution, contribution))
