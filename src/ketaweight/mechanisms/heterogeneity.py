"""Individual variability: effect modification by prespecified subgroups, and per-patient effects.

**Subgroups** (Hernán & Robins 2020, ch. 12.5, Program 12.5).  For a baseline modifier V with
levels v₀ (reference), v₁, …, the marginal structural model

    E[Y^a | V] = β0 + β1·a + Σₖ β2k·1{V = vₖ} + Σₖ θk·a·1{V = vₖ}

is fitted by weighted least squares with stabilized weights SW = P(A | V) / P(A | L) (times
stabilized censoring weights when a censor column is given), variance by the robust sandwich
with the weights treated as known (as the book's GEE).  Reported: the effect in each level
(β1 + θk), each θk, and a Wald test of H0: all θk = 0 (χ² with K − 1 df) — the heterogeneity
test — with Holm's (1979) step-down adjustment across the prespecified modifiers (family-wise
error rate).

A *treatment version* such as the route of the first session is not a baseline modifier (it
exists only in the treated).  :func:`version_effects` estimates the effect of each version
against no treatment with the engine's IPW on {untreated} ∪ {treated with that version}, and
tests equality of the version effects by a Wald test that ignores the positive covariance from
the shared untreated rows (so the test is conservative; stated in the output).

**Per-patient effects** (DR-learner; Kennedy 2023, *Electron. J. Stat.* 17:3008).  The cross-
fitted AIPW pseudo-outcome φᵢ (doubly robust, with IPCW for censoring; :mod:`ketaweight.causal.aipw`)
is regressed on the covariates by a scikit-learn learner, itself cross-fitted: for each held-out
fold, the pseudo-outcomes of the other folds are recomputed by an inner cross-fit on those folds
only, so each patient's prediction τ̂(Lᵢ) comes from models (nuisances included) that never saw
that patient.  Honest summaries: spread of
τ̂, share with τ̂ < −1 kg, and calibration — the best-linear-predictor slope of φ on τ̂ − mean τ̂
(1 = heterogeneity well calibrated, 0 = no detectable heterogeneity; Chernozhukov, Demirer,
Duflo & Fernández-Val 2018) and DR group means of φ by quintile of τ̂.  Predicted effects are
*predictions*, not measured individual effects: the share "predicted to lose > 1 kg" is not the
share who would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from ketaweight.causal.aipw import AIPW
from ketaweight.causal.data import AnalysisData, prepare
from ketaweight.causal.design import category_levels
from ketaweight.causal.diagnostics import weight_summary
from ketaweight.mechanisms.effects import holm, wald_result, z_value
from ketaweight.causal.glm import fit_linear, fit_logistic, linear_sandwich
from ketaweight.causal.ipw import IPW
from ketaweight.causal.result import CausalResult, summarise
from ketaweight.causal.spec import AnalysisSpec
from ketaweight.causal.weights import censoring_model, censoring_weights
from ketaweight.core.errors import InputError, Location
from ketaweight.core.privacy import mask_count
from ketaweight.core.protocol import InMemory, Real, Result
from ketaweight.core.summary import Summary


@dataclass(frozen=True)
class ModifierResult(Result):
    """Effect modification by one baseline modifier.

    ``subgroups`` one :class:`CausalResult` per level (effect in that level), ``interactions``
    the θk (level vs reference) as results, ``chi2``/``df``/``p_value`` the Wald heterogeneity
    test (``test`` says which), ``p_holm`` its Holm-adjusted p-value across the modifiers analysed
    together.
    """

    modifier: str
    levels: tuple[str, ...]
    subgroups: tuple[CausalResult, ...]
    interactions: tuple[CausalResult, ...]
    chi2: Real
    df: int
    p_value: Real
    p_holm: Real = float("nan")
    weights: dict[str, Any] = field(default_factory=dict)  # causal.diagnostics.weight_summary (n may be masked)
    test: str = "Wald chi-square, H0: no effect modification"

    def summary(self) -> Summary:
        s = summarise(self.subgroups)
        return Summary(f"Effect modification by {self.modifier}", s.header, s.rows,
                       (f"{self.test}: chi2 {self.chi2:.2f} on {self.df} df, p = {self.p_value:.3g} "
                        f"(Holm {self.p_holm:.3g})", *s.notes))


def modifier_effects(table: pd.DataFrame, spec: AnalysisSpec, modifier: str, *, ci_level: float = 0.95) -> ModifierResult:
    """Effect modification by ``modifier`` (a column of ``table``; see the module docstring).

    The modifier must be measured at baseline; it need not be among the confounders (the
    denominator model uses ``spec.covariates``; add the modifier there if it confounds).
    """
    if modifier not in table.columns:
        raise InputError([(Location("table", column=modifier), "modifier column not found")])
    frame = table.loc[table[modifier].notna()]
    data = prepare(frame, spec)
    frame = _analysed_rows(frame, spec, data)
    text = frame[modifier].astype(object).map(str).to_numpy()
    levels = tuple(category_levels(frame[modifier]))
    if len(levels) < 2:
        raise InputError([(Location("table", column=modifier), f"needs at least 2 levels, found {list(levels)}")])
    a = data.a
    thin = [lev for lev in levels if len(set(a[text == lev].tolist())) < 2]
    if thin:
        raise InputError([(Location("table", column=modifier),
                           f"level(s) {thin} lack treated or untreated rows; merge or drop them")])
    ind = np.column_stack([(text == lev).astype(float) for lev in levels[1:]])
    e = fit_logistic(data.x.matrix, a).fitted
    num = fit_logistic(np.column_stack([np.ones(len(a)), ind]), a).fitted
    sw = np.where(a == 1, num / e, (1 - num) / (1 - e))
    cm = censoring_model(data)
    if cm is not None:
        sw = sw * censoring_weights(cm.fit.fitted, data.observed, a, stabilized=True)
    obs = data.observed
    d = np.column_stack([np.ones(len(a)), a, ind, a[:, None] * ind])[obs]
    w = sw[obs]
    fit = fit_linear(d, data.y[obs], sample_weight=w)
    cov = linear_sandwich(fit, d, sample_weight=w)
    k = len(levels) - 1
    theta = slice(2 + k, 2 + 2 * k)
    th, th_cov = fit.coef[theta], cov[theta, theta]
    chi2 = float(th @ np.linalg.solve(th_cov, th))
    p_value = float(stats.chi2.sf(chi2, k))
    variance = "robust (HC0) sandwich of the weighted MSM, weights treated as known (Hernán & Robins 2020 Program 12.5)"
    common = dict(treatment=spec.treatment, outcome=spec.outcome, method="ipw-msm", variance=variance, ci_level=ci_level)
    subgroups, inter = [], []
    for j, lev in enumerate(levels):
        g = np.zeros(len(fit.coef))
        g[1] = 1.0
        if j:
            g[2 + k + j - 1] = 1.0
        n_level = int(np.sum(text == lev))
        subgroups.append(wald_result(estimand=f"ATE in {modifier} = {lev}", estimate=float(g @ fit.coef),
                                     se=float(np.sqrt(g @ cov @ g)), n=n_level, **common))
        if j:
            inter.append(wald_result(estimand=f"difference in effect, {modifier} = {lev} vs {levels[0]}",
                                     estimate=float(th[j - 1]), se=float(np.sqrt(th_cov[j - 1, j - 1])), n=len(a), **common))
    return ModifierResult(modifier, levels, tuple(subgroups), tuple(inter), chi2, k, p_value, weights=weight_summary(w))


def _analysed_rows(frame: pd.DataFrame, spec: AnalysisSpec, data: AnalysisData) -> pd.DataFrame:
    """The rows of ``frame`` that :func:`prepare` kept (same filters, same order)."""
    keep = frame[spec.treatment].notna()
    cols = list(dict.fromkeys([*spec.covariates, *spec.censoring_covariates]))
    keep &= ~frame[cols].isna().any(axis=1)
    if not spec.uses_censoring or (spec.censor is not None and spec.missing_outcome == "exclude"):
        y_missing = frame[spec.outcome].isna()
        if spec.censor is not None:
            y_missing &= frame[spec.censor].fillna(0) != 1
        keep &= ~y_missing
    out = frame.loc[keep]
    if len(out) != data.n:  # prepare() changed its filters: fail loudly rather than misalign rows
        raise RuntimeError(f"internal: {len(out)} rows selected but prepare() analysed {data.n}")
    return out


def subgroup_analysis(table: pd.DataFrame, spec: AnalysisSpec, modifiers: Sequence[str], *,
                      ci_level: float = 0.95) -> list[ModifierResult]:
    """:func:`modifier_effects` for each prespecified modifier, with Holm-adjusted test p-values."""
    results = [modifier_effects(table, spec, m, ci_level=ci_level) for m in modifiers]
    adjusted = holm([r.p_value for r in results])
    return [replace(r, p_holm=p) for r, p in zip(results, adjusted)]


@dataclass(frozen=True)
class VersionResult(Result):
    """Effects of each version of treatment (e.g. route) against no treatment."""

    version: str
    effects: tuple[CausalResult, ...]
    chi2: Real
    df: int
    p_value: Real
    levels: tuple[str, ...] = ()  # the version of each effect, in order
    test: str = ("Wald chi-square, H0: equal effects of every version; ignores the positive covariance from shared "
                 "untreated rows (conservative)")

    def summary(self) -> Summary:
        if not self.effects:
            return Summary(f"Effects by {self.version}", ("version",), (), ("no version had enough treated patients",))
        s = summarise(self.effects)
        return Summary(f"Effects by {self.version} vs none", s.header, s.rows,
                       (f"{self.test}: chi2 {self.chi2:.2f} on {self.df} df, p = {self.p_value:.3g}", *s.notes))


def version_effects(table: pd.DataFrame, spec: AnalysisSpec, version: str, *, min_treated: int = 30) -> VersionResult:
    """IPW effect of each level of ``version`` (defined in the treated) against no treatment.

    Levels with fewer than ``min_treated`` treated rows are left out (too few to estimate);
    they are listed in each result's diagnostics.
    """
    treated = table[spec.treatment] == 1
    counts = table.loc[treated, version].astype(object).map(str).value_counts()
    kept = sorted(lev for lev, c in counts.items() if c >= min_treated)
    effects = []
    for lev in kept:
        rows = ~treated | (table[version].astype(object).map(str) == lev)
        r = IPW().fit(table.loc[rows], spec)
        effects.append(replace(r, estimand=f"{spec.estimand} of {version} = {lev} vs none",
                               diagnostics={**r.diagnostics, "levels_left_out": sorted(set(counts.index) - set(kept))}))
    est = np.array([r.estimate for r in effects])
    se = np.array([r.se for r in effects])
    if len(effects) < 2:
        return VersionResult(version, tuple(effects), float("nan"), 0, float("nan"), tuple(kept))
    w = 1 / se**2
    pooled = np.sum(w * est) / np.sum(w)
    chi2 = float(np.sum(w * (est - pooled) ** 2))
    return VersionResult(version, tuple(effects), chi2, len(effects) - 1, float(stats.chi2.sf(chi2, len(effects) - 1)),
                         tuple(kept))


def default_effect_learner() -> HistGradientBoostingRegressor:
    """Second-stage learner: shallow, slow-learning gradient boosting (pseudo-outcomes are noisy)."""
    return HistGradientBoostingRegressor(max_depth=3, learning_rate=0.05, max_iter=150, min_samples_leaf=100,
                                         random_state=0)


@dataclass(frozen=True)
class IndividualEffects(Result):
    """Per-patient predicted effects τ̂ (outcome units) and their honest summary.

    ``distribution`` the spread, share below the threshold, and calibration (what results files
    hold); in memory only, never written: ``predicted`` (n,) aligned with the analysed rows
    (``row_index`` = their index in the input table) and ``pseudo_outcome`` φ (n,).
    """

    distribution: dict[str, Any]
    predicted: InMemory = field(default=None, repr=False, compare=False)  # np.ndarray (n,)
    pseudo_outcome: InMemory = field(default=None, repr=False, compare=False)  # np.ndarray (n,)
    row_index: InMemory = field(default=None, repr=False, compare=False)  # np.ndarray (n,)

    def summary(self) -> Summary:
        d = self.distribution
        p, cal = d["predicted"], d["calibration"]
        rows = (("mean predicted effect", f"{p['mean']:.3f}"), ("SD of predicted effects", f"{p['sd']:.3f}"),
                (f"share predicted below {d['threshold']:g}", f"{100 * d['share_predicted_below_threshold']:.1f}%"),
                ("calibration (BLP) slope", f"{cal['blp_slope']:.2f} ({cal['blp_slope_ci'][0]:.2f}, "
                                            f"{cal['blp_slope_ci'][1]:.2f})"),
                *((("calibrated spread (SD)", f"{d['spread']['sd_calibrated']:.3f} ({d['spread']['sd_calibrated_ci'][0]:.3f}, "
                                               f"{d['spread']['sd_calibrated_ci'][1]:.3f})"),) if "spread" in d else ()),
                ("n", mask_count(d["n"])))
        return Summary(f"Per-patient effects ({d['method']})", ("quantity", "value"), rows, (d["caveat"], cal["reading"]))


def _calibration(tau: np.ndarray, phi: np.ndarray, groups: int = 5) -> dict[str, Any]:
    """BLP slope of φ on τ̂ − mean τ̂ (HC0 SE) and DR means of φ by quantile group of τ̂."""
    d = np.column_stack([np.ones_like(tau), tau - tau.mean()])
    fit = fit_linear(d, phi)
    cov = linear_sandwich(fit, d)
    z = z_value(0.95)
    slope, se = float(fit.coef[1]), float(np.sqrt(cov[1, 1]))
    cuts = np.quantile(tau, np.linspace(0, 1, groups + 1)[1:-1])
    g = np.searchsorted(cuts, tau, side="right")
    table = []
    for k in range(groups):
        m = g == k
        s = float(phi[m].std(ddof=1) / np.sqrt(m.sum())) if m.sum() > 1 else float("nan")
        table.append({"group": k + 1, "mean_predicted": float(tau[m].mean()), "dr_estimate": float(phi[m].mean()),
                      "se": s, "ci_low": float(phi[m].mean() - z * s), "ci_high": float(phi[m].mean() + z * s),
                      "n": int(m.sum())})
    return {"blp_slope": slope, "blp_slope_se": se, "blp_slope_ci": [slope - z * se, slope + z * se],
            "blp_p_value_no_heterogeneity": float(2 * stats.norm.sf(abs(slope / se))) if se > 0 else float("nan"),
            "by_quintile": table,
            "reading": "slope 1: predicted differences between patients are real on average; slope 0: no detectable "
                       "heterogeneity (predictions are noise around the average effect)"}


@dataclass(frozen=True, kw_only=True)
class DRLearner:
    """Cross-fitted DR-learner of conditional average effects τ(L) = E[Y¹ − Y⁰ | L].

    Settings: ``n_folds`` (cross-fitting folds for nuisances and the second stage),
    ``effect_learner`` (scikit-learn regressor; default :func:`default_effect_learner`),
    ``learner`` (the nuisance models, ``"linear"``, ``"stacked"`` or ``"augmented"``, as
    :class:`~ketaweight.causal.aipw.AIPW`), ``propensity_learner``/``outcome_learner`` (scikit-learn
    overrides), ``loss_threshold`` (the "loses more than" cut, in outcome units, default −1), ``seed``.

    The spread of individual effects is reported twice: the SD of the predictions τ̂ (which noise
    inflates and smoothing shrinks), and the *calibrated* spread |β₂|·SD(τ̂), the SD of the best linear
    predictor of the pseudo-outcome given τ̂ (β₂ the BLP slope): the part of the predictions' spread that
    the held-out data confirm — a lower bound on the SD of the conditional effect τ(L), tight when the
    predictions are right up to scale, with the interval of β₂.
    """

    n_folds: int = 5
    effect_learner: Any = None
    learner: str = "linear"
    propensity_learner: Any = None
    outcome_learner: Any = None
    loss_threshold: float = -1.0
    seed: int = 0

    def fit(self, table: pd.DataFrame, spec: AnalysisSpec) -> IndividualEffects:
        """Predict each analysed patient's effect; see the module docstring."""
        if spec.estimand != "ATE":
            raise ValueError("the DR-learner targets conditional average effects; use estimand='ATE'")
        data = prepare(table, spec)
        pseudo_ss, second_ss, *inner_ss = np.random.SeedSequence(self.seed).spawn(2 + self.n_folds)
        aipw = AIPW(n_folds=self.n_folds, learner=self.learner, propensity_learner=self.propensity_learner,  # type: ignore[arg-type]
                    outcome_learner=self.outcome_learner)
        estimate, infl = aipw.crossfit_once(data, pseudo_ss)
        phi = infl + estimate  # each row's pseudo-outcome, nuisances fitted without that row
        x = data.x.matrix[:, 1:]
        learner = self.effect_learner if self.effect_learner is not None else default_effect_learner()
        fold = np.random.default_rng(second_ss).permutation(data.n) % self.n_folds
        tau = np.empty(data.n)
        with threadpool_limits(limits=1):  # OpenMP oversubscription makes small boosting fits ~10x slower
            for k in range(self.n_folds):
                test = fold == k
                # The held-out fold's predictions come from pseudo-outcomes whose nuisances never saw the
                # fold either (an inner cross-fit on the training folds): otherwise the held-out outcomes
                # leak into the training pseudo-outcomes and bias the calibration slope downwards.
                train = np.flatnonzero(~test)
                inner_est, inner_infl = aipw.crossfit_once(data.subset(train), inner_ss[k])
                tau[test] = clone(learner).fit(x[train], inner_infl + inner_est).predict(x[test])
        rows = _analysed_rows(table, spec, data).index.to_numpy()
        calibration = _calibration(tau, phi)
        sd_tau = float(tau.std())
        lo_b, hi_b = calibration["blp_slope_ci"]
        distribution = {
            "method": "cross-fitted DR-learner (Kennedy 2023)",
            "average_effect_aipw": float(estimate), "average_effect_aipw_se": float(np.sqrt(np.sum(infl**2)) / data.n),
            "predicted": {"mean": float(tau.mean()), "sd": float(tau.std()),
                          **{f"p{q:02d}": float(np.quantile(tau, q / 100)) for q in (5, 25, 50, 75, 95)}},
            "share_predicted_below_threshold": float(np.mean(tau < self.loss_threshold)),
            "threshold": self.loss_threshold,
            "calibration": calibration,
            "spread": {"sd_predicted": sd_tau, "sd_calibrated": abs(calibration["blp_slope"]) * sd_tau,
                       "sd_calibrated_ci": [max(lo_b, 0.0) * sd_tau, max(hi_b, 0.0) * sd_tau],
                       "reading": "calibrated spread = |BLP slope| x SD of the predictions: the spread of individual "
                                  "effects that held-out data confirm, a lower bound on the SD of the conditional "
                                  "effect given the baseline covariates; what no baseline trait predicts (e.g. who "
                                  "responds to the antidepressant) cannot be attributed to anyone"},
            "n": data.n,
            "learners": {"effect": type(learner).__name__,
                         "nuisance": self.learner,
                         "propensity": type(self.propensity_learner).__name__ if self.propensity_learner is not None else
                         (self.learner if self.learner != "linear" else "logistic (numpy)"),
                         "outcome": type(self.outcome_learner).__name__ if self.outcome_learner is not None else
                         (self.learner if self.learner != "linear" else "linear by arm (numpy)")},
            "caveat": "predicted effects are model predictions, not measured individual effects; the share below the "
                      "threshold describes predictions and shrinks or grows with the learner's smoothing",
        }
        return IndividualEffects(distribution, tau, phi, rows)


def compare_to_truth(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """How per-patient predictions match true individual effects (simulation only).

    ``correlation`` (Pearson), ``calibration_slope`` of the truth regressed on the prediction
    (1 = calibrated; < 1 = predictions too spread), ``calibration_intercept``, ``rmse``, and the
    true and predicted SDs.  Correlation and slope are NaN when either side is constant.
    """
    if not (truth.std() > 0 and predicted.std() > 0):  # e.g. the null scenario: every true effect is 0
        corr = slope = intercept = float("nan")
    else:
        slope, intercept = np.polyfit(predicted, truth, 1)
        corr = float(np.corrcoef(predicted, truth)[0, 1])
    return {"correlation": corr, "calibration_slope": float(slope),
            "calibration_intercept": float(intercept), "rmse": float(np.sqrt(np.mean((predicted - truth) ** 2))),
            "sd_truth": float(truth.std()), "sd_predicted": float(predicted.std())}
