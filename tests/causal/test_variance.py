"""Closed-form sandwich variances against the generic numerical stacked sandwich, and the
vectorised IPW bootstrap against the generic one."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from causal_synthetic import CONFOUNDED_SPEC, confounded_table
from ketaweight.causal import IPW, Estimator, Standardization
from ketaweight.causal.data import prepare
from ketaweight.causal.design import interaction_columns
from ketaweight.causal.mestimation import sandwich
from ketaweight.causal.weights import censoring_design, censoring_model, propensity_model


def test_ipw_stacked_se_equals_numerical_sandwich(nhefs, nhefs_spec):
    """Propensity logistic + censoring logistic + two weighted means, stacked, on NHEFS."""
    data = prepare(nhefs, nhefs_spec(censor="censored"))
    r = IPW(stabilized=False).fit(data)
    x, z, a, obs = data.x.matrix, censoring_design(data), data.a, data.observed
    y0 = np.where(obs, data.y, 0.0)
    kx, kz = x.shape[1], z.shape[1]

    def estfun(t):
        e, pi = expit(x @ t[:kx]), expit(z @ t[kx : kx + kz])
        w = (a / e + (1 - a) / (1 - e)) * np.where(obs, 1 / pi, 0.0)
        mu1, mu0 = t[-2], t[-1]
        return np.column_stack(
            [x * (a - e)[:, None], z * (obs - pi)[:, None], a * w * (y0 - mu1), (1 - a) * w * (y0 - mu0)]
        )

    assert {m["model"] for m in r.diagnostics["models"]} == {"propensity", "censoring"}
    theta = np.concatenate([propensity_model(data).fit.coef, censoring_model(data).fit.coef, [0.0, 0.0]])
    e, pi = expit(x @ theta[:kx]), expit(z @ theta[kx : kx + kz])
    ww = (a / e + (1 - a) / (1 - e)) * np.where(obs, 1 / pi, 0.0)
    theta[-2] = np.sum(a * ww * y0) / np.sum(a * ww)
    theta[-1] = np.sum((1 - a) * ww * y0) / np.sum((1 - a) * ww)
    cov = sandwich(estfun, theta)
    se = np.sqrt(cov[-2, -2] + cov[-1, -1] - 2 * cov[-2, -1])
    assert theta[-2] - theta[-1] == pytest.approx(r.estimate, abs=1e-10)
    assert r.se == pytest.approx(se, rel=1e-5)


def outcome_matrix(x: np.ndarray, a: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The explicit outcome-model matrix [X, a, a·X_k] that ketaweight.causal.outcome avoids building."""
    return np.column_stack([x, a, x[:, cols] * a[:, None]])


def test_standardization_se_equals_numerical_sandwich(nhefs, nhefs_spec):
    data = prepare(nhefs, nhefs_spec(missing_outcome="censor"))
    r = Standardization(interactions=("smokeintensity",)).fit(data)
    cols = interaction_columns(data.x, ("smokeintensity",))
    xa = outcome_matrix(data.x.matrix, data.a, cols)
    dx = outcome_matrix(data.x.matrix, np.ones(data.n), cols) - outcome_matrix(data.x.matrix, np.zeros(data.n), cols)
    obs = data.observed
    y0 = np.where(obs, data.y, 0.0)
    beta = np.linalg.lstsq(xa[obs], data.y[obs], rcond=None)[0]

    def estfun(t):
        resid = np.where(obs, y0 - xa @ t[:-1], 0.0)
        return np.column_stack([xa * resid[:, None], dx @ t[:-1] - t[-1]])

    theta = np.concatenate([beta, [r.estimate]])
    se = np.sqrt(sandwich(estfun, theta)[-1, -1])
    assert r.se == pytest.approx(se, rel=1e-5)


def test_fast_ipw_bootstrap_equals_generic_bootstrap():
    """Same seeds → same rows → the vectorised refits give the generic refits' estimates."""
    table = confounded_table(600, effect=1.0, seed=3)
    data = prepare(table, CONFOUNDED_SPEC)
    est = IPW(variance="bootstrap", n_bootstrap=30, seed=9, n_jobs=2)
    fast = est._bootstrap(data)
    generic = Estimator._bootstrap(est, data)
    np.testing.assert_allclose(fast, generic, rtol=0, atol=1e-5)  # chord stop 1e-6 vs Newton; SE here ≈ 0.15
    again = IPW(variance="bootstrap", n_bootstrap=30, seed=9, n_jobs=1)._bootstrap(data)
    np.testing.assert_array_equal(fast, again)


def test_fast_ipw_bootstrap_with_censoring_and_truncation_equals_generic(nhefs, nhefs_spec):
    data = prepare(nhefs, nhefs_spec(censor="censored"))
    est = IPW(variance="bootstrap", n_bootstrap=12, seed=4, truncate=(1.0, 99.0))
    np.testing.assert_allclose(est._bootstrap(data), Estimator._bootstrap(est, data), rtol=0, atol=1e-5)


def test_bootstrap_se_close_to_sandwich_on_nhefs(nhefs, nhefs_spec):
    """1000 replicates: the bootstrap SE of IPW is within 10% of the stacked sandwich SE."""
    spec = nhefs_spec()
    boot = IPW(variance="bootstrap", n_bootstrap=1000, seed=1).fit(nhefs, spec)
    assert boot.se == pytest.approx(IPW().fit(nhefs, spec).se, rel=0.10)


def test_ipw_att_stacked_se_equals_numerical_sandwich():
    """ATT weights: treated 1, controls e/(1−e); propensity logistic + two weighted means."""
    import dataclasses

    table = confounded_table(2000, effect=1.0, seed=21)
    data = prepare(table, dataclasses.replace(CONFOUNDED_SPEC, estimand="ATT"))
    r = IPW(stabilized=False).fit(data)
    x, a, y = data.x.matrix, data.a, data.y
    k = x.shape[1]

    def estfun(t):
        e = expit(x @ t[:k])
        w = a + (1 - a) * e / (1 - e)
        return np.column_stack([x * (a - e)[:, None], a * w * (y - t[-2]), (1 - a) * w * (y - t[-1])])

    beta = propensity_model(data).fit.coef
    e = expit(x @ beta)
    w = a + (1 - a) * e / (1 - e)
    theta = np.concatenate([beta, [np.sum(a * y) / a.sum(), np.sum((1 - a) * w * y) / np.sum((1 - a) * w)]])
    cov = sandwich(estfun, theta)
    assert theta[-2] - theta[-1] == pytest.approx(r.estimate, abs=1e-10)
    assert r.se == pytest.approx(np.sqrt(cov[-2, -2] + cov[-1, -1] - 2 * cov[-2, -1]), rel=1e-5)


def test_ipw_bootstrap_newton_fallback(monkeypatch):
    """With one chord step allowed, every replicate falls back to full Newton: same answers."""
    import ketaweight.causal.ipw_bootstrap as ib

    data = prepare(confounded_table(400, effect=1.0, seed=8), CONFOUNDED_SPEC)
    est = IPW(variance="bootstrap", n_bootstrap=8, seed=2)
    expected = Estimator._bootstrap(est, data)
    monkeypatch.setattr(ib, "CHORD_MAX_ITER", 1)
    np.testing.assert_allclose(est._bootstrap(data), expected, rtol=0, atol=1e-6)
