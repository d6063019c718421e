"""Vectorised bootstrap of IPW that refits every weight model in every replicate.

Replicates are processed in batches: the bootstrap sample of replicate r is a vector of
row counts cᵣ (row i drawn cᵣᵢ times), so a batch is an (R × n) count matrix and the
logistic refits of all R replicates share matrix products instead of copying rows.

Each refit iterates to convergence from the full-sample coefficients β̂ with a *chord*
Newton method (Kelley 1995, §5.4): the Hessian is fixed at the full-sample information
n·I(β̂) and the gradient Σ cᵢ xᵢ(yᵢ − pᵢ) is recomputed with the replicate's counts.  The
fixed point is where the replicate's score is zero, i.e. the replicate's own
maximum-likelihood fit; the fixed Hessian only sets the speed (the bootstrap Hessian
differs by O(n^-½), so each step gains one to two digits).  The first step needs no
probabilities (they equal p̂ at β̂), so it is a single product of the count matrix.  A
replicate has converged when its next coefficient step is below 1e-6 on the standardised
coefficient scale — much stricter than R's ``glm`` rule (relative deviance change < 1e-8,
which at n = 100,000 allows steps of order 1e-4) — and its fitted probabilities are those
of that last iterate.  A replicate not converged after
50 steps is refitted by full Newton–Raphson; one that still fails is NaN and counted.
Passes over the rows run in cache-sized chunks and compute 1/(1 + e^−η) with numpy's
vectorised ``exp`` (several times faster than ``scipy.special.expit`` here).

Replicate r uses ``default_rng(SeedSequence(seed).spawn(n_bootstrap)[r]).integers(0, n, n)``
— the same rows as the generic bootstrap — so results do not depend on batching or workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import linalg
from threadpoolctl import threadpool_limits

from ketaweight.causal.data import AnalysisData
from ketaweight.causal.glm import fit_logistic
from ketaweight.causal.weights import FittedModel, censoring_model, propensity_model
from ketaweight.core.replicates import run_replicates

CHORD_TOL = 1e-6
CHORD_MAX_ITER = 50
BATCH_CELLS = 4_000_000
"""Replicates × rows per batch (bounds memory: a few such float64 matrices live at once)."""
CHUNK_CELLS = 320_000
"""Replicates × rows per chunk of a pass (about 1.3 MB per float32 matrix, cache-sized)."""


def _logistic(eta: np.ndarray) -> np.ndarray:
    """1/(1 + e^−η) in place of ``eta`` (overflow of e^−η to inf gives 0, as it should)."""
    with np.errstate(over="ignore"):
        np.negative(eta, out=eta)
        np.exp(eta, out=eta)
        eta += 1.0
        return np.reciprocal(eta, out=eta)


def refit_logistic_batch(model: FittedModel, counts: np.ndarray) -> np.ndarray:
    """Fitted probabilities (R × n, float32) of ``model`` refitted to each row of ``counts``.

    The passes run in float32 (half the memory traffic, twice the SIMD width); gradients are
    accumulated in float64 per chunk of rows.  Float32 rounding perturbs the gradient by
    about 1e-5 at n = 100,000, i.e. the coefficients by about 1e-9 (the Hessian is of order
    n/5), far below the 1e-6 stopping rule.  Rows that fail to converge by chord steps are
    refitted by float64 Newton from the full-sample coefficients; failures give NaN.
    """
    x, y = model.x.astype(np.float32), model.response.astype(np.float32)
    r, n = counts.shape
    chol = linalg.cho_factor(model.fit.information * n, check_finite=False)
    u = (model.x * (model.response - model.fit.fitted)[:, None]).astype(np.float32)
    beta = model.fit.coef[None, :] + linalg.cho_solve(chol, (counts @ u).T.astype(float), check_finite=False).T
    prob = np.empty((r, n), dtype=np.float32)
    chunk = max(256, CHUNK_CELLS // r)
    done = np.zeros(r, dtype=bool)
    for _ in range(CHORD_MAX_ITER):
        grad = np.zeros_like(beta)
        b32 = beta.astype(np.float32)
        for s in range(0, n, chunk):
            xs = x[s : s + chunk]
            p = _logistic(b32 @ xs.T)
            prob[:, s : s + chunk] = p
            grad += (counts[:, s : s + chunk] * (y[s : s + chunk] - p)) @ xs
        step = linalg.cho_solve(chol, grad.T, check_finite=False).T
        done = np.abs(step).max(axis=1) < CHORD_TOL
        if done.all():
            break
        beta += step
    for j in np.flatnonzero(~done):
        fit = fit_logistic(model.x, model.response, sample_weight=counts[j].astype(float), start=model.fit.coef)
        prob[j] = fit.fitted if fit.converged and not fit.separated else np.nan
    return prob


def _weighted_percentiles(w: np.ndarray, counts: np.ndarray, q: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Per-replicate (row) percentiles of positive weights, each column counted ``counts`` times."""
    lo = np.empty(w.shape[0])
    hi = np.empty(w.shape[0])
    for j in range(w.shape[0]):
        pos = (w[j] > 0) & (counts[j] > 0)
        lo[j], hi[j] = np.percentile(np.repeat(w[j, pos], counts[j, pos].astype(int)), q)
    return lo, hi


