"""Standardization (the parametric g-formula) for a point treatment.

Fit an outcome model E[Y | A, L] = m(A, L; β) by least squares on rows with an observed
outcome, predict both counterfactual means for every row of the target population and
average: ψ̂ = (1/|T|) Σ_{i∈T} m(1, Lᵢ) − m(0, Lᵢ), with T = all analysed rows (ATE; censored
rows included, so censoring is handled by conditioning on A and L) or the treated (ATT).
NHEFS: 3.52 kg with the model of Hernán & Robins (2020, Program 13.2), which includes
``qsmk × smokeintensity``.

Sandwich variance: stacked estimating equations for β and ψ (Stefanski & Boos 2002):
IF_ψ,i = [Tᵢ(dᵢ − ψ) + hᵀ G⁻¹ Rᵢ xᵢ rᵢ] / P(T), with dᵢ the predicted difference,
h = mean Tᵢ(xᵢ⁽¹⁾ − xᵢ⁽⁰⁾), G = mean Rᵢ xᵢxᵢᵀ, rᵢ the residual.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from ketaweight.causal.base import Estimator, Fitted
from ketaweight.causal.data import AnalysisData
from ketaweight.causal.design import interaction_columns
from ketaweight.causal.diagnostics import WarningLog
from ketaweight.causal.glm import solve_spd
from ketaweight.causal.outcome import LinearOutcomeModel, fit_outcome_model
from ketaweight.causal.weights import propensity_model, treatment_weights


def check_interactions(interactions: Sequence[str] | str, covariates: Sequence[str]) -> list[str]:
    """Problems with an ``interactions`` setting against the spec's covariates."""
    if interactions == "all":
        return []
    if isinstance(interactions, str):
        return [f"interactions={interactions!r} must be 'all' or a sequence of covariate names"]
    unknown = [c for c in interactions if c not in covariates]
    return [f"interactions {unknown} are not covariates of the spec"] if unknown else []


@dataclass(frozen=True, kw_only=True)
class Standardization(Estimator):
    """Parametric g-formula with a linear outcome model.

    ``interactions``: covariates interacted with the treatment in the outcome model
    (``"all"``, the default, fits separate models by arm; ``()`` a common slope model;
    Hernán & Robins use ``("smokeintensity",)``).
    """

    method: ClassVar[str] = "standardization"
    estimands: ClassVar[tuple[str, ...]] = ("ATE", "ATT")
    interactions: Sequence[str] | Literal["all"] = "all"

    def _validate(self, data: AnalysisData) -> None:
        problems = check_interactions(self.interactions, data.spec.covariates)
        if problems:
            raise ValueError(f"{type(self).__name__}: " + "; ".join(problems))
        super()._validate(data)

    def _standardize(self, data: AnalysisData) -> tuple[LinearOutcomeModel, np.ndarray, np.ndarray, float]:
        """Outcome model, predicted differences d per row, target-row mask and ψ̂."""
        obs = data.observed
        x, a = data.x.matrix, data.a
        model = fit_outcome_model(x[obs], a[obs], data.y[obs], interaction_columns(data.x, self.interactions))
        m1, m0 = model.counterfactual(x)
        d = m1 - m0
        target = np.ones(data.n, bool) if data.spec.estimand == "ATE" else a == 1
        return model, d, target, float(d[target].mean())

    def _point(self, data: AnalysisData) -> float:
        return self._standardize(data)[3]

    def _fit(self, data: AnalysisData, log: WarningLog, *, analytic: bool) -> Fitted:
        obs = data.observed
        x, a = data.x.matrix, data.a
        model, d, target, estimate = self._standardize(data)
        cols = model.cols
        se = float("nan")
        if analytic:
            n = data.n
            xt = x[target]
            # h = mean over rows of T·(z⁽¹⁾ − z⁽⁰⁾), with z⁽¹⁾ − z⁽⁰⁾ = [0, …, 0, 1, x[cols]]
            h = np.concatenate([np.zeros(x.shape[1]), [xt.shape[0]], xt[:, cols].sum(axis=0)]) / n
            g_inv_h = solve_spd(model.gram / n, h)
            resid = data.y[obs] - model.z_dot(x[obs], a[obs], model.coef)
            infl = np.where(target, d - estimate, 0.0)
            infl[obs] += model.z_dot(x[obs], a[obs], g_inv_h) * resid
            infl /= target.mean()
            se = float(np.sqrt(np.sum(infl**2)) / n)
        ps = propensity_model(data)
        e = ps.fit.fitted
        return Fitted(
            estimate,
            se,
            "sandwich: stacked estimating equations of the linear outcome model and the standardized mean "
            "(influence function; accounts for estimating the outcome model)",
            e,
            [ps],
            treatment_weights(e, data.a, data.spec.estimand, stabilized=False),
            extra={"outcome_model": {"columns": int(model.coef.size), "n_fit": int(obs.sum())},
                   "potential_outcome_means_treated": self._treated_means(model, x, a)},
        )

    @staticmethod
    def _treated_means(model: LinearOutcomeModel, x: np.ndarray, a: np.ndarray) -> dict[str, float]:
        """The treated rows' mean outcome under treatment and under none (outcome units): the no-course
        reference that dose-response curves among the treated are read against."""
        m1, m0 = model.counterfactual(x[a == 1])
        return {"treated": float(m1.mean()), "untreated": float(m0.mean())} if m1.size else {}
