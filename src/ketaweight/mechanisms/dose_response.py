"""Dose-response curves for a continuous or count treatment: MSM and parametric g-formula.

The estimand is the mean counterfactual outcome curve a ↦ E[Y^a] over the analysed
population, for doses a in the range the data support (ketamine: cumulative mg/kg to the
horizon, number of sessions, sessions per week, course length in days; NHEFS: change in
cigarettes per day).

**Marginal structural model** (Robins, Hernán & Brumback 2000; Hernán & Robins 2020,
ch. 12.4, Program 12.4).  E[Y^a] = β0 + β1·a + β2·a² (``degree`` 2), optionally with a factor V
(e.g. route): E[Y^a | V] = β(V)·(1, a, a²).  It is fitted by weighted least squares with
stabilized generalized-propensity weights

    SW = f(A | V) / f(A | L, V),

where both densities are normal linear models (the denominator on the confounders L and V, the
numerator on V only; residual SD with n − p degrees of freedom, as R's ``glm``).  The
variance treats the weights as known (GEE robust, "sandwich"), as the book does; with a
censor column the weights are multiplied by stabilized inverse-probability-of-censoring weights.

**g-formula** (Robins 1986; Hernán & Robins 2020, ch. 13).  A linear outcome model
E[Y | A, L] = γ'·(poly(A), L) is averaged over the analysed rows at each dose on a grid:
ĉ(a) = n⁻¹ Σᵢ m(a, Lᵢ).  Its variance stacks the outcome-model score with the mean
(influence function g(a)'·IF_γ,i + m(a, Lᵢ) − ĉ(a)).

Both give a curve of points ``{exposure, estimate, se, ci_low, ci_high}`` ready to plot; the
grid spans the 5th–95th percentiles of the observed exposure (extrapolation beyond the data
is not reported).  The normal density model of the weights is an assumption: for count doses
(sessions) it is a working model, and the weight diagnostics (range, ESS) show when it fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from ketaweight.causal.design import build_design, numeric_by_value
from ketaweight.causal.diagnostics import WarningLog
from ketaweight.causal.diagnostics import weight_summary
from ketaweight.mechanisms.effects import z_value
from ketaweight.causal.glm import fit_linear, fit_logistic, linear_sandwich, solve_spd, weighted_gram
from ketaweight.causal.spec import OnFailure
from ketaweight.core.errors import InputError, Location, PositivityWarning
from ketaweight.core.protocol import Count, Real, Result
from ketaweight.core.summary import Summary

Method = Literal["msm", "g-formula"]
_Fit = tuple[dict[str, dict[str, float]], list["CurvePoint"], dict[str, Any], str]
"""(coefficients, curve points, diagnostics, variance in words) of one estimator."""


@dataclass(frozen=True, kw_only=True)
class DoseResponseSpec:
    """Column roles of a dose-response analysis.

    exposure:
        Numeric dose column (units of the column, e.g. mg/kg, sessions, sessions/week, days).
    outcome:
        Numeric outcome (e.g. weight change, kg).
    covariates, categorical, squared:
        Confounders of dose and outcome, as in :class:`~ketaweight.causal.spec.AnalysisSpec`.
    by:
        Optional factor (e.g. ``first_route``): one curve per level, and the numerator density
        conditions on it (Hernán & Robins 2020, Program 12.5).
    censor:
        Optional 0/1 column, 1 = outcome unobserved.
    degree:
        Polynomial degree of the dose in the MSM and the outcome model (2 = quadratic).
    """

    exposure: str
    outcome: str
    covariates: tuple[str, ...]
    categorical: tuple[str, ...] = ()
    squared: tuple[str, ...] = ()
    by: str | None = None
    censor: str | None = None
    degree: int = 2

    def __post_init__(self) -> None:
        for name in ("covariates", "categorical", "squared"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.degree not in (1, 2, 3):
            raise ValueError(f"degree must be 1, 2 or 3, got {self.degree!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for the results file."""
        return asdict(self)


@dataclass(frozen=True)
class CurvePoint(Result):
    """One point of a dose-response curve; ``by`` is the factor level (None without a factor)."""

    exposure: Real
    estimate: Real
    se: Real
    ci_low: Real
    ci_high: Real
    by: str | None = None


