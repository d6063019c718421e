"""Cross-fitted targeted maximum likelihood estimation (TMLE) of the ATE or ATT.

TMLE (van der Laan & Rubin 2006; Gruber & van der Laan 2010 for a bounded continuous outcome)
starts from the same cross-fitted nuisances as AIPW (:mod:`ketaweight.causal.nuisance`) and
*targets* the outcome regressions before plugging them in, so the estimate is a mean of predicted
potential outcomes — it respects the outcome's range however extreme the weights — and solves the
efficient influence-function equation that AIPW adds as a correction.

Steps, for each arm a (outcome scaled to Y* = (Y − min Y)/(max Y − min Y) over the observed rows):

1. with censoring covariates that include post-baseline variables V (the sequential case of
   :mod:`ketaweight.causal.nuisance`): fluctuate Q_a(L, V) on the logit scale,
   logit Q*_a = logit Q_a + ε₂, ε₂ fitted by weighted logistic regression of Y* with offset logit Q_a
   among the uncensored rows of arm a, weights w₂ (below); then regress Q*_a on L in arm a (the
   cross-fitted baseline regression) to get m_a;
2. fluctuate m_a: logit m*_a = logit m_a + ε₁, fitted to Q*_a (to Y* directly without V) with
   weights w₁;
3. ψ_a = mean of m*_a over the target population; ψ̂ = (ψ₁ − ψ₀)·(max Y − min Y).

Weights (the "weighted" TMLE: the clever covariate enters as a weight of an intercept-only
fluctuation, which is more stable with large weights; Robins et al. 2007, Stitelman et al. 2012):

* ATE: w₂ = 1{A=a}R/(e_a π), w₁ = 1{A=a}/e_a, target = everyone (e₁ = e, e₀ = 1 − e);
* ATT: arm 1: w₂ = A·R/π, w₁ = A; arm 0: w₂ = (1−A)R·e/((1−e)π), w₁ = (1−A)·e/(1−e); target = the treated.

Each fluctuation solves Σ w (target − m*) = 0, so the efficient influence function
D_a = w₂(Y* − Q*_a) + w₁(Q*_a − m*_a) + T(m*_a − ψ_a), with T the target indicator, has mean zero;
SE = SD(D₁ − D₀)/(√n · mean T) on the outcome's scale.  Repeated cross-fitting as AIPW.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from scipy import optimize
from scipy.special import expit, logit

from ketaweight.causal.aipw import DoublyRobust
from ketaweight.causal.data import AnalysisData
from ketaweight.causal.nuisance import ARMS, CrossFit, baseline_regression
from ketaweight.core.errors import InputError, Location

BOUND = 1e-4
"""Scaled predictions are kept inside [BOUND, 1 − BOUND] before the logit."""


def fluctuate(offset_q: np.ndarray, target: np.ndarray, weight: np.ndarray) -> float:
    """ε solving Σ wᵢ (targetᵢ − expit(logit qᵢ + ε)) = 0: the weighted intercept-only logistic
    fluctuation with offset (quasi-binomial for a target in [0, 1]).  The score is decreasing in
    ε, so the root is unique; Newton steps, with Brent's method as the fallback."""
    rows = weight > 0
    if not rows.any():
        raise ValueError("a TMLE fluctuation has no rows with positive weight")
    off, y, w = logit(offset_q[rows]), target[rows], weight[rows]

    def score(eps: float) -> float:
        return float(np.dot(w, y - expit(off + eps)))

    eps = 0.0
    for _ in range(25):
        p = expit(off + eps)
        s, h = float(np.dot(w, y - p)), float(np.dot(w, p * (1 - p)))
        if h <= 0:
            break
        step = s / h
        eps += step
        if abs(step) < 1e-10:
            return eps
    lo, hi = -50.0, 50.0
    if score(lo) * score(hi) > 0:
        raise ValueError("a TMLE fluctuation has no root (the weighted target lies outside the predictions' range)")
    return float(optimize.brentq(score, lo, hi, xtol=1e-12))


@dataclass(frozen=True, kw_only=True)
class TMLE(DoublyRobust):
    """Cross-fitted TMLE of the ATE or ATT (see the module docstring); settings as
    :class:`~ketaweight.causal.aipw.AIPW`."""

    method: ClassVar[str] = "tmle"
    estimands: ClassVar[tuple[str, ...]] = ("ATE", "ATT")

    def _split_fit(self, data: AnalysisData, cf: CrossFit) -> tuple[float, np.ndarray, dict[str, Any]]:
        a, obs, estimand = data.a, data.observed, data.spec.estimand
        yo = data.y[obs]
        lo, hi = float(yo.min()), float(yo.max())
        span = hi - lo
        if not span > 0:
            raise InputError([(Location("table", column=data.spec.outcome),
                               "the observed outcome is constant; TMLE needs a range to scale to")])
        r = obs.astype(float)
        ys = np.where(obs, (np.where(obs, data.y, lo) - lo) / span, 0.0)

        def scaled(v: np.ndarray) -> np.ndarray:
            return np.clip((v - lo) / span, BOUND, 1 - BOUND)

        e = cf.e
        if estimand == "ATE":
            target = np.ones_like(a)
            w1 = {1: a / e, 0: (1 - a) / (1 - e)}
        else:
            target = a.copy()
            w1 = {1: a.copy(), 0: (1 - a) * e / (1 - e)}
        w2 = {arm: w1[arm] * r / cf.pi for arm in ARMS}
        q = {arm: scaled(cf.q[arm]) for arm in ARMS}
        eps2: dict[int, float] = {}
        eps1: dict[int, float] = {}
        if cf.sequential:
            qstar = {}
            for arm in ARMS:
                eps2[arm] = fluctuate(q[arm], ys, w2[arm])
                qstar[arm] = expit(logit(q[arm]) + eps2[arm])
            m, weights = baseline_regression(
                data, cf, self.learner, lambda arm, v: expit(logit(scaled(v)) + eps2[arm]), seed=self.seed,
                clip=(BOUND, 1 - BOUND))
        else:
            qstar, m, weights = None, q, {}
        mstar, infl = {}, np.zeros(data.n)
        psi = {}
        for arm in ARMS:
            fitted_to = ys if qstar is None else qstar[arm]
            w = w2[arm] if qstar is None else w1[arm]
            eps1[arm] = fluctuate(m[arm], fitted_to, w)
            mstar[arm] = expit(logit(m[arm]) + eps1[arm])
            psi[arm] = float(np.sum(target * mstar[arm]) / target.sum())
            d = target * (mstar[arm] - psi[arm])
            if qstar is None:
                d += w2[arm] * (ys - mstar[arm])
            else:
                d += w2[arm] * (ys - qstar[arm]) + w1[arm] * (qstar[arm] - mstar[arm])
            infl += d if arm == 1 else -d
        estimate = (psi[1] - psi[0]) * span
        extra: dict[str, Any] = {"tmle": {"outcome_bounds": [lo, hi],
                                          "fluctuation": {f"arm {arm}": {"baseline": eps1[arm], **({"post_baseline": eps2[arm]} if eps2 else {})}
                                                          for arm in ARMS}}}
        if weights:
            extra["baseline_regression_weights"] = weights
        return estimate, infl * span / target.mean(), extra
