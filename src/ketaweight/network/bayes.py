"""Bayesian random-effects pooling of per-site likelihoods, normal or not (as OHDSI EvidenceSynthesis).

Model (``computeBayesianMetaAnalysis``): site effects θᵢ ~ N(μ, τ²); site i contributes its
likelihood Lᵢ(θᵢ) (a normal approximation or a grid, :mod:`ketaweight.network.likelihood`);
priors μ ~ N(0, s_μ²) and τ ~ half-normal(s_τ).  The posterior
p(μ, τ | data) ∝ N(μ; 0, s_μ²)·HN(τ; s_τ)·Πᵢ ∫ Lᵢ(θ) N(θ; μ, τ²) dθ.  Reported as EvidenceSynthesis
does: μ's posterior mean and SD and its highest-density interval, τ's posterior median and HDI;
also P(μ < 0).

EvidenceSynthesis samples the posterior by MCMC (BEAST, 10⁶ iterations); with two parameters
the posterior is computed here on a grid instead: deterministic, reproducible to the last digit
and faster.  The inner integral uses Gauss–Hermite quadrature in θ when τ is small against the
site's own likelihood, importance-weighted by its normal approximation qᵢ(θ) = N(θ; cᵢ, sᵢ²): with
qᵢ·N(θ; μ, τ²) = N(cᵢ; μ, sᵢ² + τ²)·N(θ; m*, v*), m* = (cᵢτ² + μsᵢ²)/(sᵢ² + τ²),
v* = sᵢ²τ²/(sᵢ² + τ²), the integral is N(cᵢ; μ, sᵢ² + τ²)·E_{N(m*, v*)}[Lᵢ/qᵢ], and Gauss–Hermite
quadrature of that smooth ratio is exact for normal likelihoods and accurate for near-normal ones,
at every τ including 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ketaweight.core.protocol import Real, Result
from ketaweight.core.errors import InputError, Location
from ketaweight.network.likelihood import Likelihood

MU_POINTS = 500
TAU_POINTS = 100
HERMITE_NODES = 20
POSTERIOR_TAIL = 1e-12  # τ's grid ends where an approximate posterior falls below this share of its maximum


@dataclass(frozen=True)
class BayesianMetaAnalysis(Result):
    """Posterior summaries (outcome units); ``*_ci_*`` are highest-density intervals at ``ci_level``."""

    mu: Real
    mu_se: Real
    mu_ci_low: Real
    mu_ci_high: Real
    tau: Real
    tau_ci_low: Real
    tau_ci_high: Real
    prob_below_zero: Real
    ci_level: Real
    k: int
    prior_sd_mu: Real
    prior_sd_tau: Real
    likelihoods: tuple[str, ...]
    method: str = ("Bayesian random effects (normal prior on μ, half-normal on τ), posterior on a grid, "
                   "highest-density intervals")


def _fine_cdf(x: np.ndarray, density: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The density known on a (non-uniform) grid, interpolated log-linearly onto 8001 equal steps,
    and its CDF there: tails and interval ends come out far more accurately than from the raw grid."""
    fine = np.linspace(x[0], x[-1], 8001)
    with np.errstate(divide="ignore"):
        d = np.exp(np.interp(fine, x, np.log(density)))
    cdf = np.concatenate([[0.0], np.cumsum((d[1:] + d[:-1]) / 2 * np.diff(fine))])
    return fine, cdf / cdf[-1]


def _hdi(x: np.ndarray, density: np.ndarray, mass: float) -> tuple[float, float]:
    """Shortest interval holding ``mass`` of a density known on a grid."""
    fine, cdf = _fine_cdf(x, density)
    lower = np.linspace(0.0, 1.0 - mass, 4001)
    a = np.interp(lower, cdf, fine)
    b = np.interp(lower + mass, cdf, fine)
    i = int(np.argmin(b - a))
    return float(a[i]), float(b[i])


def _trapezoid_weights(x: np.ndarray) -> np.ndarray:
    """Weights of the trapezoid rule on a (non-uniform) grid."""
    w = np.zeros(len(x))
    d = np.diff(x)
    w[:-1] += d / 2
    w[1:] += d / 2
    return w


