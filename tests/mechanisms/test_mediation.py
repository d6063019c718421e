"""Mediation by g-computation: analytic truths on linear structural models, then the simulator.

Synthetic fixture (truth by hand): L ~ N(0, 1); A ~ Bernoulli(expit(0.5 L));
M1 = 1 + 2A + 0.5L + e (pathway "p1"), M2 = −1A + 0.8·M1 + 0.3L + e (pathway "p1", after M1),
M3 = 1.5A + 0.2L + e (pathway "p2"); Y = 0.7A + 0.4·M1 + 0.5·M2 + 1.0·M3 + 0.6·A·M3 + L + e.
Mediator means under treatment a_j: E[M1] = 1 + 2a₁, E[M2] = −a₁ + 0.8(1 + 2a₁), E[M3] = 1.5a₂
(E L = 0).  With a_Y = 1 the outcome slope on M3 is 1.6.  Hence
IE_p1 = 0.4·2 + 0.5·(−1 + 1.6) = 1.1, IE_p2 = 1.6·1.5 = 2.4,
DE = 0.7 + 0.6·E[M3 | a₂ = 0] = 0.7, TE = 1.1 + 2.4 + 0.7 = 4.2.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from ketaweight.mechanisms.mediation import ASSUMPTIONS, Mediation, MediationSpec, Pathway
from ketaweight.core.errors import InputError

TRUTH = {"total": 4.2, "direct": 0.7, "p1": 1.1, "p2": 2.4}


def linear_sem(n: int, seed: int, missing: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    l = rng.normal(size=n)
    a = (rng.random(n) < expit(0.5 * l)).astype(float)
    m1 = 1 + 2 * a + 0.5 * l + rng.normal(size=n)
    m2 = -a + 0.8 * m1 + 0.3 * l + rng.normal(size=n)
    m3 = 1.5 * a + 0.2 * l + rng.normal(size=n)
    w = rng.normal(size=n)  # prognostic for Y, independent of A, L, M; predicts missingness (MAR given A, L, W)
    y = 0.7 * a + 0.4 * m1 + 0.5 * m2 + m3 + 0.6 * a * m3 + l + 1.5 * w + rng.normal(size=n)
    frame = pd.DataFrame({"a": a, "l": l, "m1": m1, "m2": m2, "m3": m3, "y": y, "w": w})
    if missing:
        lost = rng.random(n) < expit(np.log(missing / (1 - missing)) + 2 * w - a)  # logistic, as the model
        frame.loc[lost, "y"] = np.nan
    return frame


SPEC = MediationSpec(treatment="a", outcome="y", covariates=("l",),
                     pathways=(Pathway("p1", ("m1", "m2")), Pathway("p2", ("m3",))))


def test_linear_sem_recovers_analytic_effects():
    r = Mediation(n_bootstrap=200, seed=1).fit(linear_sem(20_000, 0), SPEC)
    got = {"total": r.total, "direct": r.direct, **r.pathways}
    for name, truth in TRUTH.items():
        assert got[name].estimate == pytest.approx(truth, abs=4 * got[name].se), name
        assert got[name].ci_low < truth < got[name].ci_high, name
    # the decomposition adds up; the interaction remainder is 0 for models linear in the mediators
    assert r.interaction.estimate == pytest.approx(0.0, abs=1e-9)
    assert r.total.estimate == pytest.approx(r.direct.estimate + sum(e.estimate for e in r.pathways.values()), abs=1e-9)
    assert r.assumptions == ASSUMPTIONS and len(r.assumptions) >= 8


def test_missing_outcome_reweighted_by_completeness_model():
    """Outcome missing at random given (A, W), W prognostic but outside the confounders: complete
    cases bias the direct effect (selection on W differs by arm); weighting by
    P(complete | A, L, W) removes the bias (every effect within its CI of the truth)."""
    data = linear_sem(20_000, 5, missing=0.3)
    spec = MediationSpec(**{**SPEC.to_dict(), "pathways": SPEC.pathways, "censor_covariates": ("w",)})
    r = Mediation(n_bootstrap=200, seed=2).fit(data, spec)
    assert r.diagnostics["completeness_weights"] and r.diagnostics["n_complete"] < 20_000
    got = {"total": r.total, "direct": r.direct, **r.pathways}
    for name, truth in TRUTH.items():
        assert got[name].ci_low < truth < got[name].ci_high, name
    naive = Mediation(n_bootstrap=200, seed=2).fit(data, SPEC)
    assert not naive.direct.ci_low < TRUTH["direct"] < naive.direct.ci_high


def test_bootstrap_is_seeded_and_worker_independent():
    data = linear_sem(2000, 3)
    one = Mediation(n_bootstrap=50, seed=9, n_jobs=1).fit(data, SPEC)
    two = Mediation(n_bootstrap=50, seed=9, n_jobs=2).fit(data, SPEC)
    assert [e.ci_low for e in one.effects] == [e.ci_low for e in two.effects]
    other = Mediation(n_bootstrap=50, seed=10).fit(data, SPEC)
    assert one.total.ci_low != other.total.ci_low


def test_bootstrap_se_matches_monte_carlo_sd():
    """Bootstrap SE of IE_p2 against the SD over 100 fresh samples of n = 2000 (within 20%)."""
    est = [Mediation(n_bootstrap=2, seed=s).fit(linear_sem(2000, 100 + s), SPEC).pathways["p2"].estimate for s in range(100)]
    r = Mediation(n_bootstrap=300, seed=0).fit(linear_sem(2000, 7), SPEC)
    assert r.pathways["p2"].se == pytest.approx(np.std(est, ddof=1), rel=0.2)


def test_spec_errors():
    with pytest.raises(ValueError, match="both a mediator"):
        MediationSpec(treatment="a", outcome="y", covariates=("l", "m1"), pathways=(Pathway("p", ("m1",)),))
    with pytest.raises(ValueError, match="pathway names"):
        MediationSpec(treatment="a", outcome="y", covariates=("l",), pathways=(Pathway("direct", ("m1",)),))
    with pytest.raises(InputError, match="column not found"):
        Mediation(n_bootstrap=2).fit(linear_sem(100, 0).drop(columns="m3"), SPEC)


@pytest.mark.parametrize("interaction", [False, True])
def test_single_mediator_equals_product_of_coefficients_from_statsmodels(interaction):
    """One mediator, linear models: IE = a·(b + b_AM) (Imai, Keele & Tingley 2010's ACME(treated)),
    DE = θ_A + b_AM·E[M | A = 0] — computed from statsmodels OLS fits of the same models (to 1e-8)."""
    import statsmodels.formula.api as smf

    data = linear_sem(3000, 4)
    spec = MediationSpec(treatment="a", outcome="y", covariates=("l",), pathways=(Pathway("p", ("m3",)),))
    r = Mediation(n_bootstrap=2, interaction=interaction).fit(data, spec)
    med = smf.ols("m3 ~ l + a", data).fit()
    out = smf.ols("y ~ l + a + m3" + (" + a:m3" if interaction else ""), data).fit()
    b_am = out.params["a:m3"] if interaction else 0.0
    m0 = med.params["Intercept"] + med.params["l"] * data["l"].mean()
    assert r.pathways["p"].estimate == pytest.approx(med.params["a"] * (out.params["m3"] + b_am), abs=1e-8)
    assert r.direct.estimate == pytest.approx(out.params["a"] + b_am * m0, abs=1e-8)


def test_intermediate_confounder_of_mediator_and_outcome():
    """Z (e.g. sessions) is caused by A and causes both M and Y:
    Z = 1 + A + 0.3L + e, M = 0.5A + 0.8Z + 0.2L + e, Y = 0.4A + 0.6Z + M + L + e.
    Interventional effects (Z at the outcome's treatment level, M marginal over Z):
    E[M | a] = 0.8 + 1.3a, so IE = 1.3, DE = 0.4 + 0.6 = 1.0, TE = 2.3.  Declaring Z recovers
    them; leaving Z out confounds M → Y and overstates the indirect effect."""
    rng = np.random.default_rng(8)
    n = 20_000
    l = rng.normal(size=n)
    a = (rng.random(n) < expit(0.5 * l)).astype(float)
    z = 1 + a + 0.3 * l + rng.normal(size=n)
    m = 0.5 * a + 0.8 * z + 0.2 * l + rng.normal(size=n)
    y = 0.4 * a + 0.6 * z + m + l + rng.normal(size=n)
    data = pd.DataFrame({"a": a, "l": l, "z": z, "m": m, "y": y})
    base = dict(treatment="a", outcome="y", covariates=("l",), pathways=(Pathway("p", ("m",)),))
    r = Mediation(n_bootstrap=200, seed=3).fit(data, MediationSpec(**base, intermediate=("z",)))  # Z in the outcome model too
    for got, truth in ((r.pathways["p"], 1.3), (r.direct, 1.0), (r.total, 2.3)):
        assert got.ci_low < truth < got.ci_high, got.estimand
    naive = Mediation(n_bootstrap=200, seed=3).fit(data, MediationSpec(**base))
    assert naive.pathways["p"].ci_low > 1.3 + 0.1
    # Declared as confounding the mediators only, Z's direct path to Y is missed: the IE is overstated too.
    mediators_only = Mediation(n_bootstrap=200, seed=3).fit(
        data, MediationSpec(**base, intermediate=("z",), intermediate_in_outcome=False))
    assert mediators_only.pathways["p"].ci_low > 1.3 + 0.1


def test_intermediate_confounder_of_two_mediators():
    """Course intensity Z (caused by A) moves mood M1 and intake M2, and M1 has no effect on M2 or Y:
    Z = 2A + e, M1 = −A − 0.5Z + 0.3L + e, M2 = −1.0Z + 0.2L + e, Y = 0.5A + 0.3·M2 + L + e.
    Interventional truth: via mood 0, via intake 0.3·(−1.0·2) = −0.6, direct 0.5.  With Z in the
    mediator models the mood pathway is ~0; without, M1 → M2 looks causal (both move with Z) and
    the mood pathway is spuriously negative."""
    rng = np.random.default_rng(23)
    n = 20_000
    l = rng.normal(size=n)
    a = (rng.random(n) < expit(0.4 * l)).astype(float)
    z = 2 * a + rng.normal(size=n)
    m1 = -a - 0.5 * z + 0.3 * l + rng.normal(size=n)
    m2 = -1.0 * z + 0.2 * l + rng.normal(size=n)
    y = 0.5 * a + 0.3 * m2 + l + rng.normal(size=n)
    data = pd.DataFrame({"a": a, "l": l, "z": z, "m1": m1, "m2": m2, "y": y})
    base = dict(treatment="a", outcome="y", covariates=("l",), pathways=(Pathway("mood", ("m1",)), Pathway("intake", ("m2",))))
    for in_outcome in (False, True):  # Z has no path to Y here: both settings are right, one more precise
        r = Mediation(n_bootstrap=200, seed=4).fit(data, MediationSpec(**base, intermediate=("z",),
                                                                       intermediate_in_outcome=in_outcome))
        for got, truth in ((r.pathways["mood"], 0.0), (r.pathways["intake"], -0.6), (r.direct, 0.5), (r.total, -0.1)):
            assert got.ci_low < truth < got.ci_high, (in_outcome, got.estimand)
        # the diagnostic is the treatment's whole effect on each mediator: M1 −1 − 0.5·2 = −2, M2 −2
        effects = [m["effect_of_treatment"] for m in r.diagnostics["mediators"]]
        assert effects == pytest.approx([-2.0, -2.0], abs=0.1)
    naive = Mediation(n_bootstrap=200, seed=4).fit(data, MediationSpec(**base))
    assert naive.pathways["mood"].ci_high < -0.05


def test_text_and_html_summaries_list_every_effect():
    r = Mediation(n_bootstrap=20).fit(linear_sem(500, 1), SPEC)
    text, page = r.summary().as_text(), r.summary().as_html()
    for e in r.effects:
        assert e.estimand in text and e.estimand in page
    assert page.count("<li>") == len(ASSUMPTIONS)


# Regression calibration of an error-prone mediator on a validation substudy.
#
# The linear SEM of ``test_mediation`` (truth by hand: IE_p2 = 2.4) with M3 recorded only as
# M3* = M3 + N(0, 2²) for everyone (reliability var(M3)/var(M3*) ≈ 0.3) and M3 itself for a random
# 10 % (the substudy).  The naive analysis attenuates p2 toward 0 and moves the rest into the direct
# effect; calibrating on the substudy recovers p2 and the direct effect within their CIs, and the CIs
# widen by the substudy's uncertainty (bootstrap refits the calibration model).

PATHWAYS = (Pathway("p1", ("m1", "m2")), Pathway("p2", ("m3",)))


def noisy(n: int, seed: int, share: float = 0.10):
    frame = linear_sem(n, seed)
    rng = np.random.default_rng(seed + 1000)
    frame["m3_ref"] = np.where(rng.random(n) < share, frame["m3"], np.nan)
    frame["m3"] = frame["m3"] + rng.normal(scale=2.0, size=n)
    return frame


def test_calibration_recovers_the_attenuated_pathway():
    data = noisy(20_000, 0)
    naive = Mediation(n_bootstrap=200, seed=1).fit(data, MediationSpec(treatment="a", outcome="y", covariates=("l",),
                                                                        pathways=PATHWAYS))
    assert naive.pathways["p2"].ci_high < TRUTH["p2"]  # attenuated: the error drains p2 into "direct"
    assert naive.direct.ci_low > TRUTH["direct"]
    spec = MediationSpec(treatment="a", outcome="y", covariates=("l",), pathways=PATHWAYS, validation={"m3": "m3_ref"})
    r = Mediation(n_bootstrap=200, seed=1).fit(data, spec)
    for name, effect in (("p2", r.pathways["p2"]), ("direct", r.direct), ("p1", r.pathways["p1"]), ("total", r.total)):
        assert effect.ci_low < TRUTH[name] < effect.ci_high, name
    assert r.pathways["p2"].estimate == pytest.approx(TRUTH["p2"], rel=0.10)
    cal = r.diagnostics["calibration"]
    assert cal["reference_columns"] == {"m3": "m3_ref"}
    assert 1700 < cal["mediators"]["m3"]["n_fit"] < 2300 and 0.2 < cal["mediators"]["m3"]["r2"] < 0.6
    assert r.pathways["p2"].ci_high - r.pathways["p2"].ci_low > naive.pathways["p2"].ci_high - naive.pathways["p2"].ci_low
    assert any(step["step"] == "validation substudy" for step in r.diagnostics["attrition"])


def test_validation_must_name_a_mediator_and_a_column():
    with pytest.raises(ValueError, match="not mediators"):
        MediationSpec(treatment="a", outcome="y", covariates=("l",), pathways=PATHWAYS, validation={"l": "m3_ref"})
    spec = MediationSpec(treatment="a", outcome="y", covariates=("l",), pathways=PATHWAYS, validation={"m3": "m3_rfe"})
    with pytest.raises(InputError, match="m3_rfe"):
        Mediation(n_bootstrap=50, seed=1).fit(noisy(500, 1), spec)


def test_a_substudy_too_small_is_refused_not_estimated():
    spec = MediationSpec(treatment="a", outcome="y", covariates=("l",), pathways=PATHWAYS, validation={"m3": "m3_ref"})
    with pytest.raises((ValueError, ArithmeticError), match="substudy"):
        Mediation(n_bootstrap=50, seed=1).fit(noisy(1000, 2, share=0.01), spec)


def noisy_by_arm(n: int, seed: int, share: float = 0.10):
    """As :func:`noisy`, with an error that differs by arm: M3* = M3·(1 − 0.4A) + N(0, (1 + 1.5A)²) (treated
    records shrink the change and are noisier, as under-reporting that scales with a drug-induced change)."""
    frame = linear_sem(n, seed)
    rng = np.random.default_rng(seed + 1000)
    frame["m3_ref"] = np.where(rng.random(n) < share, frame["m3"], np.nan)
    a = frame["a"].to_numpy()
    frame["m3"] = frame["m3"] * (1 - 0.4 * a) + rng.normal(scale=1.0 + 1.5 * a, size=n)
    return frame


def test_calibration_interactions_when_the_error_differs_by_arm():
    """One pooled calibration model (the treatment as a main effect only) gets the slope on M3* wrong in both
    arms, and the outcome model's A·M3 term inherits it: p2 lands more than 4 SE below its truth 2.4 (computed
    1.77, SE 0.13).  With the records times the treatment (``"records"``, the default) or one model per arm
    (``"all"``), p2 and the direct effect are within 3 SE, and the result says how it calibrated."""
    data = noisy_by_arm(20_000, 0)
    fits = {how: Mediation(n_bootstrap=100, seed=1).fit(data, MediationSpec(
        treatment="a", outcome="y", covariates=("l",), pathways=PATHWAYS, validation={"m3": "m3_ref"},
        calibration_interactions=how)) for how in ("none", "records", "all")}
    pooled = fits["none"].pathways["p2"]
    assert pooled.estimate < TRUTH["p2"] - 4 * pooled.se
    for how in ("records", "all"):
        p2 = fits[how].pathways["p2"]
        assert abs(p2.estimate - TRUTH["p2"]) < 3 * p2.se, how
        assert abs(fits[how].direct.estimate - TRUTH["direct"]) < 3 * fits[how].direct.se, how
    assert [fits[h].diagnostics["calibration"]["interactions"] for h in fits] == ["none", "records", "all"]


def test_normal_and_percentile_intervals_come_from_the_same_bootstrap():
    """The default CI is the estimate ± 1.96 bootstrap SE (symmetric about the estimate); ``"percentile"`` takes
    the replicates' 2.5th and 97.5th percentiles of the same replicates, so estimates and SEs agree exactly and
    the percentile limits are not symmetric in general; an unknown method is refused."""
    data = linear_sem(5_000, 3)
    normal = Mediation(n_bootstrap=200, seed=4).fit(data, SPEC)
    pct = Mediation(n_bootstrap=200, seed=4, interval="percentile").fit(data, SPEC)
    for name in ("p1", "p2"):
        a, b = normal.pathways[name], pct.pathways[name]
        assert a.estimate == b.estimate and a.se == b.se
        assert a.ci_low == pytest.approx(a.estimate - 1.959964 * a.se, rel=1e-6)
        assert a.ci_high == pytest.approx(a.estimate + 1.959964 * a.se, rel=1e-6)
        assert (b.ci_low, b.ci_high) != (a.ci_low, a.ci_high)
    assert "percentile" in pct.total.variance and "z × bootstrap SE" in normal.total.variance
    with pytest.raises(ValueError, match="interval"):
        Mediation(n_bootstrap=50, seed=4, interval="bca").fit(data, SPEC)  # type: ignore[arg-type]
