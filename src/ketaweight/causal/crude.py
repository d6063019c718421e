"""Crude (unadjusted) difference in mean outcome between treated and untreated.

ψ̂ = Ȳ(A=1) − Ȳ(A=0) among rows with an observed outcome.  It ignores confounding and
censoring; it is reported beside the adjusted estimators to show how much adjustment
moves the answer.  NHEFS: 2.54 kg (1.66, 3.43) (Hernán & Robins 2020, Program 12.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ketaweight.causal.base import Estimator, Fitted
from ketaweight.causal.data import AnalysisData
from ketaweight.causal.diagnostics import WarningLog
from ketaweight.causal.weights import propensity_model, treatment_weights


@dataclass(frozen=True, kw_only=True)
class Crude(Estimator):
    """Unadjusted difference in means.

    ``variance``: ``"sandwich"`` (default; heteroskedasticity-robust HC0, i.e.
    s₁²/n₁ + s₀²/n₀ with n denominators), ``"model"`` (ordinary least squares with a common
    residual variance, as R's ``lm``), or ``"bootstrap"``.

    Example (NHEFS: the crude difference in weight change, quitters − non-quitters, kg)

    >>> from causaldata import nhefs
    >>> from ketaweight.causal import AnalysisSpec
    >>> spec = AnalysisSpec(treatment="qsmk", outcome="wt82_71", covariates=("age",))
    >>> round(Crude(variance="model").fit(nhefs.load_pandas().data, spec).estimate, 2)
    2.54
    """

    method: ClassVar[str] = "crude"
    variances: ClassVar[tuple[str, ...]] = ("sandwich", "model", "bootstrap")
    adjusted: ClassVar[bool] = False

    def _point(self, data: AnalysisData) -> float:
        y, a = data.y[data.observed], data.a[data.observed]
        return float(y[a == 1].mean() - y[a == 0].mean())

    def _fit(self, data: AnalysisData, log: WarningLog, *, analytic: bool) -> Fitted:
        obs = data.observed
        y, a = data.y[obs], data.a[obs]
        y1, y0 = y[a == 1], y[a == 0]
        estimate = self._point(data)
        se = float("nan")
        text = ""
        if analytic and self.variance == "model":
            rss = ((y1 - y1.mean()) ** 2).sum() + ((y0 - y0.mean()) ** 2).sum()
            sigma2 = rss / (y.size - 2) if y.size > 2 else float("nan")
            se = float(np.sqrt(sigma2 * (1 / y1.size + 1 / y0.size)))
            text = "model-based: ordinary least squares with a common residual variance (as R's lm)"
        elif analytic:
            se = float(np.sqrt(y1.var() / y1.size + y0.var() / y0.size))
            text = "sandwich: heteroskedasticity-robust HC0 (s1²/n1 + s0²/n0), rows with an observed outcome"
        ps = propensity_model(data)
        e = ps.fit.fitted
        return Fitted(
            estimate,
            se,
            text,
            e,
            [ps],
            treatment_weights(e, data.a, data.spec.estimand, stabilized=False),
            extra={"n_used": int(y.size), "note": "unadjusted; complete cases (censored rows ignored)"},
        )
