"""DuMouchel's Multi-item Gamma Poisson Shrinker (MGPS): prior fit and EBGM scores.

Model (DuMouchel 1999).  For each drug–event cell the count ``n`` is Poisson with mean
``λ·E``; the relative reporting rate ``λ`` has a two-gamma mixture prior

    π(λ) = P·Γ(λ; α1, β1) + (1 − P)·Γ(λ; α2, β2)      (shape α, rate β)

so the marginal of ``n`` is a mixture of negative binomials,
``f_k(n) = NB(n; size α_k, prob β_k/(β_k + E))``.

Hyperparameters ``θ = (α1, β1, α2, β2, P)`` are fitted by maximum likelihood over the
cells with ``n ≥ 1`` (cells never reported are not in the data).  Two zero-truncated
likelihoods are offered (``w_i`` = 1 per cell, or the bin size on squashed data):

* ``truncation="mixture"`` (default) — the exact conditional likelihood of ``n`` given
  ``n ≥ 1`` under the model (the form vigipy and PhViD use)::

      log L = Σ w_i · [log(P·f1(n_i) + (1−P)·f2(n_i)) − log(1 − P·f1(0) − (1−P)·f2(0))]

* ``truncation="component"`` — openEBGM's ``negLL``: each component truncated, then mixed::

      log L = Σ w_i · log(P·f1(n_i)/(1 − f1(0)) + (1−P)·f2(n_i)/(1 − f2(0)))

  This is not the conditional likelihood of the model whose posterior is used for EBGM
  (it lets the mixing weight of the *reported* cells stand in for the prior weight P):
  on tables simulated from a known prior it does not recover that prior, whereas the
  mixture form does (``tests/signals/test_mgps.py``).  It is kept for parity with openEBGM.

:func:`truncated_loglik` evaluates either definition for any prior, including one fitted
by another tool, so fits can be compared on the same footing.

Posterior (DuMouchel 1999, eq. 6–11): ``Qn`` is the posterior weight of component 1,
``λ | n ~ Qn·Γ(α1+n, β1+E) + (1−Qn)·Γ(α2+n, β2+E)``;
``EBGM = exp(E[log λ | n])`` and EB05/EB95 are the 5th/95th posterior percentiles.

The fit is fast and checked: several starts are run (L-BFGS-B, analytic gradient) on a
squashed copy of the data when there are more than 20,000 cells (on a random subsample of
200,000 cells, fixed seed, above a million) only to find the basin;
the best is polished by damped Newton steps on the full data, and convergence is verified by
the Newton decrement ``gᵀH⁻¹g/2 ≤ 1e-8`` (log-likelihood units) with a positive-definite
Hessian (finite differences of the analytic gradient, on the proxy when one is used).  A fit that fails
the check is reported (``converged=False`` plus a
:class:`~ketaweight.core.errors.ConvergenceWarning`), never silently returned as if fine.

References: DuMouchel W (1999) Am Stat 53:177–190; DuMouchel W, Pregibon D (2001) KDD'01
67–76; Canida T, Ihrie J (2017) openEBGM, R Journal 9:499–519.
"""

from __future__ import annotations

import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import optimize, special
try:  # a scikit-learn dependency; only used to keep BLAS single-threaded inside L-BFGS-B
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    from contextlib import nullcontext

    def threadpool_limits(*args, **kwargs):  # type: ignore[no-redef]
        return nullcontext()

from ketaweight.core.errors import ConvergenceWarning

Truncation = Literal["component", "mixture"]

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


_SPLIT_CELLS = 1_000_000
"""From this many cells on, the likelihood is evaluated in two halves at once (:class:`_Cells`)."""


