"""The study's AIPW estimator run on many outcomes at once: the outcome and dozens of controls.

Calibration needs every control estimated exactly as the outcome is (the same estimator, design,
folds and censoring model), and a site has 30-100 negative controls plus their positive
controls.  :class:`ketaweight.causal.aipw.AIPW` fits the propensity model once per fold and
outcome; here it is fitted once per fold for all outcomes, the censoring model once per fold for
every group of outcomes missing in the same rows, and only the linear outcome models per outcome
— the same numbers (the tests check equality with ``AIPW.fit`` outcome by outcome) at a fraction
of the cost, without the per-outcome diagnostics (balance and overlap do not depend on the outcome
and are reported once, with the study's own AIPW result).

Each outcome's missing values are censoring events handled by inverse probability of censoring
weights (``missing_outcome = "censor"``), as the study's outcome is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy.special import expit

from ketaweight.causal.aipw import AIPW
from ketaweight.causal.data import prepare
from ketaweight.causal.design import interaction_columns
from ketaweight.causal.glm import fit_logistic
from ketaweight.causal.nuisance import make_folds, post_baseline_columns
from ketaweight.causal.outcome import fit_outcome_model
from ketaweight.causal.spec import AnalysisSpec
from ketaweight.causal.weights import censoring_design
from ketaweight.core.errors import InputError, Location


@dataclass(frozen=True)
class OutcomeEstimate:
    """One outcome's AIPW estimate (outcome units) and influence-function SE."""

    outcome: str
    estimate: float
    se: float
    n: int
    n_observed: int


@dataclass(frozen=True)
class ManyOutcomes:
    """Estimates by outcome; ``analysed`` marks the table rows analysed (no missing treatment or
    covariate); ``pseudo_outcomes`` the per-row φᵢ (first split) of the outcomes asked for."""

    estimates: dict[str, OutcomeEstimate]
    analysed: np.ndarray
    pseudo_outcomes: dict[str, np.ndarray]


def _analysed_rows(table: pd.DataFrame, spec: AnalysisSpec) -> np.ndarray:
    needed = list(dict.fromkeys([spec.treatment, *spec.covariates, *spec.censoring_covariates]))
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise InputError([(Location("table", column=c), "column not found") for c in missing])
    return table[needed].notna().all(axis=1).to_numpy()


