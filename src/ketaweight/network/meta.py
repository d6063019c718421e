"""Fixed-effect and random-effects meta-analysis of per-site estimates (inverse-variance).

With site estimates yᵢ (outcome units, e.g. kg, or a log ratio) and their sampling variances
vᵢ = seᵢ², the random-effects model is yᵢ = μ + uᵢ + εᵢ, uᵢ ~ N(0, τ²), εᵢ ~ N(0, vᵢ);
weights wᵢ = 1/(vᵢ + τ²), μ̂ = Σwᵢyᵢ/Σwᵢ, SE(μ̂) = (Σwᵢ)^(-1/2).  τ² by

* ``fixed``  — τ² = 0 (one common effect);
* ``dl``     — DerSimonian & Laird (1986) moment estimator, truncated at 0;
* ``reml``   — restricted maximum likelihood (Fisher scoring as in metafor; Viechtbauer 2005);
* ``pm``     — Paule & Mandel (1982): the generalised Q equals k − 1.

Cochran's Q = Σ(yᵢ − μ̂_FE)²/vᵢ with k − 1 df; I² and H² as metafor reports them (Higgins &
Thompson 2002): for random-effects fits I² = τ²/(τ² + s²) with the typical within-site
variance s² = (k − 1)Σwᵢ/((Σwᵢ)² − Σwᵢ²), wᵢ = 1/vᵢ; for the fixed-effect fit I² = (Q − df)/Q.
τ²'s confidence interval is the Q-profile interval (Viechtbauer 2007).  Hartung & Knapp (2001)
replace SE(μ̂)² by Σwᵢ(yᵢ − μ̂)²/((k − 1)Σwᵢ) and z by t with k − 1 df.  The prediction
interval for a new site's effect is μ̂ ± c·√(τ² + SE²) with c from t on k − 2 df (Higgins,
Thompson & Spiegelhalter 2009; Riley et al. 2011) or, as metafor's default, the normal.

Written here rather than taken from statsmodels: statsmodels'
``combine_effects`` has no REML, no τ² interval and no prediction interval, and its DL τ² is not
truncated at 0; the tests check that both agree wherever they compute the same thing, and
reproduce metafor's printed results on the BCG vaccine trials.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import optimize, stats

from ketaweight.core.protocol import Real, Result
from ketaweight.core.errors import InputError, Location, NumericalError

Method = Literal["fixed", "dl", "reml", "pm"]
METHODS: dict[str, str] = {
    "fixed": "fixed effect (inverse variance)",
    "dl": "random effects, DerSimonian–Laird τ²",
    "reml": "random effects, REML τ²",
    "pm": "random effects, Paule–Mandel τ²",
}
PredictionDistribution = Literal["t", "normal"]

REML_TOLERANCE = 1e-10
"""Fisher scoring stops when the change of τ² is below this (outcome units²), as metafor's default threshold."""
REML_MAX_STEPS = 200


@dataclass(frozen=True)
class MetaAnalysis(Result):
    """One pooled estimate and its heterogeneity statistics (see module docstring; units of the inputs)."""

    method: str
    k: int
    estimate: Real
    se: Real
    ci_low: Real
    ci_high: Real
    ci_level: Real
    statistic: Real
    p_value: Real
    df: int | None  # t degrees of freedom (Hartung–Knapp), None for z
    hartung_knapp: bool
    tau2: Real
    tau2_se: Real | None
    tau2_ci: tuple[Real, Real] | None
    q: Real
    q_df: int
    q_p: Real | None
    i2: Real  # percent
    h2: Real
    prediction_low: Real | None
    prediction_high: Real | None
    prediction_distribution: str
    weights: tuple[Real, ...]  # percent, in input order
    labels: tuple[str, ...]
    variance: str

    @property
    def tau(self) -> float:
        """Between-site standard deviation of the effect (outcome units)."""
        return math.sqrt(self.tau2)


    def summary_line(self, unit: str = "", digits: int = 4) -> str:
        """One line: estimate (CI), τ², I², Q."""
        u = f" {unit}" if unit else ""
        f = f".{digits}f"
        pi = (f"; prediction ({self.prediction_low:{f}}, {self.prediction_high:{f}})"
              if self.prediction_low is not None and self.prediction_high is not None else "")
        return (f"{METHODS[self.method]}{' + Hartung–Knapp' if self.hartung_knapp else ''}: "
                f"{self.estimate:{f}}{u} ({self.ci_low:{f}}, {self.ci_high:{f}}); τ² {self.tau2:{f}}, "
                f"I² {self.i2:.1f}%, Q {self.q:.2f} (df {self.q_df}){pi}")