@dataclass(frozen=True)
class DoseResponseResult(Result):
    """A fitted dose-response curve.

    ``coefficients`` maps MSM term names to ``{estimate, se, ci_low, ci_high}`` (the g-formula
    reports its dose terms); ``curve`` the points; ``diagnostics`` weights, models, rows;
    ``warnings`` as in every result.
    """

    exposure: str
    outcome: str
    method: Method
    coefficients: dict[str, dict[str, Real]]
    curve: tuple[CurvePoint, ...]
    n: Count
    variance: str
    ci_level: float
    diagnostics: dict[str, Any] = field(repr=False)
    warnings: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def by(self) -> str | None:
        """The factor the curves are split by (None for one curve over all rows)."""
        return (self.settings.get("spec") or {}).get("by")

    def plot(self) -> Any:
        """The curve with its confidence band (one curve; with a factor, the points of every level), as a Figure."""
        from ketaweight.core import figures

        pts = self.curve
        return figures.curve_plot([p.exposure for p in pts], [p.estimate for p in pts], [p.ci_low for p in pts],
                                  [p.ci_high for p in pts], xlabel=self.exposure, ylabel=f"mean {self.outcome}",
                                  alt=f"Dose-response of {self.outcome} on {self.exposure} ({self.method})")

    def summary(self) -> Summary:
        rows = tuple((f"{p.exposure:.3g}", *((p.by,) if self.by else ()), f"{p.estimate:.3f}",
                      f"({p.ci_low:.3f}, {p.ci_high:.3f})") for p in self.curve)
        header = ("exposure", *(("level",) if self.by else ()), "estimate", f"{self.ci_level:.0%} CI")
        return Summary(f"Dose-response of {self.outcome} on {self.exposure} ({self.method})", header, rows,
                       (f"variance: {self.variance}", *self.warnings))


@dataclass(frozen=True)
class _Prepared:
    frame: pd.DataFrame
    a: np.ndarray
    y: np.ndarray
    observed: np.ndarray
    x: np.ndarray
    levels: tuple[str, ...]
    level_of_row: np.ndarray  # index into levels (0 without a factor)
    attrition: list[dict[str, Any]]


def _prepare(table: pd.DataFrame, spec: DoseResponseSpec) -> _Prepared:
    needed = [spec.exposure, spec.outcome, *spec.covariates, *([spec.by] if spec.by else []),
              *([spec.censor] if spec.censor else [])]
    missing = sorted({c for c in needed if c not in table.columns})
    if missing:
        raise InputError([(Location("table", column=c), "column not found; check the spelling") for c in missing])
    frame = table
    steps = [{"step": "input", "reason": "rows in the table", "n_before": len(frame), "n_excluded": 0, "n_after": len(frame)}]
    for cols, why in (([spec.exposure], "missing exposure"), (list(spec.covariates) + ([spec.by] if spec.by else []), "missing covariates")):
        bad = frame[cols].isna().any(axis=1)
        steps.append({"step": why, "reason": why, "n_before": len(frame), "n_excluded": int(bad.sum()), "n_after": int((~bad).sum())})
        frame = frame.loc[~bad]
    y = numeric_by_value(frame[spec.outcome], spec.outcome)
    censored = np.isnan(y)
    if spec.censor:
        censored |= numeric_by_value(frame[spec.censor].fillna(0), spec.censor) == 1
    if not spec.censor and censored.any():
        steps.append({"step": "missing outcome", "reason": f"'{spec.outcome}' missing (excluded)", "n_before": len(frame),
                      "n_excluded": int(censored.sum()), "n_after": int((~censored).sum())})
        frame, y, censored = frame.loc[~censored], y[~censored], censored[~censored]
    if len(frame) < 10:
        raise InputError([(Location("table", column=spec.exposure), f"only {len(frame)} analysable rows; a dose-response curve needs at least 10")])
    a = numeric_by_value(frame[spec.exposure], spec.exposure)
    x = build_design(frame, spec.covariates, categorical=spec.categorical, squared=spec.squared).matrix
    if spec.by:
        text = frame[spec.by].astype(object).map(str).to_numpy()
        levels = tuple(sorted(set(text)))
        level_of_row = np.searchsorted(np.array(levels), text)
    else:
        levels, level_of_row = ("",), np.zeros(len(frame), dtype=int)
    return _Prepared(frame, a, np.where(censored, np.nan, y), ~censored, x, levels, level_of_row, steps)


def _poly(a: np.ndarray, degree: int) -> np.ndarray:
    return np.column_stack([a**k for k in range(1, degree + 1)])


def _msm_design(a: np.ndarray, level_of_row: np.ndarray, n_levels: int, degree: int) -> np.ndarray:
    """Columns (1, a, a², …) for the reference level, then level indicators × (1, a, a², …)."""
    base = np.column_stack([np.ones_like(a), _poly(a, degree)])
    cols = [base]
    for lev in range(1, n_levels):
        cols.append(base * (level_of_row == lev)[:, None])
    return np.hstack(cols)


def _term_names(exposure: str, levels: tuple[str, ...], degree: int, by: str | None) -> list[str]:
    base = ["(intercept)"] + [exposure if k == 1 else f"{exposure}^{k}" for k in range(1, degree + 1)]
    names = list(base)
    for lev in levels[1:]:
        names += [f"{by}[{lev}]" if t == "(intercept)" else f"{by}[{lev}]:{t}" for t in base]
    return names


