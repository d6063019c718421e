"""Empirical calibration with negative and positive controls (Schuemie et al. 2014, 2016, 2018).

An observational estimate bᵢ of a control whose true effect is θᵢ carries random error (its SE
sᵢ) and systematic error (confounding, selection, measurement) that no SE shows.  Negative
controls (θ = 0) give the **empirical null**: systematic error ~ N(μ, σ²), fitted by maximum
likelihood with each control's own SE, bᵢ ~ N(μ, σ² + sᵢ²) (``fitNull`` of OHDSI's
EmpiricalCalibration).  Positive controls (θ ≠ 0, e.g. injected signals) extend it to the
**systematic-error model** across effect sizes, bᵢ ~ N(a + b·θᵢ, (c + d·|θᵢ|)² + sᵢ²)
(``fitSystematicErrorModel``, non-legacy form).

* calibrated p-value of an estimate (b, s): 2·min(Φ((b − μ)/√(σ² + s²)), 1 − Φ(·)) (``calibrateP``);
* calibrated CI: the θ where (a + bθ − b̂)/√((c + d|θ|)² + s²) equals ∓z; the point estimate
  where it is 0 (``calibrateConfidenceInterval``); calibrated SE = CI width / (2z);
* expected absolute systematic error E|X|, X ~ N(μ, σ²) (EASE; Schuemie et al. 2021):
  σ·√(2/π)·exp(−μ²/2σ²) + μ·(1 − 2Φ(−μ/σ)) (``computeExpectedAbsoluteSystematicError``);
* leave-one-out: each control (with the positive controls injected into it, which are not
  independent of it) is calibrated by a model fitted without it; the share of calibrated CIs
  covering the truth and of calibrated p-values below α show whether calibration works
  (``plotCalibration``, ``plotCiCalibration``).

Works on any estimate and SE on a scale where systematic error is additive: mean differences
(kg, or controls converted to kg-equivalents) and log ratios.  Maximum likelihood is computed
exactly here rather than by a general-purpose optimiser as in the R package: the mean
parameters are profiled out in closed form (weighted least squares), leaving a 1-D search over
σ (a grid then bounded Brent) or a 2-D bounded search over the SD line.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize, stats

from ketaweight.core.protocol import Real, Result
from ketaweight.core.errors import InputError, KetaweightWarning, Location, NumericalError

MIN_CONTROLS = 10
"""Fewer usable negative controls than this give a warning: the null's spread is poorly determined
(OHDSI studies use 50-100)."""
IMPRECISION_RATIO = 2.0
"""A warning when the median SE of the negative controls exceeds this multiple of the SE of the
estimate being calibrated: systematic error at the precision of the estimate may go unseen."""
LOO_LEVELS = (0.5, 0.2, 0.1, 0.05)
"""Significance levels α at which leave-one-out coverage of the 1 − α CI and the type-I error are reported."""


class CalibrationWarning(KetaweightWarning):
    """Calibration rests on too few or too imprecise controls, or a calibrated interval is unbounded."""


def _warn(message: str, log: list[str]) -> None:
    log.append(message)
    warnings.warn(message, CalibrationWarning, stacklevel=3)


# ---- controls -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Controls:
    """Control estimates on the calibration scale.  ``group`` names the negative control each row is
    (θ = 0) or was injected into (θ ≠ 0); rows of one group are left out together."""

    names: tuple[str, ...]
    groups: tuple[str, ...]
    true_effects: np.ndarray
    estimates: np.ndarray
    ses: np.ndarray

    @classmethod
    def of(cls, names: Sequence[str], true_effects: Sequence[float], estimates: Sequence[float],
           ses: Sequence[float], groups: Sequence[str] | None = None) -> Controls:
        t, b, s = (np.asarray(x, dtype=float) for x in (true_effects, estimates, ses))
        if not (len(names) == len(t) == len(b) == len(s)):
            raise InputError([(Location("controls"), f"names ({len(names)}), true effects ({len(t)}), estimates "
                                                     f"({len(b)}) and standard errors ({len(s)}) differ in length")])
        bad = [n for n, x in zip(names, t) if not math.isfinite(x)]
        if bad:
            raise InputError([(Location("controls", column=n), "true effect is not a finite number") for n in bad])
        return cls(tuple(names), tuple(groups) if groups is not None else tuple(names), t, b, s)

    @property
    def usable(self) -> np.ndarray:
        """Rows with a finite estimate and a finite, positive SE."""
        return np.isfinite(self.estimates) & np.isfinite(self.ses) & (self.ses > 0)

    @property
    def negative(self) -> np.ndarray:
        return self.true_effects == 0

    def subset(self, keep: np.ndarray) -> Controls:
        idx = np.flatnonzero(keep)
        return Controls(tuple(self.names[i] for i in idx), tuple(self.groups[i] for i in idx),
                        self.true_effects[idx], self.estimates[idx], self.ses[idx])


# ---- the empirical null -------------------------------------------------------------------


def _profile_mean(b: np.ndarray, s2: np.ndarray, sigma: float) -> tuple[float, float]:
    """(μ̂(σ), log-likelihood) with μ profiled out."""
    v = sigma**2 + s2
    w = 1.0 / v
    mu = float(np.sum(w * b) / np.sum(w))
    ll = -0.5 * float(np.sum(np.log(2 * math.pi * v) + (b - mu) ** 2 / v))
    return mu, ll


def expected_absolute_systematic_error(mean: float, sd: float) -> float:
    """E|X| for X ~ N(mean, sd²) (the folded-normal mean), in the estimate's units."""
    if sd == 0:
        return abs(mean)
    return float(sd * math.sqrt(2 / math.pi) * math.exp(-mean**2 / (2 * sd**2))
                 + mean * (1 - 2 * stats.norm.cdf(-mean / sd)))