def _checked(estimates: Sequence[float], ses: Sequence[float], labels: Sequence[str] | None) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    y = np.asarray(estimates, dtype=float)
    se = np.asarray(ses, dtype=float)
    names = tuple(labels) if labels is not None else tuple(f"site {i + 1}" for i in range(len(y)))
    problems: list[tuple[Location, str]] = []
    if y.ndim != 1 or se.shape != y.shape or len(names) != len(y):
        raise InputError([(Location("meta-analysis"), f"estimates ({y.shape}), standard errors ({se.shape}) and "
                                                      f"labels ({len(names)}) must be 1-D and of equal length")])
    if len(y) == 0:
        raise InputError([(Location("meta-analysis"), "no estimates to pool")])
    for i, name in enumerate(names):
        if not math.isfinite(y[i]):
            problems.append((Location("meta-analysis", column=name), f"estimate is {y[i]}, not a finite number"))
        if not (math.isfinite(se[i]) and se[i] > 0):
            problems.append((Location("meta-analysis", column=name), f"standard error is {se[i]}; it must be finite and > 0"))
    if problems:
        raise InputError(problems)
    return y, se, names


def cochran_q(y: np.ndarray, v: np.ndarray) -> float:
    """Cochran's Q about the fixed-effect mean."""
    w = 1.0 / v
    mu = float(np.sum(w * y) / np.sum(w))
    return float(np.sum(w * (y - mu) ** 2))


def generalised_q(y: np.ndarray, v: np.ndarray, tau2: float) -> float:
    """Σ wᵢ(yᵢ − μ̂(τ²))² with wᵢ = 1/(vᵢ + τ²): decreasing in τ², Q at τ² = 0."""
    w = 1.0 / (v + tau2)
    mu = float(np.sum(w * y) / np.sum(w))
    return float(np.sum(w * (y - mu) ** 2))


def tau2_dl(y: np.ndarray, v: np.ndarray) -> float:
    """DerSimonian–Laird τ², truncated at 0."""
    k = len(y)
    if k < 2:
        return 0.0
    w = 1.0 / v
    c = float(np.sum(w) - np.sum(w**2) / np.sum(w))
    return max(0.0, (cochran_q(y, v) - (k - 1)) / c)


def _reml_score_info(y: np.ndarray, v: np.ndarray, tau2: float) -> tuple[float, float]:
    """Score and Fisher information of the restricted log-likelihood in τ²."""
    w = 1.0 / (v + tau2)
    sw = w.sum()
    mu = float(np.sum(w * y) / sw)
    sw2 = float(np.sum(w**2))
    score = 0.5 * (float(np.sum(w**2 * (y - mu) ** 2)) - sw + sw2 / sw)
    info = 0.5 * (sw2 - 2.0 * float(np.sum(w**3)) / sw + (sw2 / sw) ** 2)
    return score, info


