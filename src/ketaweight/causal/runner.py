"""Run several estimators side by side on one table (prepared once)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ketaweight.causal.aipw import AIPW
from ketaweight.causal.base import Estimator, Variance
from ketaweight.causal.crude import Crude
from ketaweight.causal.data import AnalysisData, as_analysis_data
from ketaweight.causal.gestimation import GEstimation
from ketaweight.causal.ipw import IPW
from ketaweight.causal.result import CausalResult
from ketaweight.causal.spec import AnalysisSpec, OnFailure, Thresholds
from ketaweight.causal.standardization import Standardization
from ketaweight.core.vocabulary import METHODS

ESTIMATORS: dict[str, type[Estimator]] = {
    "crude": Crude,
    "standardization": Standardization,
    "ipw": IPW,
    "aipw": AIPW,
    "g-estimation": GEstimation,
}
"""Estimator classes by method name, in the order results are reported (the names of
:data:`ketaweight.core.vocabulary.METHODS`, which study files are validated against)."""
if tuple(ESTIMATORS) != METHODS:  # the study spec validates method names against core.vocabulary
    raise ImportError(f"estimator registry {tuple(ESTIMATORS)} differs from core.vocabulary.METHODS {METHODS}")


def default_estimators(
    *,
    methods: Sequence[str] = tuple(ESTIMATORS),
    variance: Variance = "sandwich",
    n_bootstrap: int = 1000,
    seed: int = 0,
    n_jobs: int = -1,
    ci_level: float = 0.95,
    thresholds: Thresholds | None = None,
    on_failure: OnFailure = "warn",
    scheduler: str | None = None,
) -> list[Estimator]:
    """One estimator per method name with shared settings (default settings otherwise)."""
    unknown = [m for m in methods if m not in ESTIMATORS]
    if unknown:
        raise ValueError(f"unknown estimator(s) {unknown}; choose from {list(ESTIMATORS)}")
    return [
        ESTIMATORS[m](
            variance=variance,
            n_bootstrap=n_bootstrap,
            seed=seed,
            n_jobs=n_jobs,
            ci_level=ci_level,
            thresholds=thresholds or Thresholds(),
            on_failure=on_failure,
            scheduler=scheduler,
        )
        for m in methods
    ]


def run_estimators(
    table: pd.DataFrame | AnalysisData, spec: AnalysisSpec | None = None, estimators: Sequence[Estimator] | None = None
) -> list[CausalResult]:
    """Fit ``estimators`` (default: crude, standardization, IPW, AIPW, g-estimation with
    default settings) on ``table`` as ``spec`` says; the table is validated and prepared
    once, so every result shares the same rows and attrition."""
    data = as_analysis_data(table, spec, "run_estimators")
    return [est.fit(data) for est in (estimators if estimators is not None else default_estimators())]