@dataclass(frozen=True)
class EmpiricalNull(Result):
    """Systematic error ~ N(mean, sd²) (estimate units), from ``n_controls`` negative controls."""

    mean: Real
    sd: Real
    mean_se: Real
    n_controls: int
    log_likelihood: Real

    @property
    def ease(self) -> float:
        """Expected absolute systematic error (estimate units)."""
        return expected_absolute_systematic_error(self.mean, self.sd)

    def p_value(self, estimate: float, se: float, *, two_sided: bool = True) -> float:
        """Calibrated p-value of H0 'no effect' (``calibrateP``); one-sided: P(effect ≤ 0 looks this large)."""
        d = math.sqrt(self.sd**2 + se**2)
        upper = float(stats.norm.cdf((self.mean - estimate) / d))
        lower = float(stats.norm.cdf((estimate - self.mean) / d))
        return 2 * min(upper, lower) if two_sided else upper


def fit_null(estimates: Sequence[float], ses: Sequence[float]) -> EmpiricalNull:
    """Maximum-likelihood empirical null from negative-control estimates and SEs (``fitNull``).

    Raises :class:`InputError` with fewer than two controls with a finite estimate and SE.
    """
    b, s = np.asarray(estimates, dtype=float), np.asarray(ses, dtype=float)
    ok = np.isfinite(b) & np.isfinite(s) & (s > 0)
    b, s = b[ok], s[ok]
    if len(b) < 2:
        raise InputError([(Location("negative controls"), f"{len(b)} negative control(s) with a finite estimate and "
                                                          "SE; fitting a null needs at least 2")])
    s2 = s**2
    scale = max(float(np.std(b)), float(np.median(s)), 1e-12)
    grid = np.concatenate([[0.0], np.geomspace(scale * 1e-4, scale * 20, 300)])
    v = grid[:, None] ** 2 + s2[None, :]  # every σ of the grid at once
    mus = np.sum(b / v, axis=1) / np.sum(1.0 / v, axis=1)
    lls = -0.5 * np.sum(np.log(2 * math.pi * v) + (b[None, :] - mus[:, None]) ** 2 / v, axis=1)
    i = int(np.argmax(lls))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    if hi > lo:
        res = optimize.minimize_scalar(lambda g: -_profile_mean(b, s2, g)[1], bounds=(lo, hi), method="bounded",
                                       options={"xatol": scale * 1e-9})
        sigma = float(res.x) if -res.fun >= lls[i] else float(grid[i])
    else:
        sigma = float(grid[i])
    if i == len(grid) - 1:
        raise NumericalError(f"the empirical null's SD ran to the edge of its search ({sigma:.4g}); the negative "
                             "controls disagree far beyond their SEs")
    mu, ll = _profile_mean(b, s2, sigma)
    return EmpiricalNull(mu, sigma, math.sqrt(1.0 / float(np.sum(1.0 / (sigma**2 + s2)))), int(len(b)), ll)


# ---- the systematic-error model ------------------------------------------------------------


