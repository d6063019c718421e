"""Tiny hand-computable fixtures (7 rows, one binary confounder L; every model saturated).

L = 0: treated y = {4}, untreated y = {1, 3}      → e(0) = 1/3, stratum effect 2
L = 1: treated y = {6, 8, 10}, untreated y = {5}  → e(1) = 3/4, stratum effect 3
ATE = 2·3/7 + 3·4/7 = 18/7; ATT = 2·1/4 + 3·3/4 = 11/4; crude = 7 − 3 = 4;
g-estimation weights strata by n·e(1−e): (2·2/3 + 3·3/4)/(2/3 + 3/4) = 43/17, which is also the
overlap-weighted effect (ATO: target weight e(1−e)).
Unstabilized IPW weights: treated 3, 4/3, 4/3, 4/3; untreated 3/2, 3/2, 4.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from ketaweight.causal import AIPW, IPW, AnalysisSpec, Crude, GEstimation, Standardization
from ketaweight.causal.data import prepare
from ketaweight.causal.tmle import TMLE
from ketaweight.causal.weights import propensity_model, treatment_weights
from ketaweight.core.errors import KetaweightWarning

TABLE = pd.DataFrame(
    {
        "L": [0, 0, 0, 1, 1, 1, 1],
        "A": [1, 0, 0, 1, 1, 1, 0],
        "Y": [4.0, 1.0, 3.0, 6.0, 8.0, 10.0, 5.0],
    }
)
SPEC = AnalysisSpec(treatment="A", outcome="Y", covariates=("L",))


def test_propensity_and_weights_by_hand():
    data = prepare(TABLE, SPEC)
    e = propensity_model(data).fit.fitted
    np.testing.assert_allclose(e, [1 / 3, 1 / 3, 1 / 3, 3 / 4, 3 / 4, 3 / 4, 3 / 4], atol=1e-9)
    w = treatment_weights(e, data.a, "ATE", stabilized=False)
    np.testing.assert_allclose(w, [3, 1.5, 1.5, 4 / 3, 4 / 3, 4 / 3, 4], atol=1e-8)
    sw = treatment_weights(e, data.a, "ATE", stabilized=True)
    np.testing.assert_allclose(sw, w * np.where(data.a == 1, 4 / 7, 3 / 7), atol=1e-8)


@pytest.mark.parametrize(
    ("estimator", "estimand", "expected"),
    [
        (Crude(), "ATE", 4.0),
        (IPW(), "ATE", 18 / 7),
        (IPW(stabilized=False), "ATE", 18 / 7),
        (IPW(), "ATT", 11 / 4),
        (Standardization(), "ATE", 18 / 7),
        (Standardization(), "ATT", 11 / 4),
        (AIPW(n_folds=1), "ATE", 18 / 7),
        (AIPW(n_folds=1), "ATT", 11 / 4),
        (TMLE(n_folds=1), "ATE", 18 / 7),
        (TMLE(n_folds=1), "ATT", 11 / 4),
        (IPW(), "ATO", 43 / 17),
        (AIPW(n_folds=1), "ATO", 43 / 17),
        (GEstimation(), "ATE", 43 / 17),
    ],
    ids=lambda v: getattr(v, "method", str(v)),
)
def test_estimates_by_hand(estimator, estimand, expected):
    spec = AnalysisSpec(treatment="A", outcome="Y", covariates=("L",), estimand=estimand)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KetaweightWarning)  # 7 rows trip the diagnostics; not under test
        r = estimator.fit(TABLE, spec)
    assert r.estimate == pytest.approx(expected, abs=1e-8)
    assert r.n == 7


def test_crude_variances_by_hand():
    """Treated y = 4,6,8,10 (mean 7, population var 5); untreated 1,3,5 (mean 3, var 8/3).
    HC0: √(5/4 + (8/3)/3); OLS: RSS = 20 + 8 = 28, σ² = 28/5, √(σ²(1/4 + 1/3))."""
    r = Crude().fit(TABLE, SPEC)
    assert r.se == pytest.approx(np.sqrt(5 / 4 + 8 / 9), abs=1e-12)
    r = Crude(variance="model").fit(TABLE, SPEC)
    assert r.se == pytest.approx(np.sqrt(28 / 5 * (1 / 4 + 1 / 3)), abs=1e-12)