class _Cells:
    """Cells with n ≥ 1 prepared for fast likelihood evaluation.

    n-only terms (log-gamma, digamma) are computed once per distinct count; every per-cell
    array operation writes into preallocated buffers (``out=``), because allocating fresh
    arrays of a million doubles costs more than the arithmetic (page faults)."""

    def __init__(self, n, e, w, truncation: str = "component", split: bool = True) -> None:
        if truncation not in ("component", "mixture"):
            raise ValueError(f"truncation must be 'component' or 'mixture', got {truncation!r}")
        n = np.asarray(n, dtype=float)
        e = np.asarray(e, dtype=float)
        w = None if w is None else np.asarray(w, dtype=float)
        if not (n.shape == e.shape) or n.ndim != 1 or (w is not None and w.shape != n.shape):
            raise ValueError("n, e and weights must be 1-D arrays of the same length")
        keep = n >= 1
        n, e = n[keep], e[keep]
        w = None if w is None else w[keep]
        if n.size == 0:
            raise ValueError("no cell has a count ≥ 1: nothing to fit a prior to")
        if not (np.all(np.isfinite(e)) and np.all(e > 0)):
            raise ValueError("every expected count E must be finite and > 0 for cells with n ≥ 1")
        if w is not None and np.all(w == 1.0):
            w = None
        self.n, self.e, self.truncation = n, e, truncation
        self._w = w
        self.w_total = float(n.size if w is None else w.sum())
        self.chunks: tuple[_Cells, ...] = ()
        if split and n.size >= _SPLIT_CELLS and (os.cpu_count() or 1) > 1:
            # two halves evaluated in two threads (numpy releases the GIL); the sums are added in a fixed
            # order, so a fit is the same from run to run
            h = n.size // 2
            self.chunks = tuple(_Cells(n[s], e[s], None if w is None else w[s], truncation, split=False)
                                for s in (slice(0, h), slice(h, None)))
            return
        self.uniq, self.inv = _unique_map(n)
        self.log_e = np.log(e)
        m = n.size
        self._buf = {k: np.empty(m) for k in (
            "l1p1", "l1p2", "logf1", "logf2", "lz1", "lz2", "gfa1", "gfa2", "gfb1", "gfb2", "gzb1", "gzb2",
            "x1", "x2", "t1", "t2", "ll", "r1")}

    @classmethod
    def build(cls, n, e, w, truncation: str = "component") -> _Cells:
        return cls(n, e, w, truncation)

    @property
    def w(self) -> np.ndarray:
        return np.ones_like(self.n) if self._w is None else self._w

    def wdot(self, x: np.ndarray) -> float:
        return float(x.sum()) if self._w is None else float(np.multiply(self._w, x).sum())


_STIRLING_FROM = 1_000.0
"""From this argument on, :func:`_log_gamma_ratio` uses the Stirling-series difference."""


def _log_gamma_ratio(x: np.ndarray, d: float) -> np.ndarray:
    """log Γ(x + d) − log Γ(x) for x ≥ 1 and d > −1, accurate for large x.

    The plain difference of ``gammaln`` values cancels: at x = 6·10⁷ each is 10⁹ and the
    difference keeps only 10⁻⁷ absolute accuracy.  From :data:`_STIRLING_FROM` on, the two
    Stirling series are subtracted term by term instead,
    d·log x + (x + d − ½)·log1p(d/x) − d + C(x + d) − C(x), with C(z) = 1/(12z) − 1/(360z³) +
    1/(1260z⁵) − 1/(1680z⁷) (truncation error < 10⁻²⁹ at z ≥ 1000).  SciPy has no log-ratio of
    gammas (``poch`` overflows, ``betaln`` subtracts ``gammaln`` values below a = 10⁶·b), hence
    this helper."""
    x = np.asarray(x, dtype=float)
    big = x >= _STIRLING_FROM
    out = np.empty_like(x)
    xs = x[~big]
    out[~big] = special.gammaln(xs + d) - special.gammaln(xs)
    xb = x[big]
    out[big] = (d * np.log(xb) + (xb + d - 0.5) * np.log1p(d / xb) - d
                + (_stirling_correction(xb + d) - _stirling_correction(xb)))
    return out


def _stirling_correction(z: np.ndarray) -> np.ndarray:
    """C(z) = log Γ(z) − [(z − ½)·log z − z + ½·log 2π], to four terms of its series (z ≥ 1000)."""
    z2 = 1.0 / (z * z)
    return (1.0 / 12.0 - z2 * (1.0 / 360.0 - z2 * (1.0 / 1260.0 - z2 / 1680.0))) / z


def _log_count_term(n: np.ndarray, alpha: float) -> np.ndarray:
    """log[Γ(n + α) / (Γ(α)·n!)], the count part of the negative binomial density."""
    return _log_gamma_ratio(np.asarray(n, dtype=float) + 1.0, alpha - 1.0) - special.gammaln(alpha)


