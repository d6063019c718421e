"""One contract, run over every estimator (scikit-learn's check_estimator idea)."""

from __future__ import annotations

import dataclasses
import json
import math

import pandas as pd
import pytest

from ketaweight.causal import AIPW, IPW, CausalResult, Crude, GEstimation, Standardization
from ketaweight.causal.runner import run_estimators
from ketaweight.core.vocabulary import DEFAULT_METHODS
from ketaweight.core.errors import InputError
from causal_synthetic import CONFOUNDED_SPEC, confounded_table

ALL = [Crude, Standardization, IPW, AIPW, GEstimation]
FIELDS = {"treatment", "outcome", "estimand", "method", "estimate", "se", "ci_low", "ci_high", "n", "variance",
          "diagnostics", "warnings"}


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return confounded_table(1500, effect=1.0, seed=11)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.method)
def test_result_contract(cls, table):
    est = cls()
    before = dataclasses.asdict(est)
    r = est.fit(table, CONFOUNDED_SPEC)
    assert isinstance(r, CausalResult)
    assert FIELDS <= {f.name for f in dataclasses.fields(r)}
    assert dataclasses.asdict(est) == before, "fit must not change the estimator"
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.estimate = 0.0  # type: ignore[misc]
    assert r.method == cls.method and r.n == 1500 and r.estimand == "ATE"
    assert r.se > 0 and r.ci_low < r.estimate < r.ci_high
    assert r.variance and isinstance(r.warnings, tuple)
    d = r.diagnostics
    assert {"balance", "overlap", "weights", "attrition", "models"} <= set(d)
    assert d["weights"]["ess"] > 0
    json.dumps(r.to_dict(), allow_nan=True)
    s = r.summary()
    assert cls.method in s.as_text() and "<table" in s.as_html()
    assert r.sensitivity["evalue_estimate"] >= 1


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.method)
def test_reproducible_and_att(cls, table):
    spec = dataclasses.replace(CONFOUNDED_SPEC, estimand="ATT")
    a, b = cls(seed=3).fit(table, spec), cls(seed=3).fit(table, spec)
    assert a.estimate == b.estimate and a.se == b.se and a.estimand == "ATT"


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.method)
def test_bootstrap_variance(cls, table):
    r = cls(variance="bootstrap", n_bootstrap=40, seed=5, n_jobs=2).fit(table, CONFOUNDED_SPEC)
    assert r.diagnostics["bootstrap"] == {"replicates": 40, "failed": 0, "seed": 5}
    one_worker = cls(variance="bootstrap", n_bootstrap=40, seed=5, n_jobs=1).fit(table, CONFOUNDED_SPEC)
    assert (one_worker.se, one_worker.ci_low, one_worker.ci_high) == (r.se, r.ci_low, r.ci_high)
    assert r.ci_low < r.estimate < r.ci_high and "bootstrap" in r.variance
    assert 0.6 < r.se / cls().fit(table, CONFOUNDED_SPEC).se < 1.6


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.method)
@pytest.mark.parametrize("rows", [0, 1])
def test_empty_and_one_row_inputs_raise_clear_errors(cls, rows, table):
    with pytest.raises(InputError, match="at least one treated and one untreated"):
        cls().fit(table.head(rows), CONFOUNDED_SPEC)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.method)
def test_invalid_settings_are_all_reported_at_fit(cls, table):
    est = cls(variance="nonsense", ci_level=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError) as err:
        est.fit(table, CONFOUNDED_SPEC)
    assert "variance='nonsense'" in str(err.value) and "ci_level=1.5" in str(err.value)


def test_missing_columns_are_listed(table):
    spec = dataclasses.replace(CONFOUNDED_SPEC, covariates=("L1", "nope", "L3"))
    with pytest.raises(InputError, match="nope"):
        IPW().fit(table, spec)


def test_runner_fits_every_method_on_the_same_rows(table):
    results = run_estimators(table, CONFOUNDED_SPEC)
    assert [r.method for r in results] == list(DEFAULT_METHODS)
    assert len({r.n for r in results}) == 1
    assert all(math.isfinite(r.estimate) for r in results)