def _normal_density(a: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, float]:
    """Normal linear model density f(a | x) with R's residual SD (n − p degrees of freedom)."""
    fit = fit_linear(x, a)
    sigma = float(np.sqrt(np.sum(fit.residual**2) / max(len(a) - x.shape[1], 1)))
    return stats.norm.pdf(a, fit.fitted, sigma), sigma


def _grid(a: np.ndarray, points: int) -> np.ndarray:
    lo, hi = np.quantile(a, [0.05, 0.95])
    if np.all(a == np.round(a)) and hi - lo + 1 <= points:  # a count: its integer values
        return np.arange(np.ceil(lo), np.floor(hi) + 1)
    return np.linspace(lo, hi, points)


def _censoring_weights(p: _Prepared, log: WarningLog) -> np.ndarray:
    """Stabilized IPC weights P(R=1)/P(R=1 | A, L), zero for censored rows (ones without censoring)."""
    if p.observed.all():
        return np.ones(len(p.a))
    z = np.column_stack([p.x, (p.a - p.a.mean()) / (p.a.std() or 1.0)])
    fit = fit_logistic(z, p.observed.astype(float))
    if not fit.converged:
        log.warn(PositivityWarning, "the censoring model did not converge (threshold: relative deviance change < 1e-10)")
    return np.where(p.observed, p.observed.mean() / fit.fitted, 0.0)