def _normal_approximation(c: np.ndarray, s: np.ndarray, tau: np.ndarray, s_mu: float
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Under normal site likelihoods: log p(τ | data) up to a constant (μ integrated in closed form),
    and the mean and SD of μ given each τ.  Used only to place the grids."""
    v = s[None, :] ** 2 + tau[:, None] ** 2
    w = 1.0 / v
    prec = w.sum(axis=1) + 1.0 / s_mu**2
    m = (w * c[None, :]).sum(axis=1) / prec
    log_p = (-0.5 * np.log(v).sum(axis=1) - 0.5 * np.log(prec) - 0.5 * (w * c[None, :] ** 2).sum(axis=1)
             + 0.5 * prec * m**2)
    return log_p, m, 1.0 / np.sqrt(prec)


def _placed(x: np.ndarray, density: np.ndarray, n: int) -> np.ndarray:
    """``n`` points at equal steps of the density's CDF, joined with ``n`` equally spaced ones
    (dense where the mass is, and nowhere empty)."""
    cdf = np.concatenate([[0.0], np.cumsum((density[1:] + density[:-1]) / 2 * np.diff(x))])
    cdf /= cdf[-1]
    keep = np.concatenate([[True], np.diff(cdf) > 0])
    by_mass = np.interp(np.linspace(0.0, 1.0, n), cdf[keep], x[keep])
    return np.unique(np.concatenate([by_mass, np.linspace(x[0], x[-1], n)]))


def _grids(c: np.ndarray, s: np.ndarray, prior_sd_mu: float, prior_sd_tau: float) -> tuple[np.ndarray, np.ndarray]:
    """τ and μ grids placed by the normal approximation of the posterior: τ from 0 to where its
    posterior falls below :data:`POSTERIOR_TAIL` of the maximum (at most 6 prior SDs); μ over ± 12
    conditional SDs around its conditional means at every τ that matters."""
    tau_fine = np.linspace(0.0, 6.0 * prior_sd_tau, 6001)
    log_p, m_tau, sd_tau = _normal_approximation(c, s, tau_fine, prior_sd_mu)
    log_p += stats.halfnorm.logpdf(tau_fine, scale=prior_sd_tau)
    keep = np.flatnonzero(log_p >= log_p.max() + math.log(POSTERIOR_TAIL))
    end = min(keep[-1] + 1, len(tau_fine) - 1)
    p_tau = np.exp(log_p[: end + 1] - log_p.max())
    tau = _placed(tau_fine[: end + 1], p_tau, TAU_POINTS)
    lo = float(np.min(m_tau[keep] - 12 * sd_tau[keep])) - 6 * float(np.max(s))
    hi = float(np.max(m_tau[keep] + 12 * sd_tau[keep])) + 6 * float(np.max(s))
    mu_fine = np.linspace(lo, hi, 6001)
    some = keep[keep <= end][:: max(1, len(keep) // 200)]  # ≤ 200 τ values suffice to place the μ grid
    p_mu = (p_tau[some][:, None] * stats.norm.pdf(mu_fine[None, :], m_tau[some][:, None], sd_tau[some][:, None])).sum(axis=0)
    return tau, _placed(mu_fine, p_mu + p_mu.max() * 1e-9, MU_POINTS)


def bayesian_meta_analysis(
    likelihoods: Sequence[Likelihood],
    *,
    prior_sd_mu: float,
    prior_sd_tau: float,
    ci_level: float = 0.95,
) -> BayesianMetaAnalysis:
    """Pool ``likelihoods`` (one per site) under the model of the module docstring.

    ``prior_sd_mu`` and ``prior_sd_tau`` are in outcome units (EvidenceSynthesis' defaults, 2 and
    0.5, are for log ratios).
    """
    if not likelihoods:
        raise InputError([(Location("Bayesian meta-analysis"), "no site likelihoods to pool")])
    if not (prior_sd_mu > 0 and prior_sd_tau > 0):
        raise ValueError(f"prior SDs must be > 0, got μ {prior_sd_mu}, τ {prior_sd_tau}")
    c = np.array([lk.center for lk in likelihoods])
    s = np.array([lk.scale for lk in likelihoods])
    tau, mu = _grids(c, s, prior_sd_mu, prior_sd_tau)
    nodes, weights = np.polynomial.hermite.hermgauss(HERMITE_NODES)
    log_w = np.log(weights / math.sqrt(math.pi))
    log_post = stats.norm.logpdf(mu, 0.0, prior_sd_mu)[None, :] + stats.halfnorm.logpdf(tau, scale=prior_sd_tau)[:, None]
    t2 = tau[:, None, None] ** 2
    for lk, ci, si in zip(likelihoods, c, s):
        total_var = si**2 + t2  # (τ, 1, 1)
        m_star = (ci * t2 + mu[None, :, None] * si**2) / total_var
        theta = m_star + np.sqrt(2.0 * si**2 * t2 / total_var) * nodes[None, None, :]  # (τ, μ, nodes)
        log_ratio = lk.log_lik(theta) + 0.5 * ((theta - ci) / si) ** 2 + math.log(si * math.sqrt(2 * math.pi))
        log_integral = np.logaddexp.reduce(log_ratio + log_w, axis=2)
        log_post += log_integral - 0.5 * np.log(2 * math.pi * total_var[:, :, 0]) - 0.5 * (ci - mu[None, :]) ** 2 / total_var[:, :, 0]
    log_post -= log_post.max()
    post = np.exp(log_post)
    w_mu, w_tau = _trapezoid_weights(mu), _trapezoid_weights(tau)
    total = float(w_tau @ post @ w_mu)
    p_mu = (w_tau @ post) / total
    p_tau = (post @ w_mu) / total
    mean = float(np.sum(w_mu * p_mu * mu))
    sd = math.sqrt(float(np.sum(w_mu * p_mu * (mu - mean) ** 2)))
    lo, hi = _hdi(mu, p_mu, ci_level)
    t_lo, t_hi = _hdi(tau, p_tau, ci_level)
    fine_tau, cdf_tau = _fine_cdf(tau, p_tau)
    median_tau = float(np.interp(0.5, cdf_tau, fine_tau))
    fine_mu, cdf_mu = _fine_cdf(mu, p_mu)
    below = float(np.interp(0.0, fine_mu, cdf_mu))
    return BayesianMetaAnalysis(mean, sd, lo, hi, median_tau, t_lo, t_hi, below, ci_level, len(likelihoods),
                                prior_sd_mu, prior_sd_tau, tuple(lk.kind for lk in likelihoods))
