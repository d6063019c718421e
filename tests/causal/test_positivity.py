"""Positivity tools: trimming (Crump et al.'s rule, common support), arm-specific truncation, overlap
weights (ATO) and the effective sample size per arm."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest

from ketaweight.causal import AIPW, IPW, AnalysisSpec
from ketaweight.causal.data import prepare
from ketaweight.causal.diagnostics import kish_ess, smd
from ketaweight.causal.positivity import Trimming, crump_alpha, trim, truncate_by_arm
from ketaweight.causal.runner import run_estimators
from ketaweight.causal.standardization import Standardization
from ketaweight.causal.weights import propensity_model, treatment_weights
from ketaweight.core.errors import KetaweightWarning, PositivityWarning
from causal_synthetic import CONFOUNDED_SPEC, confounded_table


def poor_overlap_table(n: int, seed: int) -> pd.DataFrame:
    """A strong confounder: P(A=1 | L) = expit(−1 + 3L), so many rows sit near e = 0 or 1; effect 2."""
    rng = np.random.default_rng(seed)
    lv = rng.normal(size=n)
    a = (rng.random(n) < 1 / (1 + np.exp(1 - 3 * lv))).astype(float)
    y = 2.0 * a + 1.5 * lv + rng.normal(size=n)
    return pd.DataFrame({"A": a, "Y": y, "L": lv})


POOR = AnalysisSpec(treatment="A", outcome="Y", covariates=("L",))


def test_crump_alpha_solves_its_defining_equation():
    e = propensity_model(prepare(poor_overlap_table(4000, 1), POOR)).fit.fitted
    alpha = crump_alpha(e)
    assert 0.02 < alpha < 0.2
    gamma = 1 / (alpha * (1 - alpha))
    g = 1 / (e * (1 - e))
    # γ = 2·E[g | g ≤ γ] up to the spacing of the sorted g (Crump, Hotz, Imbens & Mitnik 2009, Theorem 1)
    assert gamma == pytest.approx(2 * g[g <= gamma].mean(), rel=0.01)


def test_crump_alpha_is_zero_with_good_overlap():
    assert crump_alpha(np.linspace(0.3, 0.7, 500)) == 0.0


def test_trimming_is_a_counted_step_and_every_result_says_so():
    table = poor_overlap_table(3000, 2)
    results = run_estimators(table, POOR, [IPW(), AIPW()], trimming=Trimming(rule="crump"))
    for r in results:
        t = r.diagnostics["trimming"]
        lo, hi = t["bounds"]
        assert t["rule"] == "crump" and lo == pytest.approx(t["alpha"]) and hi == pytest.approx(1 - t["alpha"])
        assert t["n_excluded"] > 100 and r.n == 3000 - t["n_excluded"]
        assert t["treated"]["n_excluded"] + t["control"]["n_excluded"] == t["n_excluded"]
        assert "trimmed population" in t["estimand"]
        step = r.diagnostics["attrition"][-1]
        assert step["step"] == "trimming" and step["n_after"] == r.n
        assert r.diagnostics["overlap"]["treated"][0] >= lo - 0.02  # propensities refitted on the trimmed rows
    text = results[0].summary().as_text()
    assert "population trimmed" in text and "Crump" in text


def test_common_support_rule_keeps_the_overlap_of_the_arms():
    data = prepare(poor_overlap_table(2000, 3), POOR)
    e = propensity_model(data).fit.fitted
    trimmed = trim(data, Trimming(rule="common-support"))
    lo, hi = trimmed.trimming["bounds"]
    assert lo == pytest.approx(max(e[data.a == 1].min(), e[data.a == 0].min()))
    assert hi == pytest.approx(min(e[data.a == 1].max(), e[data.a == 0].max()))
    assert trimmed.n == int(((e >= lo) & (e <= hi)).sum())


def test_fixed_trimming_and_bad_settings():
    data = prepare(poor_overlap_table(2000, 4), POOR)
    assert trim(data, Trimming(rule="fixed", alpha=0.1)).trimming["bounds"] == [0.1, 0.9]
    assert trim(data, Trimming()) is data
    with pytest.raises(ValueError, match="alpha"):
        Trimming(rule="fixed", alpha=0.7)
    with pytest.raises(ValueError, match="not one of"):
        Trimming(rule="crumpp")  # type: ignore[arg-type]


def test_trimming_recovers_the_effect_where_extreme_weights_are():
    table = poor_overlap_table(6000, 5)
    r = run_estimators(table, POOR, [AIPW()], trimming=Trimming(rule="crump"))[0]
    assert r.ci_low <= 2.0 <= r.ci_high  # constant effect: the trimmed population has it too


def test_overlap_weights_balance_every_design_column_exactly():
    """Li, Morgan & Zaslavsky (2018): with a logistic propensity, overlap weights give exact mean balance."""
    table = confounded_table(2000, effect=1.0, seed=7)
    data = prepare(table, dataclasses.replace(CONFOUNDED_SPEC, estimand="ATO"))
    e = propensity_model(data).fit.fitted
    w = treatment_weights(e, data.a, "ATO", stabilized=False)
    np.testing.assert_allclose(smd(data.x.matrix[:, 1:], data.a, w), 0.0, atol=1e-8)
    r = IPW().fit(data)
    assert r.estimand == "ATO" and r.diagnostics["balance"]["max_abs_smd_weighted"] < 1e-8


def test_overlap_weighted_estimators_are_unbiased_with_honest_standard_errors():
    """Constant effect 1, so ATO = ATE = 1: over 30 cohorts the mean estimate is within 3 Monte-Carlo SEs
    of 1 and the mean sandwich SE is within 25 % of the SD of the estimates."""
    spec = dataclasses.replace(CONFOUNDED_SPEC, estimand="ATO")
    for est in (IPW(), AIPW()):
        fits = [est.fit(confounded_table(1500, 1.0, s), spec) for s in range(30)]
        values = np.array([r.estimate for r in fits])
        assert abs(values.mean() - 1.0) < 3 * values.std(ddof=1) / np.sqrt(30), est.method
        assert np.mean([r.se for r in fits]) == pytest.approx(values.std(ddof=1), rel=0.25), est.method


def test_ato_is_refused_where_it_is_not_defined():
    with pytest.raises(ValueError, match="estimand 'ATO' is not supported by standardization"):
        Standardization().fit(confounded_table(300, 1.0, 1), dataclasses.replace(CONFOUNDED_SPEC, estimand="ATO"))


def test_truncation_by_arm_leaves_treated_weights_of_the_att_alone():
    table = poor_overlap_table(3000, 6)
    spec = dataclasses.replace(POOR, estimand="ATT")
    data = prepare(table, spec)
    e = propensity_model(data).fit.fitted
    w = treatment_weights(e, data.a, "ATT", stabilized=False)
    out, record = truncate_by_arm(w, data.a, "ATT", 95)
    assert np.all(out[data.a == 1] == 1.0) and set(record["arms"]) == {"control"}
    control = w[data.a == 0]
    cap = np.percentile(control, 95)
    assert record["arms"]["control"]["cap"] == pytest.approx(cap)
    assert record["arms"]["control"]["share_of_weight_removed"] == pytest.approx(
        (control.sum() - np.minimum(control, cap).sum()) / control.sum())
    r = IPW(truncate_by_arm=99).fit(data)
    assert r.diagnostics["truncation"]["kind"] == "by arm"
    assert "weights truncated within each weighted arm" in r.summary().as_text()


def test_pooled_truncation_with_the_att_warns_what_it_did_to_the_treated():
    """With 1 % treated, the pooled 99th percentile of ATT weights lies below the treated weight of 1."""
    rng = np.random.default_rng(8)
    lv = rng.normal(size=4000)
    a = (rng.random(4000) < 1 / (1 + np.exp(5.5 - 1.2 * lv))).astype(float)
    table = pd.DataFrame({"A": a, "Y": a + lv + rng.normal(size=4000), "L": lv})
    data = prepare(table, dataclasses.replace(POOR, estimand="ATT"))
    with pytest.warns(PositivityWarning, match="pooled percentile truncation"):
        r = IPW(truncate=(1, 99), stabilized=False).fit(data)
    assert r.diagnostics["truncation"]["arms"]["treated"]["share_of_weight_changed"] > 0.5
    by_arm = IPW(truncate_by_arm=99, stabilized=False).fit(data)
    assert set(by_arm.diagnostics["truncation"]["arms"]) == {"control"}


def test_truncation_settings_are_checked():
    data = prepare(poor_overlap_table(500, 1), POOR)
    with pytest.raises(ValueError, match="not both"):
        IPW(truncate=(1, 99), truncate_by_arm=99).fit(data)
    with pytest.raises(ValueError, match="upper percentile"):
        IPW(truncate_by_arm=20).fit(data)


def test_ess_is_reported_per_arm():
    data = prepare(confounded_table(1500, 1.0, 11), CONFOUNDED_SPEC)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KetaweightWarning)
        r = IPW(stabilized=False).fit(data)
    e = propensity_model(data).fit.fitted
    w = treatment_weights(e, data.a, "ATE", stabilized=False)
    arms = r.diagnostics["weights"]["by_arm"]
    assert arms["treated"]["ess"] == pytest.approx(kish_ess(w[data.a == 1]))
    assert arms["control"]["ess"] == pytest.approx(kish_ess(w[data.a == 0]))
    assert arms["treated"]["n"] + arms["control"]["n"] == data.n
    cell = r.summary().rows[0][6]
    assert cell == f"{arms['treated']['ess']:.0f}/{arms['control']['ess']:.0f}"


def test_no_overlap_gives_no_number_from_the_doubly_robust_estimators():
    """A = 1[x > 0]: every propensity is 0 or 1.  AIPW and TMLE (linear nuisances) say they are undefined
    and give NaN, never an estimate from the remaining finite terms; Crump's rule refuses; common-support
    trimming says the arms do not overlap."""
    from ketaweight.causal import AIPW, TMLE, Trimming, prepare, trim
    from ketaweight.core.errors import InputError, PositivityWarning

    rng = np.random.default_rng(0)
    x = rng.normal(size=2000)
    a = (x > 0).astype(float)
    df = pd.DataFrame({"x": x, "a": a, "y": a + x + rng.normal(size=2000)})
    spec = AnalysisSpec(treatment="a", outcome="y", covariates=("x",))
    for est in (AIPW(), TMLE()):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            r = est.fit(df, spec)
        assert np.isnan(r.estimate) and np.isnan(r.ci_low) and np.isnan(r.se)
        messages = [str(w.message) for w in caught]
        assert any("undefined here" in m and "no overlap" in m for m in messages)
        assert all(issubclass(w.category, PositivityWarning) or "separates" in str(w.message) or "support" in str(w.message)
                   for w in caught), messages  # no numpy 'invalid value' noise
    with pytest.raises(InputError, match="no optimal trimming"):
        trim(prepare(df, spec), Trimming(rule="crump"))
    with pytest.raises(InputError, match="do not overlap"):
        trim(prepare(df, spec), Trimming(rule="common-support"))