@dataclass(frozen=True)
class SystematicErrorModel(Result):
    """Error ~ N(mean_intercept + mean_slope·θ, (sd_intercept + sd_slope·|θ|)²) for true effect θ.

    ``source`` says whether it was fitted to negative and positive controls, or converted from
    the empirical null under the assumption that the error does not change with θ.
    """

    mean_intercept: Real
    mean_slope: Real
    sd_intercept: Real
    sd_slope: Real
    n_controls: int
    log_likelihood: Real | None
    source: str

    def mean(self, theta: np.ndarray | float) -> np.ndarray | float:
        return self.mean_intercept + self.mean_slope * theta

    def sd(self, theta: np.ndarray | float) -> np.ndarray | float:
        return self.sd_intercept + self.sd_slope * np.abs(theta)

    def calibrate(self, estimate: float, se: float, level: float = 0.95) -> tuple[float, float, float] | None:
        """(calibrated estimate, CI low, CI high), or None when the calibrated interval is unbounded
        (the error grows with θ faster than the estimate can tell θ apart)."""
        z = float(stats.norm.ppf(0.5 + level / 2))

        def f(theta: float, target: float) -> float:
            return (float(self.mean(theta)) - estimate) / math.sqrt(float(self.sd(theta)) ** 2 + se**2) - target

        span = 10.0 * (abs(estimate) + se + abs(self.mean_intercept) + self.sd_intercept) + 1e-9
        out = []
        for target in (0.0, -z, z):
            lo, hi = estimate - span, estimate + span
            for _ in range(60):
                if f(lo, target) < 0 < f(hi, target):
                    break
                lo, hi = lo - (hi - lo), hi + (hi - lo)
            else:
                return None
            out.append(float(optimize.brentq(f, lo, hi, args=(target,), xtol=1e-12 * span, rtol=1e-12)))
        return out[0], out[1], out[2]


def null_to_error_model(null: EmpiricalNull, *, mean_slope: float = 1.0, sd_slope: float = 0.0) -> SystematicErrorModel:
    """The null as an error model that assumes the same error at every effect size (``convertNullToErrorModel``)."""
    return SystematicErrorModel(null.mean, mean_slope, null.sd, sd_slope, null.n_controls, null.log_likelihood,
                                "empirical null (negative controls), assuming the error does not change with the effect size")


def _error_model_ll(b: np.ndarray, s2: np.ndarray, t: np.ndarray, sd: np.ndarray) -> tuple[float, float, float, np.ndarray]:
    """(a, b, log-likelihood, ∂ log-likelihood/∂sdᵢ) with the mean line profiled out by weighted least
    squares (the envelope theorem gives the gradient at the profiled mean)."""
    v = sd**2 + s2
    w = 1.0 / v
    x = np.column_stack([np.ones_like(t), t])
    coef = np.linalg.solve(x.T @ (w[:, None] * x), x.T @ (w * b))
    r = b - x @ coef
    grad = sd * (r**2 * w - 1.0) * w
    return float(coef[0]), float(coef[1]), -0.5 * float(np.sum(np.log(2 * math.pi * v) + r**2 / v)), grad


def fit_error_model(estimates: Sequence[float], ses: Sequence[float], true_effects: Sequence[float], *,
                    start: SystematicErrorModel | None = None) -> SystematicErrorModel:
    """Maximum-likelihood systematic-error model from negative and positive controls (``fitSystematicErrorModel``).

    Needs at least two distinct true effects; the SD line is kept non-negative over the range of
    |θ| seen, parameterised by its values at 0 and at max |θ|.  Several starts, or only ``start``
    (a model fitted to nearly the same controls, as leave-one-out refits are) plus one.
    """
    b, s, t = (np.asarray(x, dtype=float) for x in (estimates, ses, true_effects))
    ok = np.isfinite(b) & np.isfinite(s) & (s > 0)
    b, s, t = b[ok], s[ok], t[ok]
    if len(np.unique(t)) < 2 or len(b) < 4:
        raise InputError([(Location("controls"), "an error model across effect sizes needs controls at two or more true "
                                                 f"effects and at least 4 in all; got {len(b)} at {len(np.unique(t))}")])
    s2 = s**2
    tmax = float(np.max(np.abs(t)))
    scale = max(float(np.std(b - t)), float(np.median(s)), 1e-12)

    share = np.abs(t) / tmax  # sdᵢ = s0·(1 − shareᵢ) + s1·shareᵢ

    def neg(p: np.ndarray) -> tuple[float, np.ndarray]:
        _, _, ll, grad = _error_model_ll(b, s2, t, p[0] + (p[1] - p[0]) * share)
        return -ll, -np.array([np.sum(grad * (1 - share)), np.sum(grad * share)])

    if start is not None:
        s0 = start.sd_intercept
        starts = [np.array([s0, s0 + start.sd_slope * tmax]).clip(0), np.array([1.0, 1.0]) * scale]
    else:
        starts = [np.array(x) * scale for x in ((0.1, 0.1), (1.0, 1.0), (0.1, 2.0), (2.0, 0.1))]
    best = None
    for x0 in starts:
        res = optimize.minimize(neg, x0, jac=True, method="L-BFGS-B", bounds=[(0, None), (0, None)],
                                options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 500})
        if best is None or res.fun < best.fun:
            best = res
    assert best is not None
    if not np.isfinite(best.fun):
        raise NumericalError("the systematic-error model's likelihood is not finite at any start")
    s0, s1 = (float(x) for x in best.x)
    slope = (s1 - s0) / tmax
    a, m, ll, _ = _error_model_ll(b, s2, t, s0 + slope * np.abs(t))
    return SystematicErrorModel(a, m, s0, slope, int(len(b)), ll, "negative and positive controls")