def tau2_reml(y: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    """REML τ² by Fisher scoring from the DL value with step halving at the 0 boundary
    (metafor's algorithm), and its SE from the Fisher information.  Raises NumericalError
    when scoring does not converge."""
    if len(y) < 2:
        return 0.0, float("nan")
    tau2 = tau2_dl(y, v)
    for _ in range(REML_MAX_STEPS):
        score, info = _reml_score_info(y, v, tau2)
        step = score / info
        new = tau2 + step
        while new < 0:  # step halving keeps τ² ≥ 0
            step /= 2.0
            new = tau2 + step
            if abs(step) < REML_TOLERANCE:
                new = 0.0
                break
        if abs(new - tau2) < REML_TOLERANCE:
            tau2 = new
            break
        tau2 = new
    else:
        raise NumericalError(f"REML estimation of τ² did not converge in {REML_MAX_STEPS} Fisher scoring steps "
                             f"(last τ² {tau2:.6g}); use method 'dl' or 'pm'")
    _, info = _reml_score_info(y, v, tau2)
    return tau2, math.sqrt(1.0 / info)


def _tau2_solving(y: np.ndarray, v: np.ndarray, target: float) -> float:
    """τ² ≥ 0 where the generalised Q equals ``target`` (0 when Q(0) ≤ target)."""
    if generalised_q(y, v, 0.0) <= target:
        return 0.0
    hi = max(1e-12, float(np.var(y)) + float(np.max(v)))
    while generalised_q(y, v, hi) > target:
        hi *= 4.0
        if hi > 1e300:
            raise NumericalError(f"no τ² makes the generalised Q equal {target:.4g}")
    return float(optimize.brentq(lambda t: generalised_q(y, v, t) - target, 0.0, hi, xtol=1e-14, rtol=1e-14))


def tau2_pm(y: np.ndarray, v: np.ndarray) -> float:
    """Paule–Mandel τ²: the generalised Q equals k − 1."""
    return 0.0 if len(y) < 2 else _tau2_solving(y, v, len(y) - 1.0)


def tau2_q_profile(y: np.ndarray, v: np.ndarray, level: float) -> tuple[float, float] | None:
    """Q-profile confidence interval of τ² (Viechtbauer 2007); None with fewer than two sites."""
    k = len(y)
    if k < 2:
        return None
    alpha = 1.0 - level
    lo = _tau2_solving(y, v, float(stats.chi2.ppf(1.0 - alpha / 2.0, k - 1)))
    hi = _tau2_solving(y, v, float(stats.chi2.ppf(alpha / 2.0, k - 1)))
    return lo, hi


def meta_analyze(
    estimates: Sequence[float],
    ses: Sequence[float],
    *,
    method: Method = "reml",
    hartung_knapp: bool = False,
    hartung_knapp_floor: bool = False,
    ci_level: float = 0.95,
    prediction: PredictionDistribution = "t",
    labels: Sequence[str] | None = None,
) -> MetaAnalysis:
    """Pool per-site ``estimates`` with standard errors ``ses`` (see module docstring).

    ``hartung_knapp_floor`` keeps the Hartung–Knapp variance from falling below the inverse-variance
    one (the ad hoc q = max(1, q) of Knapp & Hartung 2003; Röver, Knapp & Friede 2015), which matters
    with few, homogeneous sites.  ``prediction``: ``"t"`` (k − 2 df; needs k ≥ 3) or ``"normal"`` (metafor's default) for the
    prediction interval; with ``method="fixed"`` there is none.  Raises :class:`InputError`
    naming every non-finite estimate or non-positive SE.
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r}; choose one of {', '.join(METHODS)}")
    if prediction not in ("t", "normal"):
        raise ValueError(f"prediction={prediction!r}; choose 't' or 'normal'")
    if not 0 < ci_level < 1:
        raise ValueError(f"ci_level={ci_level!r} must be in (0, 1)")
    y, se, names = _checked(estimates, ses, labels)
    v = se**2
    k = len(y)
    tau2_se = None
    if method == "fixed":
        tau2 = 0.0
    elif method == "dl":
        tau2 = tau2_dl(y, v)
    elif method == "pm":
        tau2 = tau2_pm(y, v)
    else:
        tau2, s = tau2_reml(y, v)
        tau2_se = s if math.isfinite(s) else None
    w = 1.0 / (v + tau2)
    mu = float(np.sum(w * y) / np.sum(w))
    var = 1.0 / float(np.sum(w))
    alpha = 1.0 - ci_level
    df: int | None = None
    if hartung_knapp and k >= 2:
        q_hk = float(np.sum(w * (y - mu) ** 2)) / (k - 1)
        var = (max(1.0, q_hk) if hartung_knapp_floor else q_hk) / float(np.sum(w))
        df = k - 1
    se_mu = math.sqrt(var)
    crit = float(stats.t.ppf(1 - alpha / 2, df)) if df else float(stats.norm.ppf(1 - alpha / 2))
    statistic = mu / se_mu if se_mu > 0 else math.copysign(math.inf, mu)
    p = float(2 * (stats.t.sf(abs(statistic), df) if df else stats.norm.sf(abs(statistic))))
    q = cochran_q(y, v) if k >= 2 else 0.0
    q_p = float(stats.chi2.sf(q, k - 1)) if k >= 2 else None
    if method == "fixed":
        i2 = 100.0 * max(0.0, (q - (k - 1)) / q) if k >= 2 and q > 0 else 0.0
        h2 = q / (k - 1) if k >= 2 else 1.0
    else:
        w_fe = 1.0 / v
        s2 = (k - 1) * float(np.sum(w_fe)) / (float(np.sum(w_fe)) ** 2 - float(np.sum(w_fe**2))) if k >= 2 else float(v[0])
        i2 = 100.0 * tau2 / (tau2 + s2)
        h2 = (tau2 + s2) / s2
    pi_low = pi_high = None
    if method != "fixed":
        if prediction == "normal":
            c = float(stats.norm.ppf(1 - alpha / 2))
        elif k >= 3:
            c = float(stats.t.ppf(1 - alpha / 2, k - 2))
        else:
            c = float("nan")
        if math.isfinite(c):
            half = c * math.sqrt(tau2 + se_mu**2)
            pi_low, pi_high = mu - half, mu + half
    hk_words = f"by Hartung–Knapp{' (floored at the inverse-variance SE)' if hartung_knapp_floor else ''} (t, {df} df)"
    words = (f"{METHODS[method]}; SE {hk_words if df else 'from the inverse-variance weights (z)'}"
             + (f"; prediction interval on t with {k - 2} df" if prediction == "t" and pi_low is not None
                else "; prediction interval on the normal" if pi_low is not None else ""))
    return MetaAnalysis(
        method=method, k=k, estimate=mu, se=se_mu, ci_low=mu - crit * se_mu, ci_high=mu + crit * se_mu,
        ci_level=ci_level, statistic=statistic, p_value=p, df=df, hartung_knapp=bool(df), tau2=tau2, tau2_se=tau2_se,
        tau2_ci=None if method == "fixed" else tau2_q_profile(y, v, ci_level), q=q, q_df=k - 1, q_p=q_p, i2=i2, h2=h2,
        prediction_low=pi_low, prediction_high=pi_high, prediction_distribution=prediction,
        weights=tuple(float(x) for x in 100.0 * w / w.sum()), labels=names, variance=words,
    )