def _component_terms(alpha: float, beta: float, c: _Cells, k: int, want_grad: bool):
    """Untruncated log NB(n; α, β/(β+E)) per cell and log z = log f(0) = α·log(β/(β+E)),
    and (if asked) their derivatives in (log α, log β).  Results live in ``c._buf``.

    ``log(E/(β+E))`` is taken as ``−log1p(β/E)``, not ``log E − log(β+E)``: a FAERS margin cell
    has n ≈ 10⁷ with E ≈ 10⁷, where the difference of two logs of 17.9 loses 2 ulps and n times
    that is 10⁻⁷ of noise in the log-likelihood, above the fit's convergence tolerance."""
    B = c._buf
    l1p, logf, lz = B[f"l1p{k}"], B[f"logf{k}"], B[f"lz{k}"]
    np.divide(beta, c.e, out=l1p)
    np.log1p(l1p, out=l1p)  # log1p(β/E) = log(β+E) − log E
    np.subtract(math.log(beta), c.log_e, out=lz)
    lz -= l1p
    lz *= alpha  # α·log q
    np.multiply(c.n, l1p, out=logf)
    np.negative(logf, out=logf)  # n·log(E/(β+E))
    logf += lz
    logf += np.take(_log_count_term(c.uniq, alpha), c.inv, out=B["t1"])
    if not want_grad:
        return None
    gfa, gfb, gzb = B[f"gfa{k}"], B[f"gfb{k}"], B[f"gzb{k}"]
    dig = special.digamma(c.uniq + alpha) - special.digamma(alpha)
    np.take(dig, c.inv, out=gfa)
    gfa *= alpha
    gfa += lz  # d log f / d log α = α(ψ(n+α) − ψ(α) + log q)
    np.add(c.e, beta, out=gzb)
    np.reciprocal(gzb, out=gzb)  # 1/(β+E)
    np.add(c.n, alpha, out=gfb)
    gfb *= gzb
    gfb *= -beta
    gfb += alpha  # d log f / d log β = α − (α+n)·β/(β+E)
    gzb *= c.e
    gzb *= alpha  # d log z / d log β = α·E/(β+E);  d log z / d log α = log z
    return None