# ---- leave-one-out and the high-level calibration ------------------------------------------


@dataclass(frozen=True)
class LeaveOneOut(Result):
    """Each control calibrated by a model fitted without its group: rows (with the calibrated estimate
    and SE at the 95% level) and coverage summaries.

    ``coverage[level]`` is, per true effect, the share of (uncalibrated, calibrated) CIs at that
    level covering the truth; ``type_i[level]`` the share of negative controls with an
    (uncalibrated, calibrated) p-value below 1 − level.
    """

    rows: list[dict[str, Any]]
    coverage: dict[str, dict[str, dict[str, Real]]]
    type_i: dict[str, dict[str, Real]]


def _model_for(controls: Controls, start: SystematicErrorModel | None = None) -> SystematicErrorModel:
    if len(np.unique(controls.true_effects)) >= 2 and (~controls.negative).sum() >= 2:
        return fit_error_model(controls.estimates, controls.ses, controls.true_effects,
                               start=start if start is not None and start.log_likelihood is not None and
                               start.source.startswith("negative and positive") else None)
    neg = controls.negative
    return null_to_error_model(fit_null(controls.estimates[neg], controls.ses[neg]))


def leave_one_out(controls: Controls, *, levels: Sequence[float] = tuple(1 - a for a in LOO_LEVELS)) -> LeaveOneOut:
    """Leave-one-group-out calibration of every usable control (see :class:`LeaveOneOut`)."""
    c = controls.subset(controls.usable)
    groups = list(dict.fromkeys(c.groups))
    rows: list[dict[str, Any]] = []
    full = _model_for(c)
    for g in groups:
        out = np.array([x == g for x in c.groups])
        train = c.subset(~out)
        if train.negative.sum() < 2:
            continue
        model = _model_for(train, start=full)
        null = fit_null(train.estimates[train.negative], train.ses[train.negative])
        for i in np.flatnonzero(out):
            b, s, t = float(c.estimates[i]), float(c.ses[i]), float(c.true_effects[i])
            row: dict[str, Any] = {"name": c.names[i], "group": g, "true_effect": t, "estimate": b, "se": s,
                                   "p": float(2 * stats.norm.sf(abs(b / s))), "calibrated_p": null.p_value(b, s)}
            for level in levels:
                z = float(stats.norm.ppf(0.5 + level / 2))
                cal = model.calibrate(b, s, level)
                row[f"ci_{level:g}"] = (b - z * s, b + z * s)
                row[f"calibrated_ci_{level:g}"] = None if cal is None else (cal[1], cal[2])
                if level == 0.95:  # the calibrated control itself, as an estimate and SE (pooled by the network)
                    row["calibrated_estimate"] = None if cal is None else cal[0]
                    row["calibrated_se"] = None if cal is None else (cal[2] - cal[1]) / (2 * z)
            rows.append(row)
    coverage: dict[str, dict[str, dict[str, float]]] = {}
    type_i: dict[str, dict[str, float]] = {}
    for level in levels:
        key = f"{level:g}"
        by_effect: dict[str, dict[str, float]] = {}
        for t in sorted({r["true_effect"] for r in rows}):
            sel = [r for r in rows if r["true_effect"] == t]
            un = np.mean([r[f"ci_{key}"][0] <= t <= r[f"ci_{key}"][1] for r in sel])
            cal = np.mean([r[f"calibrated_ci_{key}"] is not None
                           and r[f"calibrated_ci_{key}"][0] <= t <= r[f"calibrated_ci_{key}"][1] for r in sel])
            by_effect[f"{t:g}"] = {"uncalibrated": float(un), "calibrated": float(cal), "n": len(sel)}
        coverage[key] = by_effect
        neg = [r for r in rows if r["true_effect"] == 0]
        if neg:
            type_i[key] = {"uncalibrated": float(np.mean([r["p"] < 1 - level for r in neg])),
                           "calibrated": float(np.mean([r["calibrated_p"] < 1 - level for r in neg])), "n": len(neg)}
    return LeaveOneOut(rows, coverage, type_i)


