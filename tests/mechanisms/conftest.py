"""Fixtures of the mechanism tests: NHEFS (Hernán & Robins 2020, from PyPI causaldata)."""

from __future__ import annotations

import pandas as pd
import pytest

from ketaweight.causal import AnalysisSpec

BOOK_CONFOUNDERS = dict(
    covariates=("sex", "race", "age", "education", "smokeintensity", "smokeyrs", "exercise", "active", "wt71"),
    categorical=("education", "exercise", "active"),
    squared=("age", "smokeintensity", "smokeyrs", "wt71"),
)
"""The book's confounder model of Programs 12.2–12.5 (categorical education/exercise/active;
squared age, smokeintensity, smokeyrs, wt71)."""


@pytest.fixture(scope="session")
def nhefs() -> pd.DataFrame:
    """All 1629 NHEFS participants (63 with wt82 missing)."""
    from causaldata import nhefs as ds

    return ds.load_pandas().data


@pytest.fixture(scope="session")
def book_confounders() -> dict[str, tuple[str, ...]]:
    """:data:`BOOK_CONFOUNDERS` as a fixture (test modules cannot import a conftest by name
    when several test folders have one)."""
    return BOOK_CONFOUNDERS


@pytest.fixture(scope="session")
def qsmk_spec() -> AnalysisSpec:
    """qsmk → wt82_71 with the book's confounders, complete cases (n = 1566)."""
    return AnalysisSpec(treatment="qsmk", outcome="wt82_71", **BOOK_CONFOUNDERS)
