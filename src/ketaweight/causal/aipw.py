"""Cross-fitted augmented inverse probability weighting (doubly robust).

With outcome regressions m_a(L) (and, under censoring with post-baseline censoring covariates V,
Q_a(L, V) = E[Y | A=a, L, V, R=1] with m_a(L) = E[Q_a | A=a, L]; see
:mod:`ketaweight.causal.nuisance`), propensity e(L) and probability of being uncensored π, the
efficient influence function of a weighted average effect (Robins, Rotnitzky & Zhao 1994; Bang &
Robins 2005; Hirano, Imbens & Ridder 2003) gives

    ψ̂ = Σᵢ [tᵢ (m₁ − m₀) + g₁ᵢ (Rᵢ/πᵢ (Yᵢ − Q₁) + Q₁ − m₁) − g₀ᵢ (Rᵢ/πᵢ (Yᵢ − Q₀) + Q₀ − m₀)] / Σᵢ tᵢ

with, per estimand,

* ATE: t = 1, g₁ = A/e, g₀ = (1−A)/(1−e);
* ATT (Moodie et al. 2018): t = A, g₁ = A, g₀ = (1−A)·e/(1−e);
* ATO, the overlap-weighted effect E[e(1−e)(Y¹−Y⁰)] / E[e(1−e)] (Li, Morgan & Zaslavsky 2018):
  g₁ = A(1−e), g₀ = (1−A)e, t = e(1−e) + (1−2e)(A−e) — the last term is the derivative of the
  target weight e(1−e) in e, which makes the estimator (and its variance) account for the
  overlap population being estimated too.

Without post-baseline censoring covariates Q = m and the bracket is the familiar
R(Y − m)/π.  Nuisances are cross-fitted (Chernozhukov et al. 2018): rows are split into
``n_folds`` folds and each fold's nuisances come from models fit on the other folds, so flexible
learners do not bias the variance.  SE = SD(IF)/√n with IF = [t(m₁ − m₀ − ψ̂) + …]/mean(t).
Because one random split can move the estimate by a fair part of an SE in small samples,
``n_repeats`` > 1 repeats the cross-fitting on independent splits and reports the median estimate
with variance median(SEₛ² + (ψ̂ₛ − ψ̂)²) (Chernozhukov et al. 2018, §3.4).

Nuisance learners (:mod:`ketaweight.causal.learners`): ``learner="linear"`` (default) uses the numpy
logistic (propensity, censoring) and linear-by-arm (outcome) fits on the spec's design;
``learner="stacked"`` a super learner of a penalised GLM and gradient-boosted trees, ``learner="augmented"``
that super learner with GLMs on the leaves of shallow trees fitted to the treatment and the outcome too.  Any
scikit-learn classifier/regressor can also be passed (cloned per fold; fed the same design columns,
the outcome learner also gets A).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from ketaweight.causal.base import Estimator, Fitted
from ketaweight.causal.data import AnalysisData
from ketaweight.causal.diagnostics import WarningLog
from ketaweight.causal.learners import LEARNERS, Learner
from ketaweight.causal.nuisance import CrossFit, NuisanceSettings, baseline_regression, cross_fit
from ketaweight.causal.standardization import check_interactions
from ketaweight.causal.weights import censoring_weights, treatment_weights
from ketaweight.core.errors import PositivityWarning
from ketaweight.core.vocabulary import PROPENSITY_CALIBRATIONS, PropensityCalibration


def estimand_weights(e: np.ndarray, a: np.ndarray, estimand: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t, g₁, g₀) of the module docstring for ``estimand`` (ATE, ATT or ATO)."""
    if estimand == "ATE":
        return np.ones_like(e), a / e, (1 - a) / (1 - e)
    if estimand == "ATT":
        return a.copy(), a.copy(), (1 - a) * e / (1 - e)
    if estimand == "ATO":
        return e * (1 - e) + (1 - 2 * e) * (a - e), a * (1 - e), (1 - a) * e
    raise ValueError(f"unknown estimand {estimand!r}")