def _exp_floor(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """exp with the argument floored at -60, in place: avoids subnormal numbers (very slow on
    x86); exp(-60) ≈ 9e-27 is below double precision relative to the terms it is added to."""
    np.maximum(x, -60.0, out=out)
    return np.exp(out, out=out)


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """Σ a·b without BLAS (OpenBLAS threads make a 1-D dot 20× slower on a busy machine)."""
    return float(np.multiply(a, b).sum())


def _negll_and_grad(u: np.ndarray, c: _Cells, want_grad: bool = True):
    """Negative weighted log-likelihood of cells with n ≥ 1 in the unconstrained parameters
    u = (log α1, log β1, log α2, log β2, logit P), and its gradient.

    ``truncation == "component"``: each NB truncated at zero, then mixed (openEBGM).
    ``"mixture"``: the mixture truncated at zero (the exact conditional likelihood of n given
    n ≥ 1; vigipy / PhViD)."""
    if c.chunks:  # both terms are sums over cells: the halves' sums add up
        with ThreadPoolExecutor(max_workers=len(c.chunks)) as pool:
            parts = list(pool.map(lambda ch: _negll_and_grad(u, ch, want_grad), c.chunks))
        if not want_grad:
            return parts[0] + parts[1]
        return parts[0][0] + parts[1][0], parts[0][1] + parts[1][1]
    a1, b1, a2, b2 = (float(v) for v in np.exp(u[:4]))
    p = float(special.expit(u[4]))
    _component_terms(a1, b1, c, 1, want_grad)
    _component_terms(a2, b2, c, 2, want_grad)
    B = c._buf
    lz1, lz2, x1, x2, t1, t2, ll, r1 = B["lz1"], B["lz2"], B["x1"], B["x2"], B["t1"], B["t2"], B["ll"], B["r1"]
    lp, lq = math.log(p), math.log1p(-p)
    comp = c.truncation == "component"
    if comp:
        # x_k = log f_k − log(1 − z_k) + log weight_k
        np.expm1(lz1, out=t1)
        np.negative(t1, out=t1)
        np.log(t1, out=x1)
        np.subtract(B["logf1"], x1, out=x1)
        x1 += lp
        np.expm1(lz2, out=t2)
        np.negative(t2, out=t2)
        np.log(t2, out=x2)
        np.subtract(B["logf2"], x2, out=x2)
        x2 += lq
    else:
        np.add(B["logf1"], lp, out=x1)
        np.add(B["logf2"], lq, out=x2)
    # ll = logsumexp(x1, x2)
    np.maximum(x1, x2, out=ll)
    np.subtract(x1, ll, out=t1)
    _exp_floor(t1, t1)
    np.subtract(x2, ll, out=t2)
    _exp_floor(t2, t2)
    t1 += t2
    np.log(t1, out=t1)
    ll += t1  # log of the untruncated (mixture) or truncated (component) mixture density
    if comp:
        nll = -c.wdot(ll)
    else:
        # log(1 − Z), Z = P z1 + (1 − P) z2
        _exp_floor(lz1, t1)
        _exp_floor(lz2, t2)
        t1 *= p
        t2 *= 1.0 - p
        t1 += t2  # Z
        np.negative(t1, out=t1)
        np.log1p(t1, out=t1)  # log(1 − Z)
        nll = -(c.wdot(ll) - c.wdot(t1))
    if not want_grad:
        return nll
    # responsibilities r1 = P f1 / (P f1 + (1−P) f2) (truncated densities if comp)
    np.subtract(x1, ll, out=r1)
    _exp_floor(r1, r1)
    grad = np.empty(5)
    w = c._w
    if comp:
        # rat_k = z_k / (1 − z_k); grads: r_k (g_f + rat_k g_z)
        for k, (a_idx, b_idx) in ((1, (0, 1)), (2, (2, 3))):
            lz = B[f"lz{k}"]
            rat = t1 if k == 1 else t2
            _exp_floor(lz, rat)
            np.expm1(lz, out=x2 if k == 1 else x1)  # reuse x buffers (no longer needed) for −(1 − z)
            den = x2 if k == 1 else x1
            np.negative(den, out=den)
            rat /= den
            resp = r1 if k == 1 else None
            if k == 2:
                np.subtract(1.0, r1, out=ll)  # r2 (ll no longer needed)
                resp = ll
            if w is not None:
                resp = resp * w
            ga = B[f"gfa{k}"]
            gb = B[f"gfb{k}"]
            # g_f_a + rat * lz
            np.multiply(rat, lz, out=den)
            den += ga
            grad[a_idx] = -float(_dot(resp, den))
            np.multiply(rat, B[f"gzb{k}"], out=den)
            den += gb
            grad[b_idx] = -float(_dot(resp, den))
        grad[4] = -(c.wdot(r1) - p * c.w_total)
    else:
        # t_k = weight_k z_k / (1 − Z): first recompute 1 − Z into x2
        _exp_floor(lz1, t1)
        _exp_floor(lz2, t2)
        np.multiply(t1, p, out=x2)
        np.multiply(t2, 1.0 - p, out=x1)
        x2 += x1
        np.subtract(1.0, x2, out=x2)  # 1 − Z
        # (z1 − z2)/(1 − Z) for the P gradient, kept in x1
        np.subtract(t1, t2, out=x1)
        x1 /= x2
        dp_extra = p * (1.0 - p) * c.wdot(x1)
        t1 *= p
        t1 /= x2  # P z1 / (1 − Z)
        t2 *= 1.0 - p
        t2 /= x2  # (1−P) z2 / (1 − Z)
        np.subtract(1.0, r1, out=ll)  # r2
        rr = (r1, ll)
        tt = (t1, t2)
        for k, (a_idx, b_idx) in ((1, (0, 1)), (2, (2, 3))):
            resp = rr[k - 1] if w is None else rr[k - 1] * w
            tk = tt[k - 1] if w is None else tt[k - 1] * w
            grad[a_idx] = -(float(_dot(resp, B[f"gfa{k}"])) + float(_dot(tk, B[f"lz{k}"])))
            grad[b_idx] = -(float(_dot(resp, B[f"gfb{k}"])) + float(_dot(tk, B[f"gzb{k}"])))
        grad[4] = -(c.wdot(r1) - p * c.w_total + dp_extra)
    return nll, grad


def _to_u(theta: np.ndarray) -> np.ndarray:
    t = np.asarray(theta, dtype=float)
    return np.concatenate([np.log(t[:4]), [special.logit(t[4])]])


def _from_u(u: np.ndarray) -> np.ndarray:
    return np.concatenate([np.exp(u[:4]), [special.expit(u[4])]])


def truncated_loglik(prior, n, e, *, weights=None, truncation: Truncation = "mixture") -> float:
    """Log-likelihood (nats, not negated) of a prior on the cells with n ≥ 1.

    ``truncation="mixture"`` (default) truncates the mixture (the exact conditional likelihood,
    vigipy's definition); ``"component"`` is openEBGM's (module docstring).
    ``prior`` is a :class:`GammaMixturePrior` or five numbers (α1, β1, α2, β2, P); a prior
    fitted by another tool can be scored on the same footing.
    """
    theta = prior.as_array() if isinstance(prior, GammaMixturePrior) else np.asarray(prior, dtype=float)
    GammaMixturePrior.from_array(theta).validate()
    cells = _Cells.build(n, e, weights, truncation)
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
    cells with n ≥ 1, under the ``truncation`` the fit used), whatever data the fit itself used.  ``converged`` is True
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
    truncation: str
    n_evaluations: int
    starts: tuple[StartResult, ...]
    message: str
    boundary: bool = False
    """True when a shape parameter went to ~0 or P to 0/1: the likelihood is maximised at the
    edge of the parameter space (reported; EBGM is still well defined)."""
    se_log: tuple[float, ...] | None = field(default=None)
    """Standard errors of (log α1, log β1, log α2, log β2, logit P) from the inverse Hessian."""

    def to_dict(self) -> dict:
        return {
            "method": ("zero-truncated maximum likelihood, "
                       + ("each component truncated then mixed (openEBGM negLL)" if self.truncation == "component"
                          else "mixture truncated (exact conditional likelihood; vigipy)")),
            "prior": self.prior.to_dict(),
            "loglik": self.loglik,
            "converged": self.converged,
            "newton_decrement": self.newton_decrement,
            "tolerance": self.tolerance,
            "n_cells": self.n_cells,
            "n_points_fitted": self.n_points_fitted,
            "squashed": self.squashed,
            "truncation": self.truncation,
            "boundary": self.boundary,
            "n_evaluations": self.n_evaluations,
            "se_log_params": list(self.se_log) if self.se_log is not None else None,
            "starts": [s.__dict__ for s in self.starts],
            "starts_loglik_on": ("random subsample" if "subsample" in self.message else "squashed proxy")
            if self.n_points_fitted != self.n_cells or self.squashed or "proxy" in self.message
            or "subsample" in self.message else "full data",
            "message": self.message,
        }