def bootstrap_ipw(
    data: AnalysisData,
    *,
    n_bootstrap: int,
    seed: int,
    n_jobs: int,
    stabilized: bool,
    truncate: tuple[float, float] | None,
    scheduler: Any = None,
) -> np.ndarray:
    """IPW replicate estimates (length ``n_bootstrap``; NaN where a replicate failed).

    Stabilization multiplies each arm's weights by a constant, which leaves the Hájek means
    unchanged; it is applied anyway because it changes which weights truncation clips.
    Batches run in ``n_jobs`` threads, or on a Dask cluster with ``scheduler``
    (:func:`ketaweight.core.replicates.run_replicates`); the batches depend on n only, so the
    estimates do not depend on where they ran.
    """
    state = _Batches.prepare(data, n_bootstrap, seed, stabilized, truncate)
    firsts = list(range(0, n_bootstrap, state.batch))
    with threadpool_limits(limits=1):
        parts = run_replicates(_ipw_batch, firsts, shared=state, scheduler=scheduler, workers=n_jobs, pool="threads",
                               name="bootstrap-ipw")
    return np.concatenate(parts)


def _ipw_batch(state: "_Batches", k: int, first: int) -> np.ndarray:
    """Batch ``k`` of the IPW bootstrap: the replicates from ``first`` on (also on a Dask worker)."""
    with threadpool_limits(limits=1):
        return state.run(first)


@dataclass(frozen=True)
class _Batches:
    """What every batch of the IPW bootstrap shares (full-sample fits and row vectors); picklable."""

    n: int
    n_bootstrap: int
    estimand: str
    ps: FittedModel
    cm: FittedModel | None
    children: list[np.random.SeedSequence]
    a: np.ndarray
    treated: np.ndarray
    observed: np.ndarray
    r_obs: np.ndarray
    sums_of: np.ndarray
    batch: int
    stabilized: bool
    truncate: tuple[float, float] | None

    @classmethod
    def prepare(cls, data: AnalysisData, n_bootstrap: int, seed: int, stabilized: bool,
                truncate: tuple[float, float] | None) -> "_Batches":
        n = data.n
        a = data.a
        y0 = np.where(data.observed, data.y, 0.0)
        return cls(n=n, n_bootstrap=n_bootstrap, estimand=data.spec.estimand, ps=propensity_model(data),
                   cm=censoring_model(data), children=np.random.SeedSequence(seed).spawn(n_bootstrap), a=a,
                   treated=a == 1, observed=data.observed, r_obs=data.observed.astype(float),
                   sums_of=np.column_stack([a * y0, a, (1 - a) * y0, 1 - a]),
                   batch=max(1, min(64, BATCH_CELLS // max(n, 1))), stabilized=stabilized, truncate=truncate)

    def run(self, first: int) -> np.ndarray:
        """Estimates of replicates ``first`` … ``first + batch - 1``."""
        n = self.n
        idx = range(first, min(first + self.batch, self.n_bootstrap))
        counts = np.empty((len(idx), n), dtype=np.float32)  # counts <= n are exact in float32
        for k, r in enumerate(idx):
            counts[k] = np.bincount(np.random.default_rng(self.children[r]).integers(0, n, n), minlength=n)
        e = refit_logistic_batch(self.ps, counts)
        pi = None if self.cm is None else refit_logistic_batch(self.cm, counts)
        scale = self._stabilizers(counts) if self.stabilized else None
        chunk = max(256, CHUNK_CELLS // len(idx))
        if self.truncate is None:
            sums = sum(
                (counts[:, s : s + chunk] * self._weights(e, pi, scale, s, s + chunk)) @ self.sums_of[s : s + chunk]
                for s in range(0, n, chunk)
            )
        else:
            w = np.concatenate([self._weights(e, pi, scale, s, s + chunk) for s in range(0, n, chunk)], axis=1)
            lo, hi = _weighted_percentiles(w, counts, self.truncate)
            w = np.where(w > 0, np.clip(w, lo[:, None], hi[:, None]), 0.0)
            sums = (counts * w) @ self.sums_of
        return sums[:, 0] / sums[:, 1] - sums[:, 2] / sums[:, 3]

    def _stabilizers(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-replicate multipliers of the treated and the control weights (R,), (R,)."""
        a, n = self.a, self.n
        p1 = counts @ a / n  # float32 counts @ float64 vectors: numpy computes in float64
        t, c = (p1, 1 - p1) if self.estimand == "ATE" else (np.ones_like(p1), (1 - p1) / p1)
        if self.cm is not None:
            t = t * (counts @ (self.r_obs * a)) / (counts @ a)
            c = c * (counts @ (self.r_obs * (1 - a))) / (counts @ (1 - a))
        return t, c

    def _weights(
        self, e: np.ndarray, pi: np.ndarray | None, scale: tuple[np.ndarray, np.ndarray] | None, lo: int, hi: int
    ) -> np.ndarray:
        """Weights of rows lo:hi for every replicate of the batch (R × chunk)."""
        ec, tr = e[:, lo:hi].astype(float), self.treated[lo:hi]
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.estimand == "ATE":
                w = np.where(tr, 1.0 / ec, 1.0 / (1.0 - ec))
            else:
                w = np.where(tr, 1.0, ec / (1.0 - ec))
            if pi is not None:
                w *= np.where(self.observed[lo:hi], 1.0 / pi[:, lo:hi].astype(float), 0.0)
        w *= self.r_obs[lo:hi]
        if scale is not None:
            w *= np.where(tr, scale[0][:, None], scale[1][:, None])
        return w