@dataclass(frozen=True, kw_only=True)
class DoublyRobust(Estimator):
    """Settings shared by the cross-fitted doubly robust estimators (AIPW, TMLE).

    Settings beyond :class:`~ketaweight.causal.base.Estimator`:

    learner:
        ``"linear"`` (default), ``"stacked"`` or ``"augmented"`` nuisance models (:mod:`ketaweight.causal.learners`).
    n_folds:
        Cross-fitting folds (≥ 2), or 1 to fit nuisances on all rows (no cross-fitting).
    n_repeats:
        Independent cross-fitting splits whose median is reported (1 = a single split).
    interactions:
        Treatment interactions of the linear outcome model (``"all"``: separate models by arm), as in
        :class:`~ketaweight.causal.standardization.Standardization`.
    propensity_learner, outcome_learner:
        Optional scikit-learn estimators (with ``predict_proba`` / ``predict``) replacing the
        propensity / outcome models of ``learner``.
    propensity_calibration:
        ``"none"`` (default) or ``"logistic"``: recalibrate the cross-fitted propensity by a logistic
        regression of the treatment on its logit (:func:`~ketaweight.causal.learners.calibrate_logit`).
    """

    learner: Learner = "linear"
    n_folds: int = 5
    n_repeats: int = 1
    interactions: Sequence[str] | Literal["all"] = "all"
    propensity_learner: Any = None
    outcome_learner: Any = None
    propensity_calibration: PropensityCalibration = "none"

    def _problems(self) -> list[str]:
        out = super()._problems()
        if self.learner not in LEARNERS:
            out.append(f"learner={self.learner!r} is not one of {list(LEARNERS)}")
        if not (isinstance(self.n_folds, int) and self.n_folds >= 1):
            out.append(f"n_folds={self.n_folds!r} must be a positive integer (1 = no cross-fitting)")
        if not (isinstance(self.n_repeats, int) and self.n_repeats >= 1):
            out.append(f"n_repeats={self.n_repeats!r} must be a positive integer")
        if self.propensity_calibration not in PROPENSITY_CALIBRATIONS:
            out.append(f"propensity_calibration={self.propensity_calibration!r} is not one of {list(PROPENSITY_CALIBRATIONS)}")
        if self.propensity_learner is not None and not hasattr(self.propensity_learner, "predict_proba"):
            out.append("propensity_learner must be a scikit-learn classifier with predict_proba")
        if self.outcome_learner is not None and not hasattr(self.outcome_learner, "predict"):
            out.append("outcome_learner must be a scikit-learn regressor with predict")
        return out

    def _validate(self, data: AnalysisData) -> None:
        problems = check_interactions(self.interactions, data.spec.covariates)
        if problems:
            raise ValueError(f"{type(self).__name__}: " + "; ".join(problems))
        super()._validate(data)

    def nuisance_settings(self) -> NuisanceSettings:
        """The settings that determine the cross-fitted nuisances (shared with other estimators)."""
        return NuisanceSettings(learner=self.learner, n_folds=self.n_folds, interactions=self.interactions,
                                propensity_learner=self.propensity_learner, outcome_learner=self.outcome_learner,
                                propensity_calibration=self.propensity_calibration)

    def _split_fit(self, data: AnalysisData, cf: CrossFit) -> tuple[float, np.ndarray, dict[str, Any]]:
        """(estimate, influence function per row, extra diagnostics) on one split's nuisances."""
        raise NotImplementedError

    def crossfit_once(self, data: AnalysisData, split: np.random.SeedSequence) -> tuple[float, np.ndarray]:
        """The estimate and influence function on one cross-fitting split (the DR-learner's pseudo-outcome
        is their sum); no diagnostics."""
        estimate, infl, _ = self._split_fit(data, cross_fit(data, self.nuisance_settings(), split))
        return estimate, infl

    def _fit(self, data: AnalysisData, log: WarningLog, *, analytic: bool) -> Fitted:
        splits = np.random.SeedSequence(self.seed).spawn(self.n_repeats)
        settings = self.nuisance_settings()
        fits = [cross_fit(data, settings, s) for s in splits]
        with np.errstate(divide="ignore", invalid="ignore"):  # a propensity of 0 or 1 is reported below, not here
            runs = [self._split_fit(data, cf) for cf in fits]
        estimates = np.array([r[0] for r in runs])
        variances = np.array([np.sum(r[1] ** 2) / data.n**2 for r in runs])
        estimate = float(np.median(estimates))
        se = float(np.sqrt(np.median(variances + (estimates - estimate) ** 2))) if analytic else float("nan")
        cf = fits[0]
        with np.errstate(divide="ignore"):
            wa = treatment_weights(cf.e, data.a, data.spec.estimand, stabilized=False)
        if not all(np.all(np.isfinite(treatment_weights(f.e, data.a, data.spec.estimand, stabilized=False)))
                   for f in fits) or not (math.isfinite(estimate) and (math.isfinite(se) or not analytic)):
            # No overlap: a cross-fitted propensity of exactly 0 or 1 for a patient of the other arm makes the
            # weighted terms undefined; an estimate from the remaining finite terms would be a number without
            # a meaning, so none is given.
            log.warn(PositivityWarning, f"{self.method.upper()} is undefined here: some patients have a propensity "
                     "of 0 or 1 (no overlap); restrict the population (trimming = \"crump\" or \"common-support\") "
                     "or change the question (estimand ATO)")
            estimate, se = float("nan"), float("nan")
        wc = data.observed.astype(float) if not data.censored else censoring_weights(cf.pi, data.observed, data.a,
                                                                                      stabilized=False)
        return Fitted(
            estimate,
            se,
            self._variance_text(),
            cf.e,
            list(cf.models),
            wa,
            wa * wc,
            extra={
                "cross_fitting_folds": self.n_folds,
                "cross_fitting_repeats": self.n_repeats,
                "split_estimates": estimates.tolist(),
                "learners": cf.report,
                **runs[0][2],
            },
        )

    def _variance_text(self) -> str:
        return (f"influence function of the {'cross-fitted ' if self.n_folds > 1 else ''}{self.method.upper()} estimator "
                f"(SD(IF)/sqrt(n); {self.n_folds} fold(s)"
                + (f"; median over {self.n_repeats} splits" if self.n_repeats > 1 else "") + ")")


