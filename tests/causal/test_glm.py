"""The numpy fits against statsmodels (reference implementation) on NHEFS, and their flags."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

from ketaweight.causal.data import prepare
from ketaweight.causal.glm import fit_linear, fit_logistic, linear_sandwich


def test_logistic_matches_statsmodels(nhefs, nhefs_spec):
    data = prepare(nhefs, nhefs_spec())
    ours = fit_logistic(data.x.matrix, data.a)
    ref = sm.GLM(data.a, data.x.matrix, family=sm.families.Binomial()).fit(tol=1e-12)
    assert ours.converged and not ours.separated
    np.testing.assert_allclose(ours.coef, ref.params, atol=1e-7)
    assert ours.deviance == pytest.approx(ref.deviance, rel=1e-10)
    # information matrix = inverse of statsmodels' covariance / n
    np.testing.assert_allclose(np.linalg.inv(ours.information * data.n), ref.cov_params(), rtol=1e-6)


def test_weighted_logistic_equals_frequency_expansion():
    rng = np.random.default_rng(0)
    x = np.column_stack([np.ones(200), rng.normal(size=200)])
    y = (rng.random(200) < 0.4).astype(float)
    counts = rng.integers(0, 3, 200)
    weighted = fit_logistic(x, y, sample_weight=counts.astype(float))
    expanded = fit_logistic(np.repeat(x, counts, axis=0), np.repeat(y, counts))
    np.testing.assert_allclose(weighted.coef, expanded.coef, atol=1e-9)


def test_separation_and_non_convergence_are_flagged():
    x = np.column_stack([np.ones(8), np.arange(8.0)])
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1.0])
    fit = fit_logistic(x, y)
    assert fit.separated
    fit = fit_logistic(x[:, :1], np.array([0, 1, 0, 1, 1, 0, 1, 1.0]), max_iter=1)
    assert not fit.converged and fit.n_iter == 1


def test_linear_sandwich_matches_statsmodels_hc0():
    rng = np.random.default_rng(1)
    x = np.column_stack([np.ones(300), rng.normal(size=300), rng.random(300)])
    y = x @ [1.0, 2.0, -1.0] + rng.normal(size=300) * (1 + x[:, 2])
    w = rng.uniform(0.5, 3.0, 300)
    ours = fit_linear(x, y, sample_weight=w)
    ref = sm.WLS(y, x, weights=w).fit(cov_type="HC0")
    np.testing.assert_allclose(ours.coef, ref.params, atol=1e-10)
    np.testing.assert_allclose(linear_sandwich(ours, x, sample_weight=w), ref.cov_params(), rtol=1e-8)
