"""Diagnostics by hand, warnings with their thresholds, the hard stop, and attrition."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from causal_synthetic import CONFOUNDED_SPEC, confounded_table
from ketaweight.causal import IPW, AnalysisSpec, Crude, GEstimation, Standardization, Thresholds
from ketaweight.causal.diagnostics import kish_ess, overlap_summary, smd
from ketaweight.core.errors import (
    BalanceWarning,
    NumericalError,
    PositivityWarning,
    SeparationWarning,
)


def test_smd_and_ess_by_hand():
    """x treated = 1,3 (mean 2, var 1), control = 0,0 (var 0): SMD = 2/√(1/2) = 2√2."""
    x = np.array([[1.0], [3.0], [0.0], [0.0]])
    a = np.array([1, 1, 0, 0.0])
    assert smd(x, a)[0] == pytest.approx(2 * np.sqrt(2))
    # weights 3:1 in the treated move the treated mean to 1.5
    assert smd(x, a, np.array([3.0, 1.0, 1.0, 1.0]))[0] == pytest.approx(1.5 / np.sqrt(0.5))
    assert kish_ess(np.array([1.0, 1.0, 2.0])) == pytest.approx(16 / 6)


def test_overlap_share_outside_common_support():
    e = np.array([0.1, 0.2, 0.3, 0.05, 0.15, 0.5])
    a = np.array([1, 1, 1, 0, 0, 0.0])
    out = overlap_summary(e, a)
    assert out["common_support"] == [0.1, 0.3]
    assert out["share_outside_support"] == pytest.approx(2 / 6)


def _poor_overlap_table(n: int = 2000) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    l1 = rng.normal(size=n)
    a = (rng.random(n) < 1 / (1 + np.exp(-4.0 * l1))).astype(float)
    return pd.DataFrame({"A": a, "Y": l1 + rng.normal(size=n), "L1": l1})


def test_extreme_weights_and_poor_overlap_warn_with_threshold():
    spec = AnalysisSpec(treatment="A", outcome="Y", covariates=("L1",))
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        r = IPW().fit(_poor_overlap_table(), spec)
    assert [str(w.message) for w in rec] == [m.split(": ", 1)[1] for m in r.warnings]
    assert {w.category for w in rec} == {PositivityWarning, BalanceWarning}
    assert all("threshold" in m for m in r.warnings)
    text = " ".join(r.warnings)
    assert "threshold 20×" in text and "threshold 5%" in text and "threshold: at least 10%" in text


def test_hard_stop_raises_numerical_error():
    spec = AnalysisSpec(treatment="A", outcome="Y", covariates=("L1",))
    with pytest.raises(NumericalError, match="threshold"):
        IPW(on_failure="raise").fit(_poor_overlap_table(), spec)


def test_balance_warning_uses_configured_threshold():
    table = confounded_table(1500, effect=0.0, seed=1)
    with pytest.warns(BalanceWarning, match=r"\|SMD\| > 0.0001"):
        IPW(thresholds=Thresholds(smd=1e-4)).fit(table, CONFOUNDED_SPEC)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Crude(thresholds=Thresholds(smd=1e-4)).fit(table, CONFOUNDED_SPEC)  # unadjusted: reported, no warning


def test_separation_is_detected():
    table = confounded_table(400, effect=0.0, seed=2)
    table["perfect"] = table["A"] * 2.0 - 1.0 + np.random.default_rng(0).uniform(-0.1, 0.1, len(table))
    spec = AnalysisSpec(treatment="A", outcome="Y", covariates=("L1", "perfect"))
    with pytest.warns(SeparationWarning, match="separates the data"):
        Standardization().fit(table, spec)
    with pytest.raises(NumericalError):
        GEstimation(on_failure="raise").fit(table, spec)


def test_missing_values_are_counted_never_silently_dropped():
    table = confounded_table(500, effect=0.0, seed=3)
    table.loc[:4, "A"] = np.nan
    table.loc[5:11, "L1"] = np.nan
    table.loc[12:14, "L3"] = None
    table.loc[20:39, "Y"] = np.nan
    r = IPW().fit(table, CONFOUNDED_SPEC)
    steps = {s["step"]: s for s in r.diagnostics["attrition"]}
    assert steps["missing treatment"]["n_excluded"] == 5
    assert steps["missing covariates"]["n_excluded"] == 10
    assert "'L1' (7)" in steps["missing covariates"]["reason"] and "'L3' (3)" in steps["missing covariates"]["reason"]
    assert steps["missing outcome"]["n_excluded"] == 20
    assert r.n == 465
    censored = IPW().fit(table, CONFOUNDED_SPEC.__class__(**{**CONFOUNDED_SPEC.to_dict(), "missing_outcome": "censor"}))
    assert censored.n == 485 and censored.diagnostics["n_observed_outcome"] == 465
    assert {m["model"] for m in censored.diagnostics["models"]} == {"propensity", "censoring"}


def test_non_binary_treatment_is_an_input_error():
    table = confounded_table(50, effect=0.0, seed=3)
    table.loc[0, "A"] = 2
    from ketaweight.core.errors import InputError

    with pytest.raises(InputError, match="must be 0/1"):
        IPW().fit(table, CONFOUNDED_SPEC)


def test_string_categorical_columns_convert_by_value(nhefs, nhefs_spec):
    """causaldata loads sex/race as string categoricals; conversion must go through values."""
    table = nhefs.copy()
    table["sex"] = table["sex"].cat.reorder_categories(["1", "0"])  # codes now disagree with values
    a = IPW().fit(table, nhefs_spec()).estimate
    assert a == pytest.approx(IPW().fit(nhefs, nhefs_spec()).estimate, abs=1e-12)