@dataclass(frozen=True, kw_only=True)
class AIPW(DoublyRobust):
    """Cross-fitted AIPW (see the module docstring for the estimator and its settings)."""

    method: ClassVar[str] = "aipw"

    def _split_fit(self, data: AnalysisData, cf: CrossFit) -> tuple[float, np.ndarray, dict[str, Any]]:
        extra: dict[str, Any] = {}
        if cf.sequential:
            m, weights = baseline_regression(data, cf, self.learner, lambda arm, q: q, seed=self.seed)
            if weights:
                extra["baseline_regression_weights"] = weights
        else:
            m = cf.q
        return aipw_estimate(data, cf, m) + (extra,)


def aipw_estimate(data: AnalysisData, cf: CrossFit, m: dict[int, np.ndarray]) -> tuple[float, np.ndarray]:
    """The AIPW estimate and influence function (module docstring) from nuisances ``cf`` and the
    baseline regressions ``m`` (``m = cf.q`` without post-baseline censoring covariates)."""
    a, obs = data.a, data.observed
    r = obs.astype(float)
    y0 = np.where(obs, data.y, 0.0)
    t, g1, g0 = estimand_weights(cf.e, a, data.spec.estimand)
    q1, q0 = cf.q[1], cf.q[0]
    aug1 = g1 * (r * (y0 - q1) / cf.pi + (q1 - m[1] if cf.sequential else 0.0))
    aug0 = g0 * (r * (y0 - q0) / cf.pi + (q0 - m[0] if cf.sequential else 0.0))
    phi = t * (m[1] - m[0]) + aug1 - aug0
    estimate = float(phi.sum() / t.sum())
    return estimate, (phi - t * estimate) / t.mean()
