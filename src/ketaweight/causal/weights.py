"""Treatment (propensity) and censoring models, and the inverse probability weights they give.

Propensity e(L) = P(A = 1 | L) and the probability of remaining uncensored
π(A, L) = P(R = 1 | A, L) are logistic models on the spec's covariates (the treatment
always enters the censoring model, as in Hernán & Robins 2020, Program 12.7).

Weights (Hernán & Robins 2020, ch. 12; Sato & Matsuyama 2003 for the ATT):

* ATE: W = A/e + (1 − A)/(1 − e); stabilized: numerator P(A = a).
* ATT: W = A + (1 − A)·e/(1 − e); stabilized: controls × (1 − P(A=1))/P(A=1).
* ATO (overlap weights, Li, Morgan & Zaslavsky 2018): W = A(1 − e) + (1 − A)·e; bounded by 1, so
  stabilization does not apply.
* censoring: W_C = R/π; stabilized: numerator P(R = 1 | A) (the share uncensored in the arm).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ketaweight.causal.data import AnalysisData, memoised
from ketaweight.causal.glm import LogisticFit, fit_logistic
from ketaweight.causal.spec import Estimand


@dataclass(frozen=True)
class ModelFacts:
    """What the diagnostics report of a fitted logistic nuisance model, and its coefficients
    (``coef``, one per design column), without its data.

    Cross-fitted fold fits are kept as these (a few numbers each), so remembering them costs no
    copy of a design matrix (about 160 MB per fold at 1,000,000 rows × 25 columns)."""

    name: str
    n_parameters: int
    newton_steps: int
    converged: bool
    separated: bool
    deviance: float
    coef: np.ndarray = field(repr=False, compare=False)

    @classmethod
    def of(cls, name: str, fit: LogisticFit) -> ModelFacts:
        """The facts of ``fit`` (its parameters: one per design column)."""
        return cls(name, int(fit.coef.size), fit.n_iter, fit.converged, fit.separated, fit.deviance, fit.coef)

    def report(self) -> dict[str, object]:
        """Convergence facts for the diagnostics."""
        return {
            "model": self.name,
            "n_parameters": self.n_parameters,
            "newton_steps": self.newton_steps,
            "converged": self.converged,
            "separated": self.separated,
            "deviance": self.deviance,
        }


@dataclass(frozen=True)
class FittedModel:
    """A fitted logistic nuisance model with the matrix and response it was fitted to.

    ``x`` and ``response`` cover all analysed rows; ``fit.fitted`` gives the probability for
    every row; ``rows`` marks the rows that entered the likelihood (all, for these models).
    """

    name: str
    x: np.ndarray
    response: np.ndarray
    fit: LogisticFit

    @property
    def facts(self) -> ModelFacts:
        """The convergence facts the diagnostics report."""
        return ModelFacts.of(self.name, self.fit)


def propensity_model(data: AnalysisData, *, sample_weight: np.ndarray | None = None) -> FittedModel:
    """Fit e(L) = P(A = 1 | L) on every analysed row (censored rows included); without
    ``sample_weight`` fitted once per data object (:func:`~ketaweight.causal.data.memoised`)."""
    x = data.x.matrix
    if sample_weight is not None:
        return FittedModel("propensity", x, data.a, fit_logistic(x, data.a, sample_weight=sample_weight))
    return memoised(data, "propensity model", lambda: FittedModel("propensity", x, data.a, fit_logistic(x, data.a)))


def censoring_design(data: AnalysisData) -> np.ndarray:
    """Censoring-model matrix: the censoring covariates plus the treatment column (built once per
    data object; read-only for its users)."""
    assert data.z is not None, "censoring design requested without censored rows"
    return memoised(data, "censoring design", lambda: np.column_stack([data.z.matrix, data.a]))  # type: ignore[union-attr]


def censoring_model(data: AnalysisData) -> FittedModel | None:
    """Fit π(A, L) = P(uncensored | A, L) on every analysed row, once per data object; None when
    nothing is censored."""
    if not data.censored:
        return None

    def fit() -> FittedModel:
        x = censoring_design(data)
        r = data.observed.astype(float)
        return FittedModel("censoring", x, r, fit_logistic(x, r))

    return memoised(data, "censoring model", fit)


def treatment_weights(e: np.ndarray, a: np.ndarray, estimand: Estimand, *, stabilized: bool) -> np.ndarray:
    """Inverse probability of treatment weights per row (see module docstring).

    A separated propensity model (e of exactly 0 or 1) gives infinite weights; the model's
    :class:`~ketaweight.core.errors.SeparationWarning` reports it, so numpy's is silenced.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        return _treatment_weights(e, a, estimand, stabilized=stabilized)


def _treatment_weights(e: np.ndarray, a: np.ndarray, estimand: Estimand, *, stabilized: bool) -> np.ndarray:
    if estimand == "ATE":
        w = a / e + (1.0 - a) / (1.0 - e)
        if stabilized:
            p = a.mean()
            w = w * np.where(a == 1, p, 1.0 - p)
        return w
    if estimand == "ATO":
        return a * (1.0 - e) + (1.0 - a) * e
    w = a + (1.0 - a) * e / (1.0 - e)
    if stabilized:
        p = a.mean()
        w = np.where(a == 1, w, w * (1.0 - p) / p)
    return w


def censoring_weights(pi: np.ndarray, observed: np.ndarray, a: np.ndarray, *, stabilized: bool) -> np.ndarray:
    """Inverse probability of censoring weights R/π, zero for censored rows."""
    w = np.where(observed, 1.0 / pi, 0.0)
    if stabilized:
        share = np.where(a == 1, observed[a == 1].mean(), observed[a == 0].mean())
        w = w * share
    return w
