"""Vectorised bootstrap of IPW that refits every weight model in every replicate.

Replicates are processed in batches: the bootstrap sample of replicate r is a vector of
row counts cᵣ (row i drawn cᵣᵢ times), so a batch is an (n × R) count matrix and the
logistic refits of all R replicates share matrix products instead of copying rows.

Each refit iterates to convergence from the full-sample coefficients β̂ with a *chord*
Newton method (Kelley 1995, §5.4): the Hessian is fixed at the full-sample information
n·I(β̂), the gradient is recomputed with the replicate's counts.  The fixed point is where
the replicate's score Σ cᵢ xᵢ(yᵢ − pᵢ) = 0, i.e. exactly the replicate's maximum-likelihood
fit; the fixed Hessian only changes how fast it gets there (the bootstrap Hessian differs by
O(n^-½), so each step gains about two digits).  A replicate whose step has not fallen below
1e-9 (standardised coefficient scale) after 50 steps is refitted by full Newton–Raphson;
one that still fails is NaN and counted.

Replicate r uses ``default_rng(SeedSequence(seed).spawn(n_replicates)[r]).integers(0, n, n)``
— the same rows as the generic bootstrap — so results do not depend on batching or workers.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import linalg
from scipy.special import expit
from threadpoolctl import threadpool_limits

from ketaweight.causal.data import AnalysisData
from ketaweight.causal.glm import fit_logistic
from ketaweight.causal.weights import censoring_design, censoring_model, propensity_model

CHORD_TOL = 1e-9
CHORD_MAX_ITER = 50
BATCH_CELLS = 4_000_000
"""Rows × replicates per batch (bounds memory: about 5 such float64 matrices live at once)."""


def refit_logistic_batch(
    x: np.ndarray, y: np.ndarray, counts: np.ndarray, start: np.ndarray, information: np.ndarray
) -> np.ndarray:
    """Fitted probabilities (n × R) of a logistic model refitted to each count column.

    ``information`` is the full-sample information matrix I(β̂) (per row); columns that do
    not converge by chord steps are refitted by Newton; failures give NaN columns.
    """
    n, r = counts.shape
    chol = linalg.cho_factor(information * n, check_finite=False)
    beta = np.repeat(start[:, None], r, axis=1)
    done = np.zeros(r, dtype=bool)
    for _ in range(CHORD_MAX_ITER):
        prob = expit(x @ beta)
        step = linalg.cho_solve(chol, x.T @ (counts * (y[:, None] - prob)), check_finite=False)
        beta += step
        done = np.abs(step).max(axis=0) < CHORD_TOL
        if done.all():
            break
    prob = expit(x @ beta)
    for j in np.flatnonzero(~done):
        fit = fit_logistic(x, y, sample_weight=counts[:, j], start=beta[:, j])
        prob[:, j] = fit.fitted if fit.converged and not fit.separated else np.nan
    return prob


def _weighted_percentiles(w: np.ndarray, counts: np.ndarray, q: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Per-column percentiles of positive weights, each row counted ``counts`` times."""
    lo = np.empty(w.shape[1])
    hi = np.empty(w.shape[1])
    for j in range(w.shape[1]):
        pos = (w[:, j] > 0) & (counts[:, j] > 0)
        lo[j], hi[j] = np.percentile(np.repeat(w[pos, j], counts[pos, j].astype(int)), q)
    return lo, hi


def bootstrap_ipw(
    data: AnalysisData,
    *,
    n_replicates: int,
    seed: int,
    n_jobs: int,
    stabilized: bool,
    truncate: tuple[float, float] | None,
) -> np.ndarray:
    """IPW replicate estimates (length ``n_replicates``; NaN where a replicate failed).

    Stabilization multiplies each arm's weights by a constant, which leaves the Hájek means
    unchanged; it is applied anyway because it changes which weights truncation clips.
    """
    n = data.n
    estimand = data.spec.estimand
    ps = propensity_model(data)
    cm = censoring_model(data)
    xz = None if cm is None else censoring_design(data)
    children = np.random.SeedSequence(seed).spawn(n_replicates)
    a = data.a
    y0 = np.where(data.observed, data.y, 0.0)
    r_obs = data.observed.astype(float)
    batch = max(1, min(64, BATCH_CELLS // max(n, 1)))
    starts = list(range(0, n_replicates, batch))

    def run(first: int) -> np.ndarray:
        idx = range(first, min(first + batch, n_replicates))
        counts = np.column_stack(
            [np.bincount(np.random.default_rng(children[r]).integers(0, n, n), minlength=n) for r in idx]
        ).astype(float)
        e = refit_logistic_batch(data.x.matrix, a, counts, ps.fit.coef, ps.fit.information)
        ac = a[:, None]
        if estimand == "ATE":
            w = ac / e + (1 - ac) / (1 - e)
        else:
            w = ac + (1 - ac) * e / (1 - e)
        if cm is not None:
            pi = refit_logistic_batch(xz, r_obs, counts, cm.fit.coef, cm.fit.information)
            w = w * np.where(data.observed[:, None], 1.0 / pi, 0.0)
        else:
            w = w * r_obs[:, None]
        if stabilized:
            p1 = (counts * ac).sum(axis=0) / n
            w = w * (np.where(ac == 1, p1, 1 - p1) if estimand == "ATE" else np.where(ac == 1, 1.0, (1 - p1) / p1))
            if cm is not None:
                rc = counts * r_obs[:, None]
                share1 = (rc * ac).sum(axis=0) / (counts * ac).sum(axis=0)
                share0 = (rc * (1 - ac)).sum(axis=0) / (counts * (1 - ac)).sum(axis=0)
                w = w * np.where(ac == 1, share1, share0)
        if truncate is not None:
            lo, hi = _weighted_percentiles(w, counts, truncate)
            w = np.where(w > 0, np.clip(w, lo, hi), 0.0)
        cw = counts * w
        t = cw * ac
        c = cw * (1 - ac)
        return (t.T @ y0) / t.sum(axis=0) - (c.T @ y0) / c.sum(axis=0)

    with threadpool_limits(limits=1), ThreadPoolExecutor(max_workers=n_jobs) as pool:
        return np.concatenate(list(pool.map(run, starts)))
