"""G-estimation of a linear structural nested mean model (closed form).

Model: E[Y^a − Y^0 | A = a, L] = ψ·a (one parameter, no effect modification), so the
effect is the same in everyone and the ATE equals the ATT.  With e(L) = P(A = 1 | L) and
censoring weights W_C = R/π(A, L) (unstabilized), ψ solves
Σᵢ W_Cᵢ (Aᵢ − eᵢ)(Yᵢ − ψAᵢ) = 0:

    ψ̂ = Σ W_Cᵢ (Aᵢ − eᵢ) Yᵢ / Σ W_Cᵢ (Aᵢ − eᵢ) Aᵢ

where the propensity model is fitted among the uncensored rows weighted by W_C (Hernán &
Robins 2020, Program 14.3; NHEFS: 3.446 kg).  Variance: stacked estimating equations of
the censoring model, the weighted propensity model and ψ, with a numerical Jacobian
(:mod:`ketaweight.causal.mestimation`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.special import expit

from ketaweight.causal.base import Estimator, Fitted
from ketaweight.causal.data import AnalysisData
from ketaweight.causal.diagnostics import WarningLog
from ketaweight.causal.glm import fit_logistic
from ketaweight.causal.mestimation import sandwich
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
            kz = 0 if z is None else z.shape[1]
            theta = np.concatenate([[] if cm is None else cm.fit.coef, ps.fit.coef, [estimate]])

            def estfun(t: np.ndarray) -> np.ndarray:
                parts = []
                w = obs.astype(float)
                if z is not None:
                    pi = expit(z @ t[:kz])
                    parts.append(z * (obs - pi)[:, None])
                    w = np.where(obs, 1.0 / pi, 0.0)
                ee = expit(x @ t[kz:-1])
                parts.append(x * (w * (a - ee))[:, None])
                parts.append((w * (a - ee) * (y0 - t[-1] * a))[:, None])
                return np.column_stack(parts)

            se = float(np.sqrt(sandwich(estfun, theta)[-1, -1]))
        models = [ps] if cm is None else [cm, ps]
        return Fitted(
            estimate,
            se,
            "sandwich: stacked estimating equations of the censoring model, the weighted propensity model and "
            "the SNMM parameter (numerical Jacobian; accounts for estimating both models)",
            e,
            models,
            treatment_weights(e, a, data.spec.estimand, stabilized=False),
            extra={"snmm": "E[Y^a - Y^0 | A=a, L] = psi*a (no effect modification; ATE = ATT)"},
        )
