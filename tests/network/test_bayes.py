"""Bayesian random-effects pooling and the likelihood approximations a bundle carries."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ketaweight.core.errors import InputError
from ketaweight.network.bayes import _hdi, _trapezoid_weights, bayesian_meta_analysis
from ketaweight.network.likelihood import (
    GridLikelihood, NormalLikelihood, empirical_likelihood_profile, likelihood_from_dict,
)

Y = np.array([-0.5, -0.6, -0.45, -0.3, -0.55])
S = np.array([0.03, 0.05, 0.04, 0.06, 0.03])


def test_empirical_likelihood_by_hand():
    """φ = (0, 1), θ = 0.25: λ = 4/3, weights (3/4, 1/4), log R = log(n·p₁) + log(n·p₂) = −log(4/3)."""
    el = empirical_likelihood_profile(np.array([0.0, 1.0, 0.5]), [0.25, 0.5, 0.75])
    assert el.values[1] == pytest.approx(0.0, abs=1e-12)  # at the mean
    lk = empirical_likelihood_profile(np.array([0.0, 1.0, 0.0, 1.0]), [0.25, 0.5, 0.6])
    assert lk.values[0] == pytest.approx(2 * -math.log(4 / 3), rel=1e-10)  # two copies of the pair


def test_empirical_likelihood_is_chi_square_like_and_keeps_skew():
    rng = np.random.default_rng(7)
    phi = rng.normal(1.0, 2.0, 20_000)
    se = phi.std(ddof=1) / math.sqrt(len(phi))
    el = empirical_likelihood_profile(phi, phi.mean() + se * np.array([-1.0, 0.0, 1.0]))
    assert -2 * el.values[0] == pytest.approx(1.0, rel=0.03) and -2 * el.values[2] == pytest.approx(1.0, rel=0.03)
    skewed = empirical_likelihood_profile(rng.exponential(1.0, 60))
    v = np.array(skewed.values)
    mid = len(v) // 2
    assert skewed.points[mid] == pytest.approx(np.mean(skewed.points[mid]))
    assert v[mid] == pytest.approx(0.0, abs=1e-12) and v[mid - 10] < v[mid + 10]  # falls faster below the mean


def test_grid_likelihood_interpolates_extends_and_round_trips():
    g = GridLikelihood((0.0, 1.0, 2.0), (-1.0, 0.0, -2.0))
    assert list(g.log_lik(np.array([0.5, 1.5, -1.0, 3.0]))) == [-0.5, -1.0, -2.0, -4.0]
    assert g.center == 1.0
    assert likelihood_from_dict(g.to_dict()) == g
    n = NormalLikelihood(0.3, 0.1)
    assert likelihood_from_dict(n.to_dict()) == n
    with pytest.raises(InputError, match="inside the grid"):
        GridLikelihood((0.0, 1.0, 2.0), (0.0, -1.0, -2.0))
    with pytest.raises(InputError, match="increasing"):
        GridLikelihood((0.0, 2.0, 1.0), (-1.0, 0.0, -1.0))
    with pytest.raises(InputError, match="unknown likelihood kind"):
        likelihood_from_dict({"kind": "skew-normal"})


def test_no_heterogeneity_prior_gives_the_conjugate_normal_posterior():
    r = bayesian_meta_analysis([NormalLikelihood(a, b) for a, b in zip(Y, S)], prior_sd_mu=5.0, prior_sd_tau=1e-6)
    prec = np.sum(1 / S**2) + 1 / 25
    assert r.mu == pytest.approx(np.sum(Y / S**2) / prec, abs=1e-6)
    assert r.mu_se == pytest.approx(1 / math.sqrt(prec), rel=1e-3)
    half = stats.norm.ppf(0.975) / math.sqrt(prec)  # symmetric posterior: the HDI is the central interval
    assert (r.mu_ci_low, r.mu_ci_high) == pytest.approx((r.mu - half, r.mu + half), abs=2e-4)


def test_posterior_matches_the_closed_form_mixture():
    """With normal likelihoods, μ | τ is normal and p(τ | data) has a closed form, so μ's marginal
    posterior is a mixture of normals over a fine τ grid: the reference for μ's mean, SD and HDI and
    τ's median."""
    r = bayesian_meta_analysis([NormalLikelihood(a, b) for a, b in zip(Y, S)], prior_sd_mu=5.0, prior_sd_tau=1.0)
    tau = np.linspace(0, 6.0, 6001)
    v = S[None, :] ** 2 + tau[:, None] ** 2
    prec = np.sum(1 / v, axis=1) + 1 / 25
    m = np.sum(Y[None, :] / v, axis=1) / prec
    log_p = (stats.halfnorm.logpdf(tau, scale=1.0) - 0.5 * np.sum(np.log(v), axis=1) - 0.5 * np.log(prec)
             - 0.5 * np.sum(Y[None, :] ** 2 / v, axis=1) + 0.5 * prec * m**2)
    w = np.exp(log_p - log_p.max()) * _trapezoid_weights(tau)
    w /= w.sum()
    mean = float(np.sum(w * m))
    assert r.mu == pytest.approx(mean, abs=1e-4)
    assert r.mu_se == pytest.approx(math.sqrt(np.sum(w * (1 / prec + (m - mean) ** 2))), rel=2e-3)
    mu = np.linspace(-27, 26, 20001)
    density = (w[::3, None] * stats.norm.pdf(mu[None, :], m[::3, None], 1 / np.sqrt(prec[::3, None]))).sum(axis=0)
    assert (r.mu_ci_low, r.mu_ci_high) == pytest.approx(_hdi(mu, density, 0.95), abs=1e-3)
    assert r.tau == pytest.approx(np.interp(0.5, np.cumsum(w), tau), abs=2e-3)
    assert r.prob_below_zero == pytest.approx(float(np.sum(w * stats.norm.cdf(0, m, 1 / np.sqrt(prec)))), abs=1e-4)


def test_grid_likelihoods_of_normals_pool_as_the_normals_do():
    z = np.linspace(-6, 6, 41)
    grids = [GridLikelihood(tuple(a + b * z), tuple(-0.5 * z**2)) for a, b in zip(Y, S)]
    g = bayesian_meta_analysis(grids, prior_sd_mu=5.0, prior_sd_tau=1.0)
    n = bayesian_meta_analysis([NormalLikelihood(a, b) for a, b in zip(Y, S)], prior_sd_mu=5.0, prior_sd_tau=1.0)
    assert g.likelihoods == ("grid",) * 5 and n.likelihoods == ("normal",) * 5
    for name in ("mu", "mu_ci_low", "mu_ci_high", "tau", "tau_ci_high"):
        assert getattr(g, name) == pytest.approx(getattr(n, name), abs=2e-3)


def test_bad_input():
    with pytest.raises(InputError):
        bayesian_meta_analysis([], prior_sd_mu=1, prior_sd_tau=1)
    with pytest.raises(ValueError, match="prior"):
        bayesian_meta_analysis([NormalLikelihood(0, 1)], prior_sd_mu=0, prior_sd_tau=1)
