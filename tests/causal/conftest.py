"""Shared fixtures: NHEFS (Hernán & Robins, *Causal Inference: What If*, 2020) from PyPI causaldata."""

from __future__ import annotations

import pandas as pd
import pytest

from ketaweight.causal import AnalysisSpec

NHEFS_COVARIATES = ("sex", "race", "age", "education", "smokeintensity", "smokeyrs", "exercise", "active", "wt71")
"""Hernán & Robins' confounders for qsmk → wt82_71 (Programs 12.2–14.3)."""


@pytest.fixture(scope="session")
def nhefs() -> pd.DataFrame:
    """All 1629 NHEFS participants (63 with wt82 missing, ``censored`` = 1)."""
    from causaldata import nhefs as ds

    return ds.load_pandas().data


def make_nhefs_spec(**extra: object) -> AnalysisSpec:
    """The book's models: categorical education/exercise/active, squared age, wt71,
    smokeintensity, smokeyrs."""
    return AnalysisSpec(
        treatment="qsmk",
        outcome="wt82_71",
        covariates=NHEFS_COVARIATES,
        categorical=("education", "exercise", "active"),
        squared=("age", "smokeintensity", "smokeyrs", "wt71"),
        **extra,
    )


@pytest.fixture(scope="session")
def nhefs_spec():
    """Factory of NHEFS specs: ``nhefs_spec(censor="censored")``."""
    return make_nhefs_spec