_SAMPLE_CELLS = 200_000
"""Above five times this many cells the multistart runs on a random subsample of this many."""


def _subsample(n: np.ndarray, e: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random subsample (fixed seed: the same cells every run) with weights scaled to the full total,
    so its likelihood — and the Hessian the Newton polish starts from — is on the full data's scale.
    On millions of cells it lands much nearer the full-data optimum than a squashed copy (whose bins
    average E over 50 cells), so the polish on the full data needs fewer steps, and it costs no sort."""
    idx = np.sort(np.random.default_rng(20_260_101).choice(n.size, size=_SAMPLE_CELLS, replace=False))
    ws = w[idx] * (w.sum() / w[idx].sum())
    return n[idx], e[idx], ws


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


def fit_prior(*args, **kwargs) -> PriorFit:
    """Fit the two-gamma mixture prior by zero-truncated maximum likelihood.

    Parameters
    ----------
    n, e
        Observed and expected counts per drug–event cell (cells with ``n = 0`` may be
        passed and are dropped).
    weights
        Optional cell weights (e.g. from :func:`squash`).
    starts
        Starting values, each (α1, β1, α2, β2, P); default :data:`DEFAULT_STARTS`.
    squash_data
        If True, fit on squashed data (openEBGM style, an approximation); the reported
        ``loglik`` is still evaluated on the full data.  If False (default) the estimate is
        the full-data MLE: squashing is used only to choose the starting basin.
    truncation
        ``"mixture"`` (default: the exact conditional likelihood of n given n ≥ 1, as in vigipy)
        or ``"component"`` (openEBGM's negLL); see the module docstring and ``docs/signals.md``.
    tolerance
        Convergence requires the Newton decrement ``gᵀH⁻¹g/2`` below this, in log-likelihood units.
    proxy_threshold
        Above this many cells the multistart runs on a squashed proxy first (above 1,000,000 on a
        random subsample of 200,000 cells instead, see :func:`_subsample`).
    """
    # L-BFGS-B calls BLAS on 5-vectors; OpenBLAS threads only add contention there.
    with np.errstate(all="ignore"), threadpool_limits(limits=1, user_api="blas"):
        return _fit_prior(*args, **kwargs)


def _fit_prior(
    n,
    e,
    *,
    weights=None,
    starts=None,
    squash_data: bool = False,
    truncation: Truncation = "mixture",
    max_iter: int = 500,
    tolerance: float = 1e-8,
    proxy_threshold: int = 20_000,
    warn: bool = True,
) -> PriorFit:
    full = _Cells.build(n, e, weights, truncation)
    starts = DEFAULT_STARTS if starts is None else tuple(tuple(float(v) for v in s) for s in starts)
    for s in starts:
        GammaMixturePrior.from_array(s).validate()
    counter = [0]

    sampled = not squash_data and full.n.size > 5 * _SAMPLE_CELLS
    if sampled:
        proxy = _Cells.build(*_subsample(full.n, full.e, full.w), truncation)
    elif squash_data or full.n.size > proxy_threshold:
        sn, se, sw = squash(full.n, full.e, weights=full.w, bin_size=50, keep_bins=2, min_pts=500)
        proxy = _Cells.build(sn, se, sw, truncation)
    else:
        proxy = full

    results: list[StartResult] = []
    best_u, best_f = None, np.inf
    for s in starts:
        res = _minimize(proxy, _to_u(np.asarray(s)), max_iter, counter)
        ok = bool(res.success) and bool(np.isfinite(res.fun))
        est = tuple(float(v) for v in _from_u(res.x)) if np.isfinite(res.fun) else None
        results.append(StartResult(start=tuple(s), estimate=est, loglik=-float(res.fun) if np.isfinite(res.fun) else None,
                                   success=ok, message=str(res.message)))
        if np.isfinite(res.fun) and res.fun < best_f:
            best_f, best_u = float(res.fun), res.x
    if best_u is None:
        prior = GammaMixturePrior.from_array(starts[0])
        fit = PriorFit(prior=prior, loglik=float("nan"), converged=False, newton_decrement=None, tolerance=tolerance,
                       n_cells=int(full.n.size), n_points_fitted=int(proxy.n.size), squashed=proxy is not full,
                       truncation=truncation, n_evaluations=counter[0], starts=tuple(results),
                       message="every start failed (non-finite likelihood)")
        if warn:
            warnings.warn(f"MGPS prior fit failed: {fit.message}", ConvergenceWarning, stacklevel=2)
        return fit

    target = proxy if squash_data else full
    u = best_u
    kind = f"a random subsample of {_SAMPLE_CELLS:,} cells" if sampled else "squashed proxy"
    message = f"multistart on {kind}, Newton-polished on full data" if (proxy is not full and not squash_data) \
        else ("fitted on squashed data" if squash_data else "multistart on full data")
    if proxy is not full and not squash_data:
        message += " (proxy Hessian, BFGS-updated)"

    def newton(u):
        """Damped Newton on ``target``.  The Hessian starts as the (cheap) Hessian of ``proxy``
        and is corrected by BFGS secant updates from full-data gradients, so the iteration is
        superlinear even when ``proxy`` is a squashed approximation of ``target``."""
        decrement, se_log, pd_ok, h = None, None, False, None
        g_prev = u_prev = None
        f, g = _negll_and_grad(u, target)
        counter[0] += 1
        for it in range(60):
            if h is None:
                h = _hessian(proxy, u, counter)
            elif g_prev is not None:
                s_, y_ = u - u_prev, g - g_prev
                sy = float(s_ @ y_)
                if sy > 1e-12 * float(np.linalg.norm(s_) * np.linalg.norm(y_)):
                    hs = h @ s_
                    h = h - np.outer(hs, hs) / float(s_ @ hs) + np.outer(y_, y_) / sy
            try:
                np.linalg.cholesky(h)
                pd_ok = True
            except np.linalg.LinAlgError:
                return u, None, None, False, "Hessian not positive definite"
            step = np.linalg.solve(h, g)
            decrement = float(0.5 * g @ step)
            if not np.isfinite(decrement):
                return u, None, None, False, "non-finite gradient"
            if decrement <= tolerance:
                se_log = tuple(float(v) for v in np.sqrt(np.clip(np.diag(np.linalg.inv(h)), 0, None)))
                return u, decrement, se_log, pd_ok, ""
            t = 1.0
            gc = None
            for trial in range(30):
                cand = u - t * step
                with np.errstate(all="ignore"):
                    if not np.all(np.abs(cand) < 40):
                        fc = np.inf
                    elif trial == 0:  # the full step is usually taken: its gradient is needed next anyway
                        fc, gc = _negll_and_grad(cand, target)
                    else:
                        fc = _negll_and_grad(cand, target, want_grad=False)
                counter[0] += 1
                if np.isfinite(fc) and fc <= f - 1e-4 * t * float(g @ step):
                    break
                t *= 0.5
            else:
                return u, decrement, None, pd_ok, "line search failed"
            u_prev, g_prev = u, g
            u = cand
            if trial == 0 and gc is not None:
                f, g = fc, gc
            else:
                f, g = _negll_and_grad(u, target)
                counter[0] += 1
        return u, decrement, None, pd_ok, "Newton iteration limit"

    u1, decrement, se_log, pd_ok, why = newton(u)
    if decrement is None or decrement > tolerance:
        # fall back to the quasi-Newton optimiser on the target data, then check again
        res = _minimize(target, u1 if np.all(np.isfinite(u1)) else u, max_iter, counter)
        message += f"; Newton polish stopped ({why}), quasi-Newton fallback: {res.message}"
        u1, decrement, se_log, pd_ok, why = newton(res.x)
        if why:
            message += f"; check: {why}"
    u = u1

    theta = _from_u(u)
    prior = GammaMixturePrior.from_array(theta).canonical()
    loglik = -_negll_and_grad(_to_u(prior.as_array()), full, want_grad=False)
    # The criterion is the Newton decrement at a positive-definite Hessian; the optimiser's own
    # stop message (e.g. a line-search stop at an optimum) is kept in ``message``.
    converged = bool(pd_ok and decrement is not None and decrement <= tolerance)
    if decrement is not None and decrement > tolerance:
        message += f"; Newton decrement {decrement:.3g} above tolerance {tolerance:g}"
    boundary = bool(prior.p < 1e-6 or prior.p > 1 - 1e-6 or min(prior.alpha1, prior.alpha2) < 1e-6
                    or max(prior.alpha1, prior.beta1, prior.alpha2, prior.beta2) > 1e6)
    if boundary:
        message += ("; estimate at the edge of the parameter space (a shape → 0 or ∞, or P → 0/1): "
                    "the likelihood has no interior maximum for these data")
    fit = PriorFit(
        prior=prior, loglik=float(loglik), converged=converged, newton_decrement=decrement, tolerance=tolerance,
        n_cells=int(full.n.size), n_points_fitted=int(target.n.size), squashed=target is not full,
        truncation=truncation, n_evaluations=counter[0], starts=tuple(results), message=message, se_log=se_log,
        boundary=boundary,
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
    """log NB(n; α, β/(β+E)), with the same accurate terms as :func:`_component_terms`."""
    l1p = np.log1p(beta / e)
    return _log_count_term(n, alpha) + alpha * (math.log(beta) - np.log(e) - l1p) - n * l1p


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
    """(unique values, inverse index) — by counting when the values are small whole numbers."""
    n = np.asarray(n)
    if n.size and np.all(n >= 0) and float(n.max()) < 5e6:
        ni = n.astype(np.int64)
        if np.array_equal(ni, n):
            present = np.bincount(ni) > 0
            uniq = np.flatnonzero(present)
            lookup = np.cumsum(present) - 1
            return uniq.astype(float), lookup[ni]
    uniq, inv = np.unique(n, return_inverse=True)
    return uniq, inv.reshape(n.shape)


def posterior_quantile(prior, n, e, prob: float, q=None, *, rtol: float = 1e-9, ftol: float = 1e-10,
                       max_iter: int = 200) -> np.ndarray:
    with np.errstate(all="ignore"):
        return _posterior_quantile(prior, n, e, prob, q, rtol=rtol, ftol=ftol, max_iter=max_iter)


def _posterior_quantile(prior, n, e, prob: float, q=None, *, rtol: float = 1e-9, ftol: float = 1e-10,
                        max_iter: int = 200) -> np.ndarray:
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
    tiny = np.finfo(float).tiny
    t1 = np.maximum(special.gammaincinv(a1u, prob), tiny)[inv]
    t2 = np.maximum(special.gammaincinv(a2u, prob), tiny)[inv]
    lg1 = special.gammaln(a1u)[inv]
    lg2 = special.gammaln(a2u)[inv]
    a1, a2 = a1u[inv], a2u[inv]
    b1, b2 = pr.beta1 + e, pr.beta2 + e
    x1, x2 = t1 / b1, t2 / b2
    lo = np.log(np.minimum(x1, x2))
    hi = np.log(np.maximum(x1, x2))
    lb1, lb2 = np.log(b1), np.log(b2)
    # Cells where one component carries all but < 1e-12 of the posterior mass: that
    # component's quantile (CDF error < 1e-12).  Others: Newton from the Q-weighted point.
    dominant1 = q >= 1.0 - 1e-12
    dominant2 = q <= 1e-12
    out = np.where(dominant1, x1, x2)
    todo = np.flatnonzero(~(dominant1 | dominant2) & (hi - lo > rtol))
    y = q * np.log(x1) + (1.0 - q) * np.log(x2)
    tiny = ~(dominant1 | dominant2) & (hi - lo <= rtol)
    out[tiny] = np.exp(y[tiny])
    for it in range(max_iter):
        if todo.size == 0:
            break
        yt = y[todo]
        xt = np.exp(yt)
        lz1 = lb1[todo] + yt
        lz2 = lb2[todo] + yt
        z1 = np.exp(lz1)
        z2 = np.exp(lz2)
        qt = q[todo]
        F = qt * special.gammainc(a1[todo], z1) + (1.0 - qt) * special.gammainc(a2[todo], z2)
        # dF/dy = x f(x) = Σ weight · z·pdf(z) with z = b x
        d1 = np.exp(a1[todo] * lz1 - z1 - lg1[todo])
        d2 = np.exp(a2[todo] * lz2 - z2 - lg2[todo])
        dF = qt * d1 + (1.0 - qt) * d2
        err = F - prob
        conv = np.abs(err) <= ftol
        if conv.any():
            out[todo[conv]] = xt[conv]
            keep = ~conv
            todo, yt, xt, err, dF, qt = todo[keep], yt[keep], xt[keep], err[keep], None, None
            if todo.size == 0:
                break
            d1, d2, z1, z2 = d1[keep], d2[keep], z1[keep], z2[keep]
            dF = q[todo] * d1 + (1.0 - q[todo]) * d2
        # update bracket
        above = err > 0
        hi_t, lo_t = hi[todo], lo[todo]
        hi_t = np.where(above, yt, hi_t)
        lo_t = np.where(above, lo_t, yt)
        hi[todo], lo[todo] = hi_t, lo_t
        # Halley step: F'' = Σ weight_k · d_k · (a_k − z_k)
        qq = q[todo]
        d2F = qq * d1 * (a1[todo] - z1) + (1.0 - qq) * d2 * (a2[todo] - z2)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ynew = yt - 2.0 * err * dF / (2.0 * dF * dF - err * d2F)
        bad = ~np.isfinite(ynew) | (ynew <= lo_t) | (ynew >= hi_t)
        if it % 6 == 5:  # a bisection now and then guarantees the bracket shrinks (flat CDFs)
            bad |= True
        ynew = np.where(bad, 0.5 * (lo_t + hi_t), ynew)
        done = (np.abs(ynew - yt) <= rtol) | (hi_t - lo_t <= rtol)
        y[todo] = ynew
        out[todo[done]] = np.exp(ynew[done])
        todo = todo[~done]
    if todo.size:
        out[todo] = np.nan
        warnings.warn(f"posterior {prob:g} quantile did not converge for {todo.size} cell(s) in {max_iter} "
                      "iterations; those values are NaN", ConvergenceWarning, stacklevel=2)
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
    """Qn, EBGM, EB05 and EB95 for every cell (vectorised; counts may be 0).

    openEBGM's reference (DuMouchel's statin example): N = 16, E = 0.40643623 under the prior
    θ = (3.25379356, 0.39988854, 2.02612692, 1.90807970, 0.06534557):

    >>> theta = GammaMixturePrior(3.25379356, 0.39988854, 2.02612692, 1.90807970, 0.06534557)
    >>> s = ebgm_scores(theta, [16], [0.40643623])
    >>> round(float(s.eb05[0]), 1), round(float(s.ebgm[0]), 1), round(float(s.eb95[0]), 1)  # published 15.68, 23.26, 33.48
    (15.7, 23.3, 33.5)

    Large tables repeat (n, E) pairs (cells whose drug and event margins coincide); each
    distinct pair is scored once and the results are copied back (exact)."""
    pr = _as_prior(prior)
    n, e = _check_ne(n, e)
    if n.ndim == 1 and n.size >= 200_000:
        order = np.lexsort((e, n))
        ns, es = n[order], e[order]
        first = np.r_[True, (ns[1:] != ns[:-1]) | (es[1:] != es[:-1])]
        if first.mean() < 0.9:
            group = np.cumsum(first) - 1
            inv = np.empty(n.size, dtype=np.int64)
            inv[order] = group
            u = _ebgm_scores(pr, ns[first], es[first])
            return EBGMScores(n=n, e=e, qn=u.qn[inv], ebgm=u.ebgm[inv], eb05=u.eb05[inv], eb95=u.eb95[inv])
    return _ebgm_scores(pr, n, e)


def _ebgm_scores(pr: GammaMixturePrior, n: np.ndarray, e: np.ndarray) -> EBGMScores:
    q = qn(pr, n, e)
    if n.size >= 100_000 and (os.cpu_count() or 1) > 1:
        # the two quantiles are independent and numpy/scipy release the GIL: one thread each
        with ThreadPoolExecutor(max_workers=2) as pool:
            f05 = pool.submit(posterior_quantile, pr, n, e, 0.05, q)
            f95 = pool.submit(posterior_quantile, pr, n, e, 0.95, q)
            eb05, eb95 = f05.result(), f95.result()
    else:
        eb05, eb95 = posterior_quantile(pr, n, e, 0.05, q), posterior_quantile(pr, n, e, 0.95, q)
    return EBGMScores(n=n, e=e, qn=q, ebgm=ebgm(pr, n, e, q), eb05=eb05, eb95=eb95)
