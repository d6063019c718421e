"""DuMouchel's Multi-item Gamma Poisson Shrinker (MGPS): prior fit and EBGM scores.

Model (DuMouchel 1999).  For each drug–event cell the count ``n`` is Poisson with mean
``λ·E``; the relative reporting rate ``λ`` has a two-gamma mixture prior

    π(λ) = P·Γ(λ; α1, β1) + (1 − P)·Γ(λ; α2, β2)      (shape α, rate β)

so the marginal of ``n`` is a mixture of negative binomials,
``f_k(n) = NB(n; size α_k, prob β_k/(β_k + E))``.

Hyperparameters ``θ = (α1, β1, α2, β2, P)`` are fitted by maximum likelihood over the
cells with ``n ≥ N*`` (default 1).  As in openEBGM's ``negLL``/``negLLsquash`` each
component is truncated below ``N*`` *and then* mixed (DuMouchel & Pregibon 2001):

    −log L(θ) = −Σ_i w_i · log( P·f1(n_i)/(1 − F1(N*−1)) + (1 − P)·f2(n_i)/(1 − F2(N*−1)) )

(``w_i`` = 1 per cell, or the bin size on squashed data).  vigipy truncates the mixture
instead of each component; :func:`truncated_loglik` is the one definition this package
reports, and it can score any prior, including one fitted by another tool.

Posterior (DuMouchel 1999, eq. 6–11): ``Qn`` is the posterior weight of component 1,
``λ | n ~ Qn·Γ(α1+n, β1+E) + (1−Qn)·Γ(α2+n, β2+E)``;
``EBGM = exp(E[log λ | n])`` and EB05/EB95 are the 5th/95th posterior percentiles.

The fit is fast and checked: several starts are run on a squashed copy of the data (only
to find the basin), the best is polished on the full data with an analytic gradient, and
convergence is verified with the Newton decrement from a finite-difference Hessian of the
analytic gradient.  A fit that fails the check is reported (``converged=False`` plus a
:class:`~ketaweight.exceptions.ConvergenceWarning`), never silently returned as if fine.

References: DuMouchel W (1999) Am Stat 53:177–190; DuMouchel W, Pregibon D (2001) KDD'01
67–76; Canida T, Ihrie J (2017) openEBGM, R Journal 9:499–519.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, special

from ketaweight.exceptions import ConvergenceWarning

__all__ = [
    "GammaMixturePrior",
    "PriorFit",
    "StartResult",
    "DEFAULT_STARTS",
    "truncated_loglik",
    "fit_prior",
    "squash",
    "qn",
    "ebgm",
    "posterior_quantile",
    "ebgm_scores",
]


@dataclass(frozen=True)
class GammaMixturePrior:
    """Two-gamma mixture prior ``θ = (α1, β1, α2, β2, P)`` (shapes α, rates β, weight P of component 1)."""

    alpha1: float
    beta1: float
    alpha2: float
    beta2: float
    p: float

    def as_array(self) -> np.ndarray:
        return np.array([self.alpha1, self.beta1, self.alpha2, self.beta2, self.p], dtype=float)

    @classmethod
    def from_array(cls, theta) -> GammaMixturePrior:
        t = [float(v) for v in theta]
        if len(t) != 5:
            raise ValueError(f"a gamma-mixture prior has 5 values (α1, β1, α2, β2, P), got {len(t)}")
        return cls(*t)

    def validate(self) -> None:
        t = self.as_array()
        if not np.all(np.isfinite(t)):
            raise ValueError(f"prior values must be finite, got {t.tolist()}")
        if np.any(t[:4] <= 0):
            raise ValueError(f"α1, β1, α2, β2 must be > 0, got {t[:4].tolist()}")
        if not 0.0 < t[4] < 1.0:
            raise ValueError(f"P must lie strictly between 0 and 1, got {t[4]}")

    def canonical(self) -> GammaMixturePrior:
        """The same prior with component 1 the one of larger mean α/β (fixes label switching)."""
        if self.alpha1 / self.beta1 >= self.alpha2 / self.beta2:
            return self
        return GammaMixturePrior(self.alpha2, self.beta2, self.alpha1, self.beta1, 1.0 - self.p)

    def to_dict(self) -> dict[str, float]:
        return {"alpha1": self.alpha1, "beta1": self.beta1, "alpha2": self.alpha2, "beta2": self.beta2, "p": self.p}


DEFAULT_STARTS: tuple[tuple[float, ...], ...] = (
    (0.2, 0.1, 2.0, 4.0, 1 / 3),  # DuMouchel (1999) and openEBGM's documented start
    (0.2041, 0.05816, 1.415, 1.838, 0.0969),  # vigipy's default start
    (0.1, 0.1, 10.0, 10.0, 0.2),  # openEBGM vignette
    (2.0, 0.5, 2.0, 2.0, 0.1),
    (0.5, 0.5, 5.0, 5.0, 0.5),
    (1.0, 0.2, 1.0, 1.0, 0.05),
)
"""Starting values (α1, β1, α2, β2, P) tried by :func:`fit_prior`."""


# --------------------------------------------------------------------------------------
# Prepared data: group cells by their count so n-only terms are computed once per value.
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cells:
    n: np.ndarray  # float counts, n >= n_star
    e: np.ndarray  # expected counts, > 0
    w: np.ndarray  # weights
    uniq: np.ndarray  # unique counts
    inv: np.ndarray  # index into uniq
    log_e: np.ndarray
    w_sum_by_n: np.ndarray  # Σ w per unique count
    n_star: int

    @classmethod
    def build(cls, n, e, w, n_star: int) -> _Cells:
        n = np.asarray(n, dtype=float)
        e = np.asarray(e, dtype=float)
        w = np.ones_like(n) if w is None else np.asarray(w, dtype=float)
        if not (n.shape == e.shape == w.shape) or n.ndim != 1:
            raise ValueError("n, e and weights must be 1-D arrays of the same length")
        keep = n >= n_star
        n, e, w = n[keep], e[keep], w[keep]
        if n.size == 0:
            raise ValueError(f"no cell has a count ≥ {n_star}: nothing to fit a prior to")
        if not (np.all(np.isfinite(e)) and np.all(e > 0)):
            raise ValueError("every expected count E must be finite and > 0 for cells with n ≥ N*")
        uniq, inv = np.unique(n, return_inverse=True)
        return cls(
            n=n, e=e, w=w, uniq=uniq, inv=inv, log_e=np.log(e),
            w_sum_by_n=np.bincount(inv, weights=w, minlength=uniq.size), n_star=int(n_star),
        )


def _component_terms(alpha: float, beta: float, cells: _Cells, want_grad: bool):
    """log f*(n) (zero-truncated NB) per cell, and its derivatives in (log α, log β)."""
    log_b = math.log(beta)
    log_be = np.log(beta + cells.e)
    log_q = log_b - log_be  # log(β/(β+E)) < 0
    lg = special.gammaln(cells.uniq + alpha) - special.gammaln(alpha) - special.gammaln(cells.uniq + 1.0)
    logf = lg[cells.inv] + alpha * log_q + cells.n * (cells.log_e - log_be)
    # truncation below n_star: 1 - F(n_star - 1)
    if cells.n_star == 1:
        a_logq = alpha * log_q
        one_minus_f0 = -np.expm1(a_logq)  # 1 - q^α
        log_trunc = np.log(one_minus_f0)
    else:
        # P(X >= n*) for NB(size α, prob q) = I_q? use regularized beta: P(X <= k) = I_q(α, k+1)
        q = np.exp(log_q)
        cdf = special.betainc(alpha, float(cells.n_star), q)  # P(X <= n*-1)
        one_minus_f0 = 1.0 - cdf
        log_trunc = np.log(one_minus_f0)
    logfs = logf - log_trunc
    if not want_grad:
        return logfs, None, None
    if cells.n_star != 1:
        raise NotImplementedError("analytic gradient is implemented for N* = 1")
    qa = np.exp(a_logq)  # q^α
    ratio = qa / one_minus_f0  # q^α / (1 - q^α)
    dig = special.digamma(cells.uniq + alpha) - special.digamma(alpha)
    # d/dα
    d_alpha = dig[cells.inv] + log_q + ratio * log_q
    # d/dβ  (d log q / dβ = E / (β (β+E)))
    inv_be = np.exp(-log_be)
    dlogq_db = cells.e * inv_be / beta
    d_beta = alpha / beta - (alpha + cells.n) * inv_be + ratio * alpha * dlogq_db
    # chain rule to log α, log β
    return logfs, d_alpha * alpha, d_beta * beta


def _negll_and_grad(u: np.ndarray, cells: _Cells, want_grad: bool = True):
    """Negative weighted log-likelihood in the unconstrained parameters
    u = (log α1, log β1, log α2, log β2, logit P), and its gradient."""
    a1, b1, a2, b2 = np.exp(u[:4])
    p = special.expit(u[4])
    l1, g_a1, g_b1 = _component_terms(a1, b1, cells, want_grad)
    l2, g_a2, g_b2 = _component_terms(a2, b2, cells, want_grad)
    x1 = l1 + math.log(p)
    x2 = l2 + math.log1p(-p)
    m = np.maximum(x1, x2)
    s = np.exp(x1 - m) + np.exp(x2 - m)
    ll = m + np.log(s)
    nll = -float(np.dot(cells.w, ll))
    if not want_grad:
        return nll
    r1 = np.exp(x1 - ll)  # responsibility of component 1
    r2 = 1.0 - r1
    wr1 = cells.w * r1
    wr2 = cells.w * r2
    grad = np.empty(5)
    grad[0] = -np.dot(wr1, g_a1)
    grad[1] = -np.dot(wr1, g_b1)
    grad[2] = -np.dot(wr2, g_a2)
    grad[3] = -np.dot(wr2, g_b2)
    # d/d logit P of log(P f1 + (1-P) f2) = r1 - P
    grad[4] = -(float(wr1.sum()) - p * float(cells.w.sum()))
    return nll, grad


def _to_u(theta: np.ndarray) -> np.ndarray:
    t = np.asarray(theta, dtype=float)
    return np.concatenate([np.log(t[:4]), [special.logit(t[4])]])


def _from_u(u: np.ndarray) -> np.ndarray:
    return np.concatenate([np.exp(u[:4]), [special.expit(u[4])]])


def truncated_loglik(prior, n, e, *, weights=None, n_star: int = 1) -> float:
    """Log-likelihood of a prior under the per-component zero-truncated definition (module doc).

    ``prior`` is a :class:`GammaMixturePrior` or five numbers (α1, β1, α2, β2, P).  Cells with
    ``n < n_star`` are ignored.  Returns the log-likelihood (not negated), in nats.
    """
    theta = prior.as_array() if isinstance(prior, GammaMixturePrior) else np.asarray(prior, dtype=float)
    GammaMixturePrior.from_array(theta).validate()
    cells = _Cells.build(n, e, weights, n_star)
    return -_negll_and_grad(_to_u(theta), cells, want_grad=False)


# --------------------------------------------------------------------------------------
# Data squashing (DuMouchel & Pregibon 2001; openEBGM squashData)
# --------------------------------------------------------------------------------------


def squash(n, e, *, weights=None, bin_size: int = 50, keep_bins: int = 2, min_pts: int = 500):
    """Squash cells: for each count value with ≥ ``min_pts`` cells, sort by E and replace
    consecutive runs of ``bin_size`` cells by one point (mean E, weight = cells in the bin);
    the ``keep_bins·bin_size`` largest E stay unsquashed.  Returns ``(n, e, weight)``.
    """
    if bin_size < 2:
        raise ValueError(f"bin_size must be ≥ 2, got {bin_size}")
    n = np.asarray(n, dtype=float)
    e = np.asarray(e, dtype=float)
    w = np.ones_like(n) if weights is None else np.asarray(weights, dtype=float)
    order = np.lexsort((e, n))
    n, e, w = n[order], e[order], w[order]
    out_n, out_e, out_w = [], [], []
    starts = np.flatnonzero(np.r_[True, n[1:] != n[:-1]])
    ends = np.r_[starts[1:], n.size]
    for s, t in zip(starts, ends, strict=True):
        size = t - s
        n_sq = size - keep_bins * bin_size
        if size < min_pts or n_sq < bin_size:
            out_n.append(n[s:t]), out_e.append(e[s:t]), out_w.append(w[s:t])
            continue
        seg_e, seg_w = e[s : s + n_sq], w[s : s + n_sq]
        bins = np.arange(n_sq) // bin_size
        wsum = np.bincount(bins, weights=seg_w)
        emean = np.bincount(bins, weights=seg_e * seg_w) / wsum
        out_n.append(np.full(wsum.size, n[s]))
        out_e.append(emean)
        out_w.append(wsum)
        out_n.append(n[s + n_sq : t]), out_e.append(e[s + n_sq : t]), out_w.append(w[s + n_sq : t])
    return np.concatenate(out_n), np.concatenate(out_e), np.concatenate(out_w)


# --------------------------------------------------------------------------------------
# Fit
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartResult:
    """One starting point of the multistart search (on the squashed proxy or the full data)."""

    start: tuple[float, ...]
    estimate: tuple[float, ...] | None
    loglik: float | None
    success: bool
    message: str


@dataclass(frozen=True)
class PriorFit:
    """A fitted gamma-mixture prior and the evidence that the fit is trustworthy.

    ``loglik`` is the full-data log-likelihood (per-component zero-truncated definition,
    cells with n ≥ ``n_star``), whatever data the fit itself used.  ``converged`` is True
    only when the optimiser reported success *and* the Newton decrement at the estimate is
    below ``tolerance`` (log-likelihood units) with a positive-definite Hessian.
    """

    prior: GammaMixturePrior
    loglik: float
    converged: bool
    newton_decrement: float | None
    tolerance: float
    n_cells: int
    n_points_fitted: int
    squashed: bool
    n_star: int
    n_evaluations: int
    starts: tuple[StartResult, ...]
    message: str
    se_log: tuple[float, ...] | None = field(default=None)
    """Standard errors of (log α1, log β1, log α2, log β2, logit P) from the inverse Hessian."""

    def to_dict(self) -> dict:
        return {
            "method": "zero-truncated maximum likelihood (per-component truncation, openEBGM negLL)",
            "prior": self.prior.to_dict(),
            "loglik": self.loglik,
            "converged": self.converged,
            "newton_decrement": self.newton_decrement,
            "tolerance": self.tolerance,
            "n_cells": self.n_cells,
            "n_points_fitted": self.n_points_fitted,
            "squashed": self.squashed,
            "n_star": self.n_star,
            "n_evaluations": self.n_evaluations,
            "se_log_params": list(self.se_log) if self.se_log is not None else None,
            "starts": [s.__dict__ for s in self.starts],
            "message": self.message,
        }


def _minimize(cells: _Cells, u0: np.ndarray, max_iter: int, counter: list[int]):
    def fun(u):
        counter[0] += 1
        if not np.all(np.isfinite(u)) or np.any(np.abs(u) > 40):
            return np.inf, np.zeros(5)
        with np.errstate(all="ignore"):
            f, g = _negll_and_grad(u, cells)
        if not np.isfinite(f) or not np.all(np.isfinite(g)):
            return np.inf, np.zeros(5)
        return f, g

    bounds = [(-20.0, 20.0)] * 4 + [(-30.0, 30.0)]
    return optimize.minimize(
        fun, u0, jac=True, method="L-BFGS-B", bounds=bounds,
        options={"maxiter": max_iter, "ftol": 1e-13, "gtol": 1e-8, "maxcor": 20},
    )


def _hessian(cells: _Cells, u: np.ndarray, counter: list[int]) -> np.ndarray:
    """Central finite differences of the analytic gradient (symmetrised)."""
    h = np.empty((5, 5))
    for j in range(5):
        step = 1e-5 * max(1.0, abs(u[j]))
        up, dn = u.copy(), u.copy()
        up[j] += step
        dn[j] -= step
        gp = _negll_and_grad(up, cells)[1]
        gm = _negll_and_grad(dn, cells)[1]
        counter[0] += 2
        h[:, j] = (gp - gm) / (2 * step)
    return 0.5 * (h + h.T)


def fit_prior(
    n,
    e,
    *,
    weights=None,
    starts=None,
    squash_data: bool = False,
    n_star: int = 1,
    max_iter: int = 500,
    tolerance: float = 1e-6,
    proxy_threshold: int = 20_000,
    warn: bool = True,
) -> PriorFit:
    """Fit the two-gamma mixture prior by zero-truncated maximum likelihood.

    Parameters
    ----------
    n, e
        Observed and expected counts per drug–event cell (cells with ``n < n_star`` are
        ignored; zero cells may be passed and are dropped).
    weights
        Optional cell weights (e.g. from :func:`squash`).
    starts
        Starting values, each (α1, β1, α2, β2, P); default :data:`DEFAULT_STARTS`.
    squash_data
        If True, fit on squashed data (openEBGM style, an approximation); the reported
        ``loglik`` is still evaluated on the full data.  If False (default) the estimate is
        the full-data MLE: squashing is used only to choose the starting basin.
    n_star
        Smallest count used (``N*``); only ``n_star = 1`` supports the fast gradient fit.
    tolerance
        Convergence requires the Newton decrement ``gᵀH⁻¹g/2`` below this, in log-likelihood units.
    proxy_threshold
        Above this many cells the multistart runs on a squashed proxy first.
    """
    if n_star != 1:
        raise ValueError("fit_prior supports N* = 1 (zero-truncation), as openEBGM recommends")
    full = _Cells.build(n, e, weights, n_star)
    starts = DEFAULT_STARTS if starts is None else tuple(tuple(float(v) for v in s) for s in starts)
    for s in starts:
        GammaMixturePrior.from_array(s).validate()
    counter = [0]

    if squash_data or full.n.size > proxy_threshold:
        sn, se, sw = squash(full.n, full.e, weights=full.w, bin_size=50 if squash_data else 20,
                            keep_bins=2, min_pts=500 if squash_data else 200)
        proxy = _Cells.build(sn, se, sw, n_star)
    else:
        proxy = full

    results: list[StartResult] = []
    best_u, best_f = None, np.inf
    for s in starts:
        res = _minimize(proxy, _to_u(np.asarray(s)), max_iter, counter)
        ok = bool(res.success) and np.isfinite(res.fun)
        est = tuple(float(v) for v in _from_u(res.x)) if np.isfinite(res.fun) else None
        results.append(StartResult(start=tuple(s), estimate=est, loglik=-float(res.fun) if np.isfinite(res.fun) else None,
                                   success=ok, message=str(res.message)))
        if np.isfinite(res.fun) and res.fun < best_f:
            best_f, best_u = float(res.fun), res.x
    if best_u is None:
        prior = GammaMixturePrior.from_array(starts[0])
        fit = PriorFit(prior=prior, loglik=float("nan"), converged=False, newton_decrement=None, tolerance=tolerance,
                       n_cells=int(full.n.size), n_points_fitted=int(proxy.n.size), squashed=proxy is not full,
                       n_star=n_star, n_evaluations=counter[0], starts=tuple(results),
                       message="every start failed (non-finite likelihood)")
        if warn:
            warnings.warn(f"MGPS prior fit failed: {fit.message}", ConvergenceWarning, stacklevel=2)
        return fit

    target = proxy if squash_data else full
    u = best_u
    message = "multistart on squashed proxy, polished on full data" if (proxy is not full and not squash_data) else (
        "fitted on squashed data" if squash_data else "multistart on full data")
    success = True
    if target is not proxy:
        res = _minimize(target, u, max_iter, counter)
        success = bool(res.success)
        u = res.x
        if not success:
            message += f"; polish: {res.message}"
    else:
        success = any(r.success for r in results)

    # Newton check (and up to 3 Newton polishing steps) on the target data
    decrement, se_log, pd_ok = None, None, False
    for _ in range(4):
        f, g = _negll_and_grad(u, target)
        counter[0] += 1
        h = _hessian(target, u, counter)
        try:
            c = np.linalg.cholesky(h)
            pd_ok = True
        except np.linalg.LinAlgError:
            pd_ok = False
            break
        step = np.linalg.solve(h, g)
        decrement = float(0.5 * g @ step)
        if decrement <= tolerance:
            hinv = np.linalg.inv(h)
            se_log = tuple(float(v) for v in np.sqrt(np.clip(np.diag(hinv), 0, None)))
            del c
            break
        # a Newton step, accepted only if it improves the likelihood
        cand = u - step
        fc = _negll_and_grad(cand, target, want_grad=False)
        counter[0] += 1
        if np.isfinite(fc) and fc < f:
            u = cand
        else:
            break

    theta = _from_u(u)
    prior = GammaMixturePrior.from_array(theta).canonical()
    loglik = -_negll_and_grad(_to_u(prior.as_array()), full, want_grad=False)
    converged = bool(success and pd_ok and decrement is not None and decrement <= tolerance)
    if not pd_ok:
        message += "; Hessian not positive definite at the estimate (boundary or flat likelihood)"
    elif decrement is not None and decrement > tolerance:
        message += f"; Newton decrement {decrement:.3g} above tolerance {tolerance:g}"
    if abs(prior.p) < 1e-6 or abs(1 - prior.p) < 1e-6:
        message += "; mixture weight at the boundary (one component suffices)"
    fit = PriorFit(
        prior=prior, loglik=float(loglik), converged=converged, newton_decrement=decrement, tolerance=tolerance,
        n_cells=int(full.n.size), n_points_fitted=int(target.n.size), squashed=target is not full,
        n_star=n_star, n_evaluations=counter[0], starts=tuple(results), message=message, se_log=se_log,
    )
    if warn and not converged:
        warnings.warn(
            f"MGPS prior fit did not converge ({message}); EBGM scores from it are flagged "
            f"(Newton decrement threshold {tolerance:g})",
            ConvergenceWarning,
            stacklevel=2,
        )
    return fit


# --------------------------------------------------------------------------------------
# Posterior
# --------------------------------------------------------------------------------------


def _as_prior(prior) -> GammaMixturePrior:
    p = prior if isinstance(prior, GammaMixturePrior) else GammaMixturePrior.from_array(prior)
    p.validate()
    return p


def _check_ne(n, e):
    n = np.asarray(n, dtype=float)
    e = np.asarray(e, dtype=float)
    n, e = np.broadcast_arrays(n, e)
    if not (np.all(np.isfinite(n)) and np.all(np.isfinite(e))):
        raise ValueError("missing or infinite values for N and E are not allowed")
    if np.any(n < 0) or np.any(e <= 0):
        raise ValueError("N must be ≥ 0 and E must be > 0")
    return n, e


def _log_nb(n, e, alpha, beta):
    log_be = np.log(beta + e)
    return (special.gammaln(n + alpha) - special.gammaln(alpha) - special.gammaln(n + 1.0)
            + alpha * (math.log(beta) - log_be) + n * (np.log(e) - log_be))


def qn(prior, n, e) -> np.ndarray:
    """Posterior probability that λ came from component 1 (DuMouchel 1999, eq. 6)."""
    pr = _as_prior(prior)
    n, e = _check_ne(n, e)
    x1 = _log_nb(n, e, pr.alpha1, pr.beta1) + math.log(pr.p)
    x2 = _log_nb(n, e, pr.alpha2, pr.beta2) + math.log1p(-pr.p)
    return special.expit(x1 - x2)


def ebgm(prior, n, e, q=None) -> np.ndarray:
    """Empirical Bayes geometric mean ``exp(E[log λ | n])`` (DuMouchel 1999, eq. 9–11)."""
    pr = _as_prior(prior)
    n, e = _check_ne(n, e)
    q = qn(pr, n, e) if q is None else np.asarray(q, dtype=float)
    m1 = special.digamma(pr.alpha1 + n) - np.log(pr.beta1 + e)
    m2 = special.digamma(pr.alpha2 + n) - np.log(pr.beta2 + e)
    return np.exp(q * m1 + (1.0 - q) * m2)


def _unique_map(n: np.ndarray):
    uniq, inv = np.unique(n, return_inverse=True)
    return uniq, inv.reshape(n.shape)


def posterior_quantile(prior, n, e, prob: float, q=None, *, rtol: float = 1e-10, max_iter: int = 100) -> np.ndarray:
    """``prob`` quantile of the posterior mixture of gammas (EB05: prob=0.05; EB95: 0.95).

    Solved per cell by safeguarded Newton iteration in log λ inside the bracket formed by
    the two component quantiles (the mixture quantile always lies between them); component
    quantiles use ``gammaincinv`` once per distinct count.  Raises ``RuntimeError`` if a
    cell fails to converge within ``max_iter`` (never returns an unconverged number).
    """
    if not 0.0 < prob < 1.0:
        raise ValueError(f"prob must be in (0, 1), got {prob}")
    pr = _as_prior(prior)
    n, e = _check_ne(n, e)
    shape = n.shape
    n, e = n.ravel(), e.ravel()
    q = (qn(pr, n, e) if q is None else np.asarray(q, dtype=float)).ravel()
    uniq, inv = _unique_map(n)
    a1u, a2u = pr.alpha1 + uniq, pr.alpha2 + uniq
    t1 = special.gammaincinv(a1u, prob)[inv]
    t2 = special.gammaincinv(a2u, prob)[inv]
    lg1 = special.gammaln(a1u)[inv]
    lg2 = special.gammaln(a2u)[inv]
    a1, a2 = a1u[inv], a2u[inv]
    b1, b2 = pr.beta1 + e, pr.beta2 + e
    x1, x2 = t1 / b1, t2 / b2
    lo = np.log(np.minimum(x1, x2))
    hi = np.log(np.maximum(x1, x2))
    out = np.exp(lo)
    # Cells where one component carries (almost) all posterior mass or the bracket is tiny
    dominant1 = q >= 1.0 - 1e-14
    dominant2 = q <= 1e-14
    out[dominant1] = x1[dominant1]
    out[dominant2] = x2[dominant2]
    todo = np.flatnonzero(~(dominant1 | dominant2) & (hi - lo > rtol))
    out[np.flatnonzero(~(dominant1 | dominant2) & (hi - lo <= rtol))] = np.exp(lo[~(dominant1 | dominant2) & (hi - lo <= rtol)])
    y = 0.5 * (lo + hi)
    for _ in range(max_iter):
        if todo.size == 0:
            break
        yt = y[todo]
        xt = np.exp(yt)
        z1 = b1[todo] * xt
        z2 = b2[todo] * xt
        qt = q[todo]
        F = qt * special.gammainc(a1[todo], z1) + (1.0 - qt) * special.gammainc(a2[todo], z2)
        # dF/dy = x f(x) = Σ weight · z·pdf(z) with z = b x
        d1 = np.exp(a1[todo] * np.log(z1) - z1 - lg1[todo])
        d2 = np.exp(a2[todo] * np.log(z2) - z2 - lg2[todo])
        dF = qt * d1 + (1.0 - qt) * d2
        err = F - prob
        # update bracket
        above = err > 0
        hi_t, lo_t = hi[todo], lo[todo]
        hi_t = np.where(above, yt, hi_t)
        lo_t = np.where(above, lo_t, yt)
        hi[todo], lo[todo] = hi_t, lo_t
        with np.errstate(divide="ignore", invalid="ignore"):
            ynew = yt - err / dF
        bad = ~np.isfinite(ynew) | (ynew <= lo_t) | (ynew >= hi_t)
        ynew = np.where(bad, 0.5 * (lo_t + hi_t), ynew)
        done = (np.abs(ynew - yt) <= rtol) | (hi_t - lo_t <= rtol)
        y[todo] = ynew
        out[todo[done]] = np.exp(ynew[done])
        todo = todo[~done]
    if todo.size:
        raise RuntimeError(f"posterior quantile did not converge for {todo.size} cell(s) in {max_iter} iterations")
    return out.reshape(shape)


@dataclass(frozen=True)
class EBGMScores:
    """EBGM, EB05 and EB95 (90% credibility interval) and Qn for a set of cells."""

    n: np.ndarray
    e: np.ndarray
    qn: np.ndarray
    ebgm: np.ndarray
    eb05: np.ndarray
    eb95: np.ndarray


def ebgm_scores(prior, n, e) -> EBGMScores:
    """Qn, EBGM, EB05 and EB95 for every cell (vectorised; counts may be 0)."""
    pr = _as_prior(prior)
    n, e = _check_ne(n, e)
    q = qn(pr, n, e)
    return EBGMScores(
        n=n, e=e, qn=q, ebgm=ebgm(pr, n, e, q),
        eb05=posterior_quantile(pr, n, e, 0.05, q), eb95=posterior_quantile(pr, n, e, 0.95, q),
    )