@dataclass(frozen=True)
class CalibratedEstimate(Result):
    """One estimate before and after calibration, with the null, the error model and their checks.

    Units are the estimate's.  ``calibrated_*`` are None when calibration was impossible or the
    interval unbounded; ``warnings`` says why and what else is shaky.
    """

    estimate: Real
    se: Real
    ci_low: Real
    ci_high: Real
    p: Real
    ci_level: Real
    null: EmpiricalNull
    model: SystematicErrorModel
    calibrated_estimate: Real | None
    calibrated_ci_low: Real | None
    calibrated_ci_high: Real | None
    calibrated_se: Real | None
    calibrated_p: Real
    n_negative: int
    n_positive: int
    warnings: tuple[str, ...] = ()
    loo: LeaveOneOut | None = field(default=None, repr=False)

    @property
    def ease(self) -> float:
        """Expected absolute systematic error of the null (estimate units)."""
        return self.null.ease


def calibrate(
    estimate: float,
    se: float,
    controls: Controls,
    *,
    ci_level: float = 0.95,
    min_controls: int = MIN_CONTROLS,
    with_leave_one_out: bool = True,
) -> CalibratedEstimate:
    """Calibrate one estimate (``estimate``, ``se``) with ``controls`` (see module docstring).

    The error model uses positive controls when there are at least two with a finite estimate,
    else the null with the assumption that the error does not change with the effect size (said in
    ``model.source``).  Raises :class:`InputError` when fewer than two negative controls are usable.
    """
    log: list[str] = []
    if not (math.isfinite(estimate) and math.isfinite(se) and se > 0):
        raise InputError([(Location("calibration"), f"the estimate to calibrate is {estimate} with SE {se}; "
                                                    "both must be finite and the SE > 0")])
    dropped = [n for n, ok in zip(controls.names, controls.usable) if not ok]
    if dropped:
        _warn(f"{len(dropped)} control(s) without a finite estimate and SE left out: {', '.join(dropped[:10])}"
              + (" …" if len(dropped) > 10 else ""), log)
    c = controls.subset(controls.usable)
    neg = c.negative
    if neg.sum() < min_controls:
        _warn(f"only {int(neg.sum())} usable negative controls (fewer than {min_controls}): the empirical null's "
              "spread is poorly determined", log)
    null = fit_null(c.estimates[neg], c.ses[neg])
    median_se = float(np.median(c.ses[neg]))
    if median_se > IMPRECISION_RATIO * se:
        _warn(f"the negative controls are imprecise: median SE {median_se:.3g} is more than {IMPRECISION_RATIO:g}× the "
              f"estimate's SE {se:.3g}, so systematic error smaller than about {median_se:.2g} may go unseen", log)
    model = _model_for(c)
    cal = model.calibrate(estimate, se, ci_level)
    if cal is None and model.source.startswith("negative and positive"):
        _warn("the calibrated interval from the error model across effect sizes is unbounded (its SD grows with the "
              "effect faster than its mean); falling back to the empirical null, assuming the error does not change "
              "with the effect size", log)
        model = null_to_error_model(null)
        cal = model.calibrate(estimate, se, ci_level)
    if cal is None:
        _warn("the calibrated interval is unbounded", log)
    z = float(stats.norm.ppf(0.5 + ci_level / 2))
    return CalibratedEstimate(
        estimate=estimate, se=se, ci_low=estimate - z * se, ci_high=estimate + z * se,
        p=float(2 * stats.norm.sf(abs(estimate / se))), ci_level=ci_level, null=null, model=model,
        calibrated_estimate=None if cal is None else cal[0], calibrated_ci_low=None if cal is None else cal[1],
        calibrated_ci_high=None if cal is None else cal[2],
        calibrated_se=None if cal is None else (cal[2] - cal[1]) / (2 * z),
        calibrated_p=null.p_value(estimate, se), n_negative=int(neg.sum()), n_positive=int((~neg).sum()),
        warnings=tuple(log), loo=leave_one_out(c) if with_leave_one_out else None,
    )
