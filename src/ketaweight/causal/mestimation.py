"""Sandwich variance of stacked estimating equations with a numerical Jacobian.

For parameters θ̂ solving Σᵢ Uᵢ(θ̂) = 0, Var(θ̂) ≈ A⁻¹ B A⁻ᵀ / n with A = −∂ mean U/∂θ
and B = mean UᵢUᵢᵀ (Stefanski & Boos 2002).  A is taken by central differences, so any
stack of nuisance models and target parameter works without hand-derived derivatives.  It
evaluates every row's estimating functions 2·dim(θ) + 1 times, so the estimators use closed
forms (IPW, standardization, g-estimation); this generic one is the reference the tests check
those closed forms against (``tests/causal/test_variance.py``, ``test_gestimation_variance.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def sandwich(estfun: Callable[[np.ndarray], np.ndarray], theta: np.ndarray, *, rel_step: float = 1e-6) -> np.ndarray:
    """Covariance (k × k) of θ̂ from ``estfun(θ) -> (n × k)`` per-row estimating functions."""
    u = estfun(theta)
    n, k = u.shape
    jac = np.empty((k, k))
    for j in range(k):
        h = rel_step * max(1.0, abs(theta[j]))
        up, down = theta.copy(), theta.copy()
        up[j] += h
        down[j] -= h
        jac[:, j] = (estfun(up).mean(axis=0) - estfun(down).mean(axis=0)) / (2 * h)
    meat = u.T @ u / n
    inv = np.linalg.inv(jac)
    return inv @ meat @ inv.T / n
