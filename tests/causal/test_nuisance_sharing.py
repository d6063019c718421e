"""Cross-fitted propensity and censoring fits shared across analyses of one population (issue 13).

The network's negative controls and a study's negative control analyse other outcomes of the same
treatment on the same design: their propensity (and censoring) fits on one split are the same
computation, done once; the nuisances must be bit-for-bit those of a fresh fit."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ketaweight.causal import AIPW
from ketaweight.causal import nuisance
from ketaweight.causal.data import prepare
from ketaweight.causal.nuisance import NuisanceSettings, cross_fit


@pytest.fixture
def counted(monkeypatch):
    """fit_logistic calls made by the nuisance module, with a fresh shared-fit cache."""
    calls = []
    real = nuisance.fit_logistic

    def counting(x, y, **kw):
        calls.append(x.shape)
        return real(x, y, **kw)

    monkeypatch.setattr(nuisance, "fit_logistic", counting)
    monkeypatch.setattr(nuisance, "_FOLD_FITS", type(nuisance._FOLD_FITS)())
    return calls


def test_a_second_outcome_reuses_the_propensity_and_censoring_fits_exactly(nhefs, nhefs_spec, counted):
    table = nhefs.assign(other=nhefs["wt82_71"] * 0.5 + nhefs["age"])
    spec = nhefs_spec(censor="censored")
    first, second = prepare(table, spec), prepare(table, dataclasses.replace(spec, outcome="other"))
    split = np.random.SeedSequence(11).spawn(1)[0]
    settings = NuisanceSettings()
    a = cross_fit(first, settings, split)
    assert len(counted) == 10  # five folds' propensity + five folds' censoring
    b = cross_fit(second, settings, split)
    assert len(counted) == 10  # none again: same treatment, design, observed rows and split
    assert a.e.tobytes() == b.e.tobytes() and a.pi.tobytes() == b.pi.tobytes()
    assert [m.name for m in b.models] == [m.name for m in a.models]
    assert [m.name for m in a.models][:4] == ["propensity (fold 1)", "censoring (fold 1)", "propensity (fold 2)",
                                              "censoring (fold 2)"]
    nuisance._FOLD_FITS.clear()
    fresh = cross_fit(prepare(table, dataclasses.replace(spec, outcome="other")), settings, split)
    assert len(counted) == 20
    assert fresh.e.tobytes() == b.e.tobytes() and fresh.pi.tobytes() == b.pi.tobytes()
    assert all(np.array_equal(f.coef, g.coef) for f, g in zip(fresh.models, b.models))
    assert b.q[1].tobytes() == fresh.q[1].tobytes() and not np.array_equal(a.q[1], b.q[1])


def test_another_split_or_other_rows_are_fitted_anew(nhefs, nhefs_spec, counted):
    spec = nhefs_spec(censor="censored")
    data = prepare(nhefs, spec)
    one, two = np.random.SeedSequence(3).spawn(2)
    cross_fit(data, NuisanceSettings(), one)
    cross_fit(data, NuisanceSettings(), two)
    assert len(counted) == 20
    cross_fit(data.subset(np.arange(data.n - 1)), NuisanceSettings(), one)
    assert len(counted) == 30


def test_aipw_of_a_negative_control_outcome_matches_a_fresh_process(nhefs, nhefs_spec, counted):
    """The estimate with shared fits equals the one with the cache emptied first (to the last digit)."""
    table = nhefs.assign(other=nhefs["smokeyrs"] * 0.1)
    spec = nhefs_spec(censor="censored")
    AIPW(n_repeats=2).fit(table, spec)
    shared = AIPW(n_repeats=2).fit(table, dataclasses.replace(spec, outcome="other"))
    nuisance._FOLD_FITS.clear()
    fresh = AIPW(n_repeats=2).fit(table, dataclasses.replace(spec, outcome="other"))
    assert (shared.estimate, shared.se) == (fresh.estimate, fresh.se)


def test_the_shared_fits_keep_predictions_and_coefficients_only(nhefs, nhefs_spec, counted):
    """No design matrix is held (at 1,000,000 rows the fold copies were gigabytes): a cached entry is
    the out-of-fold predictions (8 bytes a row) and per fold a few numbers."""
    data = prepare(nhefs, nhefs_spec(censor="censored"))
    cf = cross_fit(data, NuisanceSettings(), np.random.SeedSequence(5).spawn(1)[0])
    assert len(nuisance._FOLD_FITS) == 2  # propensity and censoring
    for pred, facts in nuisance._FOLD_FITS.values():
        assert pred.shape == (data.n,) and len(facts) == 5
        assert all(not any(isinstance(v, np.ndarray) and v.size > data.x.matrix.shape[1] + 1
                           for v in vars(f).values()) for f in facts)
    assert [m.n_parameters for m in cf.models[::2]] == [data.x.matrix.shape[1]] * 5


def test_estimators_on_one_data_object_fit_its_propensity_and_censoring_models_once(nhefs, nhefs_spec, monkeypatch):
    """Crude, standardization and IPW report the same propensity model, IPW and g-estimation the same
    censoring model: fitted once per prepared data object, with the numbers of separate fits."""
    from ketaweight.causal import weights
    from ketaweight.causal.runner import default_estimators, run_estimators

    calls = []
    real = weights.fit_logistic
    monkeypatch.setattr(weights, "fit_logistic", lambda x, y, **kw: calls.append(x.shape) or real(x, y, **kw))
    spec = nhefs_spec(censor="censored")
    methods = ("crude", "standardization", "ipw", "g-estimation")
    shared = run_estimators(prepare(nhefs, spec), estimators=default_estimators(methods=methods))
    assert len(calls) == 2  # one propensity, one censoring model (g-estimation's weighted propensity is its own)
    separate = [run_estimators(prepare(nhefs, spec), estimators=default_estimators(methods=(m,)))[0] for m in methods]
    assert len(calls) == 2 + 1 + 1 + 2 + 1
    assert [(r.estimate, r.se) for r in shared] == [(r.estimate, r.se) for r in separate]
    data = prepare(nhefs, spec)
    assert weights.propensity_model(data) is weights.propensity_model(data)
    assert weights.propensity_model(data.subset(np.arange(data.n))) is not weights.propensity_model(data)
