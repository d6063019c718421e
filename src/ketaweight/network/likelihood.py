"""Per-site likelihood approximations that travel in a bundle instead of patient rows.

A site shares, for its effect θ (outcome units), either a normal approximation (estimate and
SE) or a **grid**: log-likelihood values at fixed points, normalised to a maximum of 0, as
OHDSI EvidenceSynthesis ships profile likelihoods (Schuemie et al. 2022).  Between grid points
the log-likelihood is linearly interpolated; beyond the ends it continues with the end slopes
(EvidenceSynthesis' "extending empirical" data model), so it keeps falling away from the data.

For the doubly robust estimators used here the likelihood is not parametric; the grid holds the
**empirical likelihood** profile of the estimating equation (Owen 1988; Qin & Lawless 1994):
with the per-patient pseudo-outcomes φᵢ whose mean is the AIPW estimate,
log R(θ) = max{Σ log(n pᵢ) : pᵢ ≥ 0, Σpᵢ = 1, Σpᵢ(φᵢ − θ) = 0}, solved through its Lagrange
multiplier λ: pᵢ = 1/(n(1 + λ(φᵢ − θ))), Σ(φᵢ − θ)/(1 + λ(φᵢ − θ)) = 0.  −2 log R(θ) is
asymptotically χ²₁, like a profile likelihood ratio, but it keeps the skew of small sites.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize

from ketaweight.core.errors import InputError, Location, NumericalError

GRID_HALF_WIDTH_SE = 6.0
"""An empirical-likelihood grid spans the estimate ± this many SEs."""
GRID_POINTS = 41


@dataclass(frozen=True)
class NormalLikelihood:
    """log L(θ) = −½((θ − estimate)/se)² (outcome units)."""

    estimate: float
    se: float
    kind: str = "normal"

    def log_lik(self, theta: np.ndarray) -> np.ndarray:
        return -0.5 * ((np.asarray(theta, dtype=float) - self.estimate) / self.se) ** 2

    @property
    def center(self) -> float:
        return self.estimate

    @property
    def scale(self) -> float:
        return self.se

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "estimate": self.estimate, "se": self.se}


@dataclass(frozen=True)
class GridLikelihood:
    """Log-likelihood ``values`` at increasing ``points`` (max 0), interpolated and linearly extended."""

    points: tuple[float, ...]
    values: tuple[float, ...]
    kind: str = "grid"

    def __post_init__(self) -> None:
        x, v = np.asarray(self.points, dtype=float), np.asarray(self.values, dtype=float)
        if x.ndim != 1 or x.shape != v.shape or len(x) < 3:
            raise InputError([(Location("likelihood grid"), f"needs ≥ 3 points and as many values; got {x.shape}, {v.shape}")])
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(v)) and np.all(np.diff(x) > 0)):
            raise InputError([(Location("likelihood grid"), "points must be finite and increasing, values finite")])
        if not (v[0] < v.max() and v[-1] < v.max()):
            raise InputError([(Location("likelihood grid"), "the maximum must lie inside the grid (widen the grid)")])

    def log_lik(self, theta: np.ndarray) -> np.ndarray:
        x, v = np.asarray(self.points), np.asarray(self.values)
        t = np.asarray(theta, dtype=float)
        out = np.interp(t, x, v)
        left, right = (v[1] - v[0]) / (x[1] - x[0]), (v[-1] - v[-2]) / (x[-1] - x[-2])
        out = np.where(t < x[0], v[0] + left * (t - x[0]), out)
        return np.where(t > x[-1], v[-1] + right * (t - x[-1]), out)

    @property
    def center(self) -> float:
        """The grid point of the maximum."""
        return float(self.points[int(np.argmax(self.values))])

    @property
    def scale(self) -> float:
        """An SE-like width: half the span where the log-likelihood is within ½ of its maximum."""
        x, v = np.asarray(self.points), np.asarray(self.values)
        fine = np.linspace(x[0], x[-1], 2001)
        inside = fine[self.log_lik(fine) >= v.max() - 0.5]
        return float(max(inside.max() - inside.min(), fine[1] - fine[0]) / 2)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "points": list(self.points), "values": list(self.values)}


Likelihood = NormalLikelihood | GridLikelihood


def likelihood_from_dict(d: dict[str, Any]) -> Likelihood:
    """Read back ``to_dict`` of either approximation (a bundle's ``likelihood`` entry)."""
    if d.get("kind") == "normal":
        return NormalLikelihood(float(d["estimate"]), float(d["se"]))
    if d.get("kind") == "grid":
        return GridLikelihood(tuple(float(x) for x in d["points"]), tuple(float(x) for x in d["values"]))
    raise InputError([(Location("likelihood"), f"unknown likelihood kind {d.get('kind')!r} (normal or grid)")])


def _log_ratio(z: np.ndarray) -> float:
    """log R for the mean of ``z`` being 0 (Owen 1988); −inf when 0 lies outside the data's range."""
    n = len(z)
    zmax, zmin = float(z.max()), float(z.min())
    if zmax <= 0 or zmin >= 0:
        return -math.inf
    eps = 1e-12
    lo, hi = -(1 - eps) / zmax, -(1 - eps) / zmin  # 1 + λ zᵢ > 0 for every i

    def g(lam: float) -> float:
        return float(np.sum(z / (1 + lam * z)))  # decreasing in λ

    if g(lo) <= 0 or g(hi) >= 0:
        raise NumericalError("empirical likelihood: no Lagrange multiplier solves the estimating equation")
    lam = optimize.brentq(g, lo, hi, xtol=1e-14, rtol=1e-14, maxiter=500)
    return -float(np.sum(np.log1p(lam * z))) if n else -math.inf


def empirical_likelihood_profile(pseudo_outcomes: np.ndarray, points: Sequence[float] | None = None) -> GridLikelihood:
    """Empirical-likelihood profile of the mean of ``pseudo_outcomes`` on a grid (see module docstring).

    Default grid: :data:`GRID_POINTS` points from the mean − :data:`GRID_HALF_WIDTH_SE` SEs to the mean +
    as many, cut to the inside of the pseudo-outcomes' range (where the ratio is defined), with the
    mean itself a grid point.
    """
    phi = np.asarray(pseudo_outcomes, dtype=float)
    phi = phi[np.isfinite(phi)]
    if len(phi) < 3:
        raise InputError([(Location("empirical likelihood"), f"{len(phi)} pseudo-outcomes; needs at least 3")])
    mean = float(phi.mean())
    se = float(phi.std(ddof=1) / math.sqrt(len(phi)))
    if points is None:  # within the data's range, where log R is finite
        lo = max(mean - GRID_HALF_WIDTH_SE * se, float(phi.min()) + 1e-3 * (mean - float(phi.min())))
        hi = min(mean + GRID_HALF_WIDTH_SE * se, float(phi.max()) - 1e-3 * (float(phi.max()) - mean))
        points = np.concatenate([np.linspace(lo, mean, GRID_POINTS // 2 + 1), np.linspace(mean, hi, GRID_POINTS // 2 + 1)[1:]])
    values = [_log_ratio(phi - t) for t in points]
    if not all(math.isfinite(v) for v in values):
        raise NumericalError("empirical likelihood: a grid point lies outside the pseudo-outcomes' range; narrow the grid")
    return GridLikelihood(tuple(float(p) for p in points), tuple(values))