def aipw_many(table: pd.DataFrame, spec: AnalysisSpec, outcomes: Sequence[str], estimator: AIPW,
              *, pseudo_for: Sequence[str] = ()) -> ManyOutcomes:
    """``estimator`` (default nuisance models) on each of ``outcomes`` of ``table`` with ``spec``'s
    treatment, covariates, censoring covariates and estimand."""
    if estimator.propensity_learner is not None or estimator.outcome_learner is not None:
        raise ValueError("aipw_many supports the default logistic and linear nuisance models only")
    missing = [o for o in outcomes if o not in table.columns]
    if missing:
        raise InputError([(Location("table", column=o), "outcome column not found") for o in missing])
    base = replace(spec, censor=None, missing_outcome="censor")
    analysed = _analysed_rows(table, base)
    sub = table.loc[analysed]
    groups: dict[bytes, list[str]] = {}
    for o in outcomes:
        groups.setdefault(np.isnan(sub[o].to_numpy(dtype=float)).tobytes(), []).append(o)
    prepared = {key: prepare(sub, replace(base, outcome=names[0])) for key, names in groups.items()}
    first = next(iter(prepared.values()))
    if first.n != int(analysed.sum()):  # the exclusions above must be prepare()'s own
        raise AssertionError(f"analysed rows {int(analysed.sum())} differ from prepare()'s {first.n}")
    if post_baseline_columns(first).size:
        return _one_by_one(sub, base, outcomes, estimator, analysed, pseudo_for)
    x, a, n = first.x.matrix, first.a, first.n
    cols = interaction_columns(first.x, estimator.interactions)
    ys = {o: sub[o].to_numpy(dtype=float) for o in outcomes}
    splits = np.random.SeedSequence(estimator.seed).spawn(estimator.n_repeats)
    runs: dict[str, list[tuple[float, float]]] = {o: [] for o in outcomes}
    pseudo: dict[str, np.ndarray] = {}
    for r, split in enumerate(splits):
        folds = make_folds(n, estimator.n_folds, split)  # exactly AIPW's folds
        e = np.empty(n)
        start = None
        for train, test in folds:
            fit = fit_logistic(x[train], a[train], start=start)
            start = fit.coef
            e[test] = expit(x[test] @ fit.coef)
        for key, names in groups.items():
            data = prepared[key]
            obs = data.observed
            pi = np.ones(n)
            if data.censored:
                xz = censoring_design(data)
                start_c = None
                for train, test in folds:
                    fit_c = fit_logistic(xz[train], obs[train].astype(float), start=start_c)
                    start_c = fit_c.coef
                    pi[test] = expit(xz[test] @ fit_c.coef)
            rr = obs.astype(float)
            for o in names:
                y = ys[o]
                y0 = np.where(obs, y, 0.0)
                m1, m0 = np.empty(n), np.empty(n)
                for train, test in folds:
                    keep = train & obs
                    m1[test], m0[test] = fit_outcome_model(x[keep], a[keep], y[keep], cols).counterfactual(x[test])
                if spec.estimand == "ATE":
                    phi = m1 - m0 + a * rr * (y0 - m1) / (e * pi) - (1 - a) * rr * (y0 - m0) / ((1 - e) * pi)
                    est = float(phi.mean())
                    infl = phi - est
                else:
                    phi = a * (m1 - m0) + a * rr * (y0 - m1) / pi - (1 - a) * rr * e * (y0 - m0) / ((1 - e) * pi)
                    est = float(phi.sum() / a.sum())
                    infl = (phi - a * est) / a.mean()
                runs[o].append((est, float(np.sum(infl**2)) / n**2))
                if r == 0 and o in pseudo_for:
                    pseudo[o] = phi
    out: dict[str, OutcomeEstimate] = {}
    for o in outcomes:
        ests = np.array([x[0] for x in runs[o]])
        var = np.array([x[1] for x in runs[o]])
        est = float(np.median(ests))
        group = next(k for k, names in groups.items() if o in names)
        out[o] = OutcomeEstimate(o, est, math.sqrt(float(np.median(var + (ests - est) ** 2))), n,
                                 prepared[group].n_observed)
    return ManyOutcomes(out, analysed, pseudo)


def _one_by_one(sub: pd.DataFrame, base: AnalysisSpec, outcomes: Sequence[str], estimator: AIPW, analysed: np.ndarray,
                pseudo_for: Sequence[str]) -> ManyOutcomes:
    """AIPW's own cross-fitting outcome by outcome, for designs whose censoring covariates include
    post-baseline variables: AIPW then regresses the outcome sequentially (on L, then on V among the
    observed), which the shared-propensity batch above does not reproduce.  Same splits and numbers as
    ``AIPW.fit``; without the batch's speed."""
    splits = np.random.SeedSequence(estimator.seed).spawn(estimator.n_repeats)
    out: dict[str, OutcomeEstimate] = {}
    pseudo: dict[str, np.ndarray] = {}
    for o in outcomes:
        data = prepare(sub, replace(base, outcome=o))
        runs = [estimator.crossfit_once(data, split) for split in splits]
        ests = np.array([est for est, _ in runs])
        var = np.array([float(np.sum(infl**2)) / data.n**2 for _, infl in runs])
        est = float(np.median(ests))
        out[o] = OutcomeEstimate(o, est, math.sqrt(float(np.median(var + (ests - est) ** 2))), data.n, data.n_observed)
        if o in pseudo_for:
            pseudo[o] = runs[0][0] + runs[0][1]  # the first split's per-row pseudo-outcome (estimate + influence)
    return ManyOutcomes(out, analysed, pseudo)