@dataclass(frozen=True, kw_only=True)
class DoseResponse:
    """Dose-response curve estimator (see the module docstring for the maths).

    Settings: ``method`` (``"msm"`` or ``"g-formula"``), ``grid_points`` (curve points between
    the 5th and 95th dose percentiles; count doses use their integer values when fewer),
    ``grid`` (explicit doses instead, exposure units),
    ``ci_level``, ``extreme_weight`` (warn when max weight / mean weight exceeds it),
    ``on_failure`` (``"warn"`` or ``"raise"``).
    """

    method: Method = "msm"
    grid_points: int = 25
    grid: tuple[float, ...] | None = None
    ci_level: float = 0.95
    extreme_weight: float = 20.0
    on_failure: OnFailure = "warn"

    def fit(self, table: pd.DataFrame, spec: DoseResponseSpec) -> DoseResponseResult:
        """Estimate the curve on ``table``; returns a frozen :class:`DoseResponseResult`."""
        if self.method not in ("msm", "g-formula"):
            raise ValueError(f"method={self.method!r} must be 'msm' or 'g-formula'")
        if not 0 < self.ci_level < 1:
            raise ValueError(f"ci_level={self.ci_level!r} must be in (0, 1)")
        p = _prepare(table, spec)
        log = WarningLog(self.on_failure)
        grid = np.asarray(self.grid, dtype=float) if self.grid is not None else _grid(p.a[p.observed], self.grid_points)
        fitter = self._msm if self.method == "msm" else self._gformula
        coefficients, curve, diagnostics, variance = fitter(p, spec, grid, log)
        diagnostics["attrition"] = p.attrition
        diagnostics["n_observed_outcome"] = int(p.observed.sum())
        diagnostics["exposure_quantiles"] = dict(zip(("p05", "p25", "p50", "p75", "p95"),
                                                     np.quantile(p.a, [0.05, 0.25, 0.5, 0.75, 0.95]).tolist()))
        return DoseResponseResult(
            exposure=spec.exposure, outcome=spec.outcome, method=self.method, coefficients=coefficients,
            curve=tuple(curve), n=len(p.a), variance=variance, ci_level=self.ci_level, diagnostics=diagnostics,
            warnings=tuple(log.messages), settings={"estimator": asdict(self), "spec": spec.to_dict()},
        )

    def _points(self, grid: np.ndarray, levels: tuple[str, ...], by: str | None,
                est: np.ndarray, se: np.ndarray) -> list[CurvePoint]:
        z = z_value(self.ci_level)
        out = []
        for li, lev in enumerate(levels):
            for gi, a in enumerate(grid):
                e, s = float(est[li, gi]), float(se[li, gi])
                out.append(CurvePoint(float(a), e, s, e - z * s, e + z * s, lev if by else None))
        return out

    def _msm(self, p: _Prepared, spec: DoseResponseSpec, grid: np.ndarray, log: WarningLog) -> _Fit:
        obs = p.observed
        v = np.column_stack([np.ones(len(p.a))] + [(p.level_of_row == k).astype(float) for k in range(1, len(p.levels))])
        # the denominator conditions on the factor too (as sex is among L in Program 12.5)
        x_den = np.column_stack([p.x, v[:, 1:]])
        den, sigma_den = _normal_density(p.a, x_den)
        num, sigma_num = _normal_density(p.a, v)
        sw = num / den
        w = sw * _censoring_weights(p, log)
        wo = w[obs]
        summary = weight_summary(wo)
        if summary["max"] > self.extreme_weight * summary["mean"]:
            log.warn(PositivityWarning, f"max stabilized weight {summary['max']:.1f} exceeds {self.extreme_weight:g}× the mean "
                     f"{summary['mean']:.2f} (threshold {self.extreme_weight:g}×): the normal dose model may not fit; "
                     "check the dose distribution or use the g-formula")
        d = _msm_design(p.a[obs], p.level_of_row[obs], len(p.levels), spec.degree)
        fit = fit_linear(d, p.y[obs], sample_weight=wo)
        cov = linear_sandwich(fit, d, sample_weight=wo)
        se_coef = np.sqrt(np.diag(cov))
        z = z_value(self.ci_level)
        names = _term_names(spec.exposure, p.levels, spec.degree, spec.by)
        coefficients = {n: {"estimate": float(b), "se": float(s), "ci_low": float(b - z * s), "ci_high": float(b + z * s)}
                        for n, b, s in zip(names, fit.coef, se_coef)}
        est = np.empty((len(p.levels), len(grid)))
        se = np.empty_like(est)
        for li in range(len(p.levels)):
            g = _msm_design(grid, np.full(len(grid), li), len(p.levels), spec.degree)
            est[li] = g @ fit.coef
            se[li] = np.sqrt(np.einsum("ij,jk,ik->i", g, cov, g))
        diagnostics = {
            "weights": summary,
            "dose_models": {"denominator_sd": sigma_den, "numerator_sd": sigma_num,
                            "denominator_parameters": int(x_den.shape[1]), "numerator_parameters": int(v.shape[1])},
            "weights_used_by_estimator": True,
        }
        variance = ("robust (HC0) sandwich of the weighted least-squares MSM, weights treated as known "
                    "(GEE independence working correlation, as Hernán & Robins 2020 Program 12.4)")
        return coefficients, self._points(grid, p.levels, spec.by, est, se), diagnostics, variance

    def _gformula(self, p: _Prepared, spec: DoseResponseSpec, grid: np.ndarray, log: WarningLog) -> _Fit:
        obs = p.observed
        full = np.hstack([_msm_design(p.a, p.level_of_row, len(p.levels), spec.degree), p.x[:, 1:]])
        fit = fit_linear(full[obs], p.y[obs])
        bread = solve_spd(weighted_gram(full[obs], np.ones(int(obs.sum()))) / len(p.a), np.eye(full.shape[1]))
        score = np.zeros_like(full)
        score[obs] = full[obs] * fit.residual[:, None]
        if_gamma = score @ bread  # n × p influence functions of γ (zero rows for censored)
        n = len(p.a)
        est = np.empty((len(p.levels), len(grid)))
        se = np.empty_like(est)
        for li in range(len(p.levels)):
            rows = p.level_of_row == li if spec.by else np.ones(n, dtype=bool)
            for gi, a in enumerate(grid):
                d = np.hstack([_msm_design(np.full(n, a), p.level_of_row, len(p.levels), spec.degree), p.x[:, 1:]])
                pred = d @ fit.coef
                share = rows.mean()
                est[li, gi] = pred[rows].mean()
                gbar = d[rows].mean(axis=0)
                infl = if_gamma @ gbar + rows * (pred - est[li, gi]) / share
                se[li, gi] = np.sqrt(np.sum(infl**2)) / n
        k = 1 + spec.degree
        names = _term_names(spec.exposure, p.levels, spec.degree, spec.by)
        cov = if_gamma.T @ if_gamma / n**2
        z = z_value(self.ci_level)
        coefficients = {nm: {"estimate": float(fit.coef[j]), "se": float(np.sqrt(cov[j, j])),
                             "ci_low": float(fit.coef[j] - z * np.sqrt(cov[j, j])),
                             "ci_high": float(fit.coef[j] + z * np.sqrt(cov[j, j]))}
                        for j, nm in enumerate(names) if j % k != 0}
        diagnostics = {"outcome_model": {"columns": int(full.shape[1]), "n_fit": int(obs.sum())},
                       "weights_used_by_estimator": False}
        if not obs.all():
            diagnostics["note"] = "censored rows: predictions averaged over every analysed row (outcome model fitted on the observed)"
        variance = ("influence function of the standardized mean (stacked outcome-model score and mean; HC0), "
                    "normal interval per point")
        return coefficients, self._points(grid, p.levels, spec.by, est, se), diagnostics, variance


def dose_response_curves(table: pd.DataFrame, spec: DoseResponseSpec,
                         methods: Sequence[Method] = ("msm", "g-formula"), **settings: Any) -> list[DoseResponseResult]:
    """Both estimators side by side on the same rows."""
    return [DoseResponse(method=m, **settings).fit(table, spec) for m in methods]
