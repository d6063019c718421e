"""Run several estimators side by side on one table (prepared once)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ketaweight.causal.aipw import AIPW, DoublyRobust
from ketaweight.causal.base import Estimator, Variance
from ketaweight.causal.crude import Crude
from ketaweight.causal.data import AnalysisData, as_analysis_data
from ketaweight.causal.learners import Learner
from ketaweight.core.vocabulary import PropensityCalibration
from ketaweight.causal.gestimation import GEstimation
from ketaweight.causal.ipw import IPW
from ketaweight.causal.positivity import Trimming, trim
from ketaweight.causal.result import CausalResult
from ketaweight.causal.spec import AnalysisSpec, OnFailure, Thresholds
from ketaweight.causal.standardization import Standardization
from ketaweight.causal.tmle import TMLE
from ketaweight.core.vocabulary import DEFAULT_METHODS, METHODS

ESTIMATORS: dict[str, type[Estimator]] = {
    "crude": Crude,
    "standardization": Standardization,
    "ipw": IPW,
    "aipw": AIPW,
    "tmle": TMLE,
    "g-estimation": GEstimation,
}
"""Estimator classes by method name, in the order results are reported (the names of
:data:`ketaweight.core.vocabulary.METHODS`, which study files are validated against)."""
if tuple(ESTIMATORS) != METHODS:  # the study spec validates method names against core.vocabulary
    raise ImportError(f"estimator registry {tuple(ESTIMATORS)} differs from core.vocabulary.METHODS {METHODS}")


def default_estimators(
    *,
    methods: Sequence[str] = DEFAULT_METHODS,
    variance: Variance = "sandwich",
    n_bootstrap: int = 1000,
    seed: int = 0,
    n_jobs: int = -1,
    ci_level: float = 0.95,
    thresholds: Thresholds | None = None,
    on_failure: OnFailure = "warn",
    learner: Learner = "linear",
    n_repeats: int = 1,
    propensity_calibration: PropensityCalibration = "none",
    truncate_by_arm: float | None = None,
    scheduler: str | None = None,
) -> list[Estimator]:
    """One estimator per method name with shared settings (default settings otherwise).

    ``learner``, ``n_repeats`` (repeated cross-fitting) and ``propensity_calibration`` go to the doubly
    robust estimators (AIPW, TMLE); ``truncate_by_arm`` (an upper percentile of each weighted arm's weights) to IPW."""
    unknown = [m for m in methods if m not in ESTIMATORS]
    if unknown:
        raise ValueError(f"unknown estimator(s) {unknown}; choose from {list(ESTIMATORS)}")
    out: list[Estimator] = []
    for m in methods:
        cls = ESTIMATORS[m]
        extra: dict[str, object] = {}
        if issubclass(cls, DoublyRobust):
            extra = {"learner": learner, "n_repeats": n_repeats, "propensity_calibration": propensity_calibration}
        elif cls is IPW and truncate_by_arm is not None:
            extra = {"truncate_by_arm": truncate_by_arm}
        out.append(cls(variance=variance, n_bootstrap=n_bootstrap, seed=seed, n_jobs=n_jobs, ci_level=ci_level,
                       thresholds=thresholds or Thresholds(), on_failure=on_failure, scheduler=scheduler,
                       **extra))
    return out


def run_estimators(
    table: pd.DataFrame | AnalysisData, spec: AnalysisSpec | None = None, estimators: Sequence[Estimator] | None = None,
    *, trimming: Trimming | None = None,
) -> list[CausalResult]:
    """Fit ``estimators`` (default: crude, standardization, IPW, AIPW, g-estimation with
    default settings; TMLE on request) on ``table`` as ``spec`` says; the table is validated and prepared
    once, so every result shares the same rows and attrition.  ``trimming`` restricts the rows to a
    common support first (:func:`ketaweight.causal.positivity.trim`; every result then says so)."""
    data = as_analysis_data(table, spec, "run_estimators")
    if trimming is not None:
        data = trim(data, trimming)
    return [est.fit(data) for est in (estimators if estimators is not None else default_estimators())]
