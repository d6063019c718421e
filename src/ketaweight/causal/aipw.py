"""Cross-fitted augmented inverse probability weighting (doubly robust).

With outcome models m_a(L) = E[Y | A=a, L, R=1], propensity e(L) and probability of being
uncensored π(A, L), the efficient influence function of the ATE under missing-at-random
censoring (Robins, Rotnitzky & Zhao 1994; Bang & Robins 2005) gives

    φᵢ = m₁(Lᵢ) − m₀(Lᵢ) + AᵢRᵢ(Yᵢ − m₁)/(eᵢπᵢ) − (1−Aᵢ)Rᵢ(Yᵢ − m₀)/((1−eᵢ)πᵢ),   ψ̂ = mean φ,

and for the ATT (Moodie et al. 2018): ψ̂ = Σ[Aᵢ(m₁ − m₀) + AᵢRᵢ(Yᵢ − m₁)/πᵢ
− (1−Aᵢ)Rᵢeᵢ(Yᵢ − m₀)/((1−eᵢ)πᵢ)] / ΣAᵢ.  Nuisances are cross-fitted (Chernozhukov et al.
2018): rows are split into ``n_folds`` folds and each fold's predictions come from models fit
on the other folds, so flexible learners do not bias the variance.  SE = SD(IF)/√n.  Because one random split
can move the estimate by a fair part of an SE in small samples, ``n_repeats`` > 1 repeats
the cross-fitting on independent splits and reports the median estimate with variance
median(SEₛ² + (ψ̂ₛ − ψ̂)²) (Chernozhukov et al. 2018, §3.4).

Default nuisance models are the numpy logistic (propensity, censoring) and linear (outcome)
fits on the spec's design; any scikit-learn classifier/regressor can be passed instead
(cloned per fold; fed the same design columns, the outcome learner also gets A).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
from scipy.special import expit
from sklearn.base import clone

from ketaweight.causal.base import Estimator, Fitted
from ketaweight.causal.data import AnalysisData
from ketaweight.causal.design import interaction_columns
from ketaweight.causal.diagnostics import WarningLog
from ketaweight.causal.glm import fit_logistic
from ketaweight.causal.outcome import fit_outcome_model
from ketaweight.causal.standardization import check_interactions
from ketaweight.causal.weights import FittedModel, censoring_design, censoring_weights, treatment_weights


@dataclass(frozen=True, kw_only=True)
class AIPW(Estimator):
    """Cross-fitted AIPW.

    Settings beyond :class:`~ketaweight.causal.base.Estimator`:

    n_folds:
        Cross-fitting folds (≥ 2), or 1 to fit nuisances on all rows (no cross-fitting).
    n_repeats:
        Independent cross-fitting splits whose median is reported (1 = a single split).
    interactions:
        Treatment interactions of the default linear outcome model (``"all"``: separate
        models by arm), as in :class:`~ketaweight.causal.standardization.Standardization`.
    propensity_learner, outcome_learner:
        Optional scikit-learn estimators (with ``predict_proba`` / ``predict``) replacing
        the logistic / linear defaults.
    """

    method: ClassVar[str] = "aipw"
    n_folds: int = 5
    n_repeats: int = 1
    interactions: Sequence[str] | Literal["all"] = "all"
    propensity_learner: Any = None
    outcome_learner: Any = None

    def _problems(self) -> list[str]:
        out = super()._problems()
        if not (isinstance(self.n_folds, int) and self.n_folds >= 1):
            out.append(f"n_folds={self.n_folds!r} must be a positive integer (1 = no cross-fitting)")
        if not (isinstance(self.n_repeats, int) and self.n_repeats >= 1):
            out.append(f"n_repeats={self.n_repeats!r} must be a positive integer")
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

    def _folds(self, n: int, seed: np.random.SeedSequence) -> list[tuple[np.ndarray, np.ndarray]]:
        """(train, test) row masks; one fold means train = test = all rows."""
        if self.n_folds == 1:
            every = np.ones(n, dtype=bool)
            return [(every, every)]
        fold = np.random.default_rng(seed).permutation(n) % self.n_folds
        return [(fold != k, fold == k) for k in range(self.n_folds)]

    def _fit(self, data: AnalysisData, log: WarningLog, *, analytic: bool) -> Fitted:
        splits = np.random.SeedSequence(self.seed).spawn(self.n_repeats)
        runs = [self._crossfit(data, s) for s in splits]
        estimates = np.array([r[0] for r in runs])
        variances = np.array([np.sum(r[1] ** 2) / data.n**2 for r in runs])
        estimate = float(np.median(estimates))
        se = float(np.sqrt(np.median(variances + (estimates - estimate) ** 2))) if analytic else float("nan")
        _, _, e, wa, w, models = runs[0]
        return Fitted(
            estimate,
            se,
            f"influence function of the {'cross-fitted ' if self.n_folds > 1 else ''}AIPW estimator "
            f"(SD(IF)/sqrt(n); {self.n_folds} fold(s)"
            + (f"; median over {self.n_repeats} splits" if self.n_repeats > 1 else "")
            + ")",
            e,
            models,
            wa,
            w,
            extra={
                "cross_fitting_folds": self.n_folds,
                "cross_fitting_repeats": self.n_repeats,
                "split_estimates": estimates.tolist(),
            },
        )

    def _crossfit(
        self, data: AnalysisData, split: np.random.SeedSequence
    ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[FittedModel]]:
        """One cross-fitting split: (estimate, influence function, e, treatment weights,
        weights used, nuisance models)."""
        x, a, obs, n = data.x.matrix, data.a, data.observed, data.n
        y0 = np.where(obs, data.y, 0.0)
        xz = censoring_design(data) if data.censored else None
        cols = interaction_columns(data.x, self.interactions)
        e, pi, m1, m0 = (np.empty(n) for _ in range(4))
        pi[:] = 1.0
        models: list[FittedModel] = []
        start_e = start_c = None  # folds' fits differ by O(n^-1/2): warm-start each from the previous
        for k, (train, test) in enumerate(self._folds(n, split)):
            tag = "" if self.n_folds == 1 else f" (fold {k + 1})"
            xtr, atr, xte, obs_tr = x[train], a[train], x[test], obs[train]  # one copy of each, reused
            if self.propensity_learner is None:
                fit = fit_logistic(xtr, atr, start=start_e)
                start_e = fit.coef
                models.append(FittedModel("propensity" + tag, xtr, atr, fit))
                e[test] = expit(xte @ fit.coef)
            else:
                e[test] = clone(self.propensity_learner).fit(xtr, atr).predict_proba(xte)[:, 1]
            if xz is not None:
                rtr = obs_tr.astype(float)
                fit_c = fit_logistic(xz[train], rtr, start=start_c)
                start_c = fit_c.coef
                models.append(FittedModel("censoring" + tag, fit_c.x, rtr, fit_c))
                pi[test] = expit(xz[test] @ fit_c.coef)
            ytr = data.y[train]
            xo, ao, yo = (xtr, atr, ytr) if obs_tr.all() else (xtr[obs_tr], atr[obs_tr], ytr[obs_tr])
            if self.outcome_learner is None:
                m1[test], m0[test] = fit_outcome_model(xo, ao, yo, cols).counterfactual(xte)
            else:
                learner = clone(self.outcome_learner).fit(np.column_stack([xo, ao]), yo)
                m1[test] = learner.predict(np.column_stack([xte, np.ones(len(xte))]))
                m0[test] = learner.predict(np.column_stack([xte, np.zeros(len(xte))]))
        r = obs.astype(float)
        if data.spec.estimand == "ATE":
            phi = m1 - m0 + a * r * (y0 - m1) / (e * pi) - (1 - a) * r * (y0 - m0) / ((1 - e) * pi)
            estimate = float(phi.mean())
            infl = phi - estimate
        else:
            p1 = a.mean()
            phi = a * (m1 - m0) + a * r * (y0 - m1) / pi - (1 - a) * r * e * (y0 - m0) / ((1 - e) * pi)
            estimate = float(phi.sum() / a.sum())
            infl = (phi - a * estimate) / p1
        wa = treatment_weights(e, a, data.spec.estimand, stabilized=False)
        wc = r if xz is None else censoring_weights(pi, obs, a, stabilized=False)
        return estimate, infl, e, wa, wa * wc, models
