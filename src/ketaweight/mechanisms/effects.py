"""Small shared pieces of the mechanism analyses (mediation, dose-response, heterogeneity).

Scalar effects are :class:`~ketaweight.causal.result.CausalResult` objects (one vocabulary:
``estimate``, ``se``, ``ci_low``, ``ci_high``, ``n``, ``variance``); this module adds the
normal-theory interval, the percentile-bootstrap summary, seeded parallel replicates and Holm's
step-down adjustment, so each analysis module stays about its own estimand.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from scipy import stats
from threadpoolctl import threadpool_limits

from ketaweight.causal.base import n_workers
from ketaweight.causal.result import CausalResult
from ketaweight.core.vocabulary import BootstrapInterval


def z_value(ci_level: float) -> float:
    """Two-sided standard-normal quantile for a ``ci_level`` interval (1.96 for 0.95)."""
    return float(stats.norm.ppf(0.5 + ci_level / 2))


def wald_result(
    *,
    treatment: str,
    outcome: str,
    estimand: str,
    method: str,
    estimate: float,
    se: float,
    n: int,
    variance: str,
    ci_level: float = 0.95,
    diagnostics: dict[str, Any] | None = None,
    warnings: Sequence[str] = (),
    settings: dict[str, Any] | None = None,
) -> CausalResult:
    """A :class:`CausalResult` with the normal-theory interval estimate ± z·se."""
    z = z_value(ci_level)
    return CausalResult(
        treatment=treatment, outcome=outcome, estimand=estimand, method=method, estimate=float(estimate),
        se=float(se), ci_low=float(estimate - z * se), ci_high=float(estimate + z * se), n=int(n),
        variance=variance, diagnostics=diagnostics or {}, warnings=tuple(warnings), ci_level=ci_level,
        settings=settings or {},
    )


def bootstrap_replicates(
    one: Callable[[np.random.Generator], np.ndarray], *, n_bootstrap: int, seed: int, n_jobs: int = -1
) -> np.ndarray:
    """Run ``one(rng)`` for ``n_bootstrap`` seeded replicates on a thread pool; (B, k) array.

    Replicate r draws from ``default_rng(SeedSequence(seed).spawn(n_bootstrap)[r])``, as the
    engine's bootstrap (:mod:`ketaweight.causal.base`), so results do not depend on the number
    of workers.  BLAS is limited to one thread per worker (threads already fill the cores).
    A replicate that fails numerically returns NaNs and is counted by the caller.
    """
    children = np.random.SeedSequence(seed).spawn(n_bootstrap)

    def run(r: int) -> np.ndarray:
        try:
            return np.asarray(one(np.random.default_rng(children[r])), dtype=float)
        except (np.linalg.LinAlgError, ValueError, ZeroDivisionError, FloatingPointError):
            return np.array([math.nan])

    with threadpool_limits(limits=1), ThreadPoolExecutor(max_workers=n_workers(n_jobs)) as pool:
        reps = list(pool.map(run, range(n_bootstrap)))
    width = max(r.size for r in reps)
    return np.vstack([r if r.size == width else np.full(width, math.nan) for r in reps])


INTERVAL_TEXT: dict[str, str] = {"normal": "estimate ± z × bootstrap SE", "percentile": "percentile interval"}
"""The interval methods as results describe them."""


def bootstrap_summary(reps: np.ndarray, point: np.ndarray, ci_level: float, interval: BootstrapInterval = "normal"
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """SE (SD of the finite replicates), CI limits per column (normal-theory around ``point``, or percentile) and
    the count of failed replicates (any non-finite value)."""
    if interval not in INTERVAL_TEXT:
        raise ValueError(f"interval={interval!r} must be one of {list(INTERVAL_TEXT)}")
    ok = reps[np.all(np.isfinite(reps), axis=1)]
    failed = int(reps.shape[0] - ok.shape[0])
    alpha = 1 - ci_level
    if ok.shape[0] < 2:
        nan = np.full(reps.shape[1], math.nan)
        return nan, nan, nan, failed
    se = ok.std(axis=0, ddof=1)
    if interval == "percentile":
        lo, hi = np.quantile(ok, [alpha / 2, 1 - alpha / 2], axis=0)
    else:
        z = stats.norm.ppf(1 - alpha / 2)
        lo, hi = point - z * se, point + z * se
    return se, lo, hi, failed


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm (1979) step-down adjusted p-values (family-wise error control), in input order."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()
