"""Flexible nuisance models (the stacked learner), TMLE, and the sequential outcome regression under
dropout that depends on a post-baseline variable."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from ketaweight.causal import AIPW, IPW, AnalysisSpec
from ketaweight.causal.data import prepare
from ketaweight.causal.learners import LooRidge, TreeFeatures, calibrate_logit, candidate, ensemble_weights, tree_rounds
from ketaweight.causal.nuisance import cross_fit, post_baseline_columns
from ketaweight.causal.runner import default_estimators, run_estimators
from ketaweight.causal.tmle import TMLE, fluctuate
from causal_synthetic import CONFOUNDED_SPEC, confounded_table


def threshold_table(n: int, seed: int) -> pd.DataFrame:
    """Confounding through a threshold and an interaction that no design column names; effect 1."""
    rng = np.random.default_rng(seed)
    l1, l2 = rng.normal(size=n), rng.normal(size=n)
    step = 1.5 * (l1 > 0.5) - 1.2 * ((l1 * l2) > 0.3)
    a = (rng.random(n) < 1 / (1 + np.exp(-(-0.5 + step)))).astype(float)
    y = 1.0 * a + 2 * step + 2 * np.sin(2 * l2) + rng.normal(size=n)
    return pd.DataFrame({"A": a, "Y": y, "L1": l1, "L2": l2})


THRESHOLD = AnalysisSpec(treatment="A", outcome="Y", covariates=("L1", "L2"))


@pytest.fixture(scope="module")
def threshold_data():
    return prepare(threshold_table(4000, 1), THRESHOLD)


def test_stacked_learner_removes_bias_the_linear_models_leave(threshold_data):
    linear = AIPW().fit(threshold_data)
    stacked = AIPW(learner="stacked").fit(threshold_data)
    assert abs(linear.estimate - 1.0) > 3 * linear.se  # both linear models are wrong: biased
    assert abs(stacked.estimate - 1.0) < 2.5 * stacked.se
    assert stacked.se < linear.se  # better outcome models, smaller variance
    report = stacked.diagnostics["learners"]
    assert report["learner"] == "stacked"
    assert report["candidates"] == dict.fromkeys(["propensity", "outcome (arm 1)", "outcome (arm 0)"], ["glm", "boosting"])
    for w in report["ensemble_weights"].values():
        assert sum(w) == pytest.approx(1.0) and min(w) >= 0
    assert report["ensemble_weights"]["propensity"][1] > 0.5  # the data chose the boosted model
    assert "propensity glm " in stacked.summary().as_text()


def test_augmented_learner_removes_the_bias_and_names_its_candidates(threshold_data):
    r = AIPW(learner="augmented").fit(threshold_data)
    assert abs(r.estimate - 1.0) < 2.5 * r.se
    report = r.diagnostics["learners"]
    assert report["learner"] == "augmented"
    assert report["candidates"]["propensity"] == ["leaf-glm", "leaf-glm-light"]
    assert report["candidates"]["outcome (arm 1)"] == ["glm", "boosting", "leaf-glm"]
    for part, w in report["ensemble_weights"].items():
        assert len(w) == len(report["candidates"][part]) and sum(w) == pytest.approx(1.0)
    # the data give the tree-augmented GLM a share of the outcome model (the threshold and product are its leaves)
    assert report["ensemble_weights"]["outcome (arm 0)"][2] > 0.1
    assert "propensity_calibration" not in report  # off unless asked for


def test_recalibrated_propensity_is_reported_and_moves_the_weights_toward_the_mean(threshold_data):
    plain, recal_est = AIPW(learner="augmented"), AIPW(learner="augmented", propensity_calibration="logistic")
    recal = recal_est.fit(threshold_data)
    slope = recal.diagnostics["learners"]["propensity_calibration"]["slope"]
    assert 0.5 < slope < 1.0  # the leaves' GLM over-fits: its held-out propensity is too extreme
    assert f"propensity recalibration slope {slope:.2f}" in recal.summary().as_text()
    split = np.random.SeedSequence(0).spawn(1)[0]
    e_plain, e_recal = (cross_fit(threshold_data, est.nuisance_settings(), split).e for est in (plain, recal_est))
    logit_sd = [float(np.std(np.log(e / (1 - e)))) for e in (e_plain, e_recal)]
    assert logit_sd[1] == pytest.approx(slope * logit_sd[0], rel=0.05)  # the same ranking, shrunk by the slope
    assert abs(recal.estimate - 1.0) < 2.5 * recal.se
    # the linear learner's held-out logistic is near calibrated already; the option applies to it too
    linear = AIPW(propensity_calibration="logistic").fit(threshold_data).diagnostics["learners"]
    assert linear["propensity_calibration"]["slope"] == pytest.approx(1.0, abs=0.1)
    with pytest.raises(ValueError, match="propensity_calibration"):
        AIPW(propensity_calibration="isotonic").fit(threshold_data)


def test_logit_recalibration_shrinks_too_extreme_probabilities():
    # held-out probabilities 1.5 times too extreme on the logit scale (an over-fitted model's): the fitted slope is
    # 1/1.5 (SE about 0.02 at 20,000 rows, so 0.05 is 2.5 SEs), and the recalibrated probabilities are the true ones
    rng = np.random.default_rng(3)
    z = rng.normal(scale=1.2, size=20_000)
    truth = 1 / (1 + np.exp(-(0.3 + z)))
    a = (rng.random(z.size) < truth).astype(float)
    too_extreme = 1 / (1 + np.exp(-1.5 * (0.3 + z)))
    fitted, intercept, slope = calibrate_logit(too_extreme, a)
    assert slope == pytest.approx(1 / 1.5, abs=0.05) and intercept == pytest.approx(0.0, abs=0.06)
    assert np.mean(np.abs(fitted - truth)) < 0.25 * np.mean(np.abs(too_extreme - truth))
    # calibrated input stays put (slope 1), and a separating input is refused, not turned into a number
    assert calibrate_logit(truth, a)[2] == pytest.approx(1.0, abs=0.05)
    with pytest.raises(ValueError, match="no overlap"):
        calibrate_logit(np.where(a == 1, 1 - 1e-6, 1e-6), a)


def test_tree_features_are_leaf_indicators_from_both_targets():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(600, 3))
    a = (rng.random(600) < 0.4).astype(float)
    y = np.where(rng.random(600) < 0.9, x[:, 0] * (x[:, 1] > 0) + rng.normal(size=600), np.nan)
    f = TreeFeatures(seed=0).fit(x, a, ~np.isnan(y), y)
    leaves = f.transform(rng.normal(size=(50, 3)))
    assert set(np.unique(leaves)) <= {0.0, 1.0}
    rounds = tree_rounds(600)  # 12: fewer trees than at 5,000 patients' folds (30)
    assert np.all(leaves.sum(axis=1) == 2 * rounds)  # one leaf per tree: as many treatment trees as outcome trees
    one_arm = TreeFeatures(seed=0).fit(x, np.zeros(600), ~np.isnan(y), y)  # no treatment trees without both arms
    assert np.all(one_arm.transform(x[:5]).sum(axis=1) == rounds)
    with pytest.raises(ValueError, match="needs the fold's tree features"):
        candidate("leaf-glm", "classifier", 0)


def test_tree_rounds_grow_with_the_training_rows_up_to_thirty():
    # 30 for a 5,000-patient cohort's folds (about 3,900 training rows), 10 for a 500-patient clinic's (about 390)
    assert [tree_rounds(n) for n in (3920, 10_000, 392, 600, 50)] == [30, 30, 10, 12, 5]
    assert all(tree_rounds(n) <= tree_rounds(n + 100) for n in range(50, 5000, 100))
    big, small = TreeFeatures(seed=0)._trees("regressor", 3920), TreeFeatures(seed=0)._trees("regressor", 392)
    # the same total step: fewer rounds take larger steps
    assert big.n_estimators * big.learning_rate == pytest.approx(small.n_estimators * small.learning_rate)
    assert big.learning_rate == 0.1  # the shipped grid checkpoints were made at 30 rounds of 0.1


def test_tree_features_encode_the_leaves_as_scikit_learns_one_hot_encoder():
    from sklearn.preprocessing import OneHotEncoder
    rng = np.random.default_rng(5)
    x = rng.normal(size=(800, 4))
    a = (rng.random(800) < 1 / (1 + np.exp(-x[:, 0]))).astype(float)
    y = x[:, 1] * (x[:, 2] > 0) + rng.normal(size=800)
    f = TreeFeatures(seed=1).fit(x, a, np.ones(800, dtype=bool), y)
    encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(f._leaves(x))
    far = rng.normal(scale=5.0, size=(300, 4))  # other rows, many in the outermost leaves
    for rows in (x, far):
        assert np.array_equal(f.transform(rows), encoder.transform(f._leaves(rows)))


def test_leave_one_out_ridge_is_scikit_learns_ridgecv():
    # a tree-augmented design: collinear one-hot blocks (each tree's leaves sum to 1) beside continuous columns
    from sklearn.linear_model import RidgeCV
    rng = np.random.default_rng(6)
    x = rng.normal(size=(1500, 3))
    a = (rng.random(1500) < 0.4).astype(float)
    y = 2 * (x[:, 0] > 0.3) + x[:, 1] * x[:, 2] + rng.normal(size=1500)
    design = np.column_stack([x, TreeFeatures(seed=0).fit(x, a, np.ones(1500, dtype=bool), y).transform(x)])
    for alphas in (np.logspace(-2, 4, 13), np.logspace(-4, 3, 8)):
        ours, sk = LooRidge(alphas).fit(design, y), RidgeCV(alphas=alphas).fit(design, y)
        assert ours.alpha_ == sk.alpha_
        # rounding only: both solve the same normal equations (different factorisations)
        assert np.max(np.abs(ours.predict(design) - sk.predict(design))) < 1e-9


def test_stacked_tmle_agrees_with_aipw_and_shares_its_nuisances(threshold_data):
    aipw, tmle = run_estimators(threshold_data, estimators=[AIPW(learner="stacked"), TMLE(learner="stacked")])
    assert tmle.estimate == pytest.approx(aipw.estimate, abs=0.25 * aipw.se)
    assert tmle.diagnostics["learners"] == aipw.diagnostics["learners"]  # one cross-fit, shared
    assert tmle.method == "tmle" and "TMLE" in tmle.variance


def test_stacked_learner_is_reproducible_from_the_seed(threshold_data):
    a = AIPW(learner="stacked", seed=3).fit(threshold_data)
    b = AIPW(learner="stacked", seed=3).fit(prepare(threshold_table(4000, 1), THRESHOLD))
    assert a.estimate == b.estimate and a.se == b.se


def test_repeated_cross_fitting_reports_the_median(threshold_data):
    r = AIPW(n_repeats=3).fit(threshold_data)
    assert len(r.diagnostics["split_estimates"]) == 3
    assert r.estimate == pytest.approx(np.median(r.diagnostics["split_estimates"]))
    assert "median over 3 splits" in r.variance


def test_ensemble_weights_pick_the_better_candidate():
    rng = np.random.default_rng(0)
    y = rng.normal(size=500)
    good, bad = y + rng.normal(scale=0.1, size=500), rng.normal(size=500)
    w = ensemble_weights(np.column_stack([bad, good]), y, "regressor")
    assert w[1] > 0.95 and w.sum() == pytest.approx(1.0)
    a = (rng.random(500) < 0.3).astype(float)
    p_good = np.where(a == 1, 0.9, 0.1)
    w = ensemble_weights(np.column_stack([np.full(500, 0.3), p_good]), a, "classifier")
    assert w[1] > 0.95


def test_fluctuation_solves_its_score_equation():
    rng = np.random.default_rng(1)
    q = rng.uniform(0.1, 0.9, 300)
    y = np.clip(q + rng.normal(scale=0.1, size=300) + 0.05, 0, 1)
    w = rng.uniform(0.5, 3, 300)
    eps = fluctuate(q, y, w)
    from scipy.special import expit, logit

    assert np.dot(w, y - expit(logit(q) + eps)) == pytest.approx(0.0, abs=1e-8)


def test_tmle_respects_the_outcome_range_and_refuses_the_ato():
    table = confounded_table(800, 1.0, 2)
    with pytest.raises(ValueError, match="'ATO' is not supported by tmle"):
        TMLE().fit(table, dataclasses.replace(CONFOUNDED_SPEC, estimand="ATO"))
    r = TMLE().fit(table, CONFOUNDED_SPEC)
    lo, hi = r.diagnostics["tmle"]["outcome_bounds"]
    assert lo == table["Y"].min() and hi == table["Y"].max()
    assert r.ci_low <= 1.0 <= r.ci_high


def dropout_table(n: int, seed: int) -> pd.DataFrame:
    """Dropout that depends on a post-baseline response V (which also predicts the outcome); effect 1.

    L ~ N(0,1); A ~ Bernoulli(expit(L)); V = A + L + N(0,1); Y = A + L + 2V + N(0,1) (so the total
    effect of A is 1 + 2 = 3); R ~ Bernoulli(expit(2 − 1.5V)): high responders drop out."""
    rng = np.random.default_rng(seed)
    lv = rng.normal(size=n)
    a = (rng.random(n) < 1 / (1 + np.exp(-lv))).astype(float)
    v = a + lv + rng.normal(size=n)
    y = a + lv + 2 * v + rng.normal(size=n)
    r = rng.random(n) < 1 / (1 + np.exp(-(2 - 1.5 * v)))
    return pd.DataFrame({"A": a, "L": lv, "V": v, "Y": np.where(r, y, np.nan), "C": (~r).astype(int)})


DROPOUT = AnalysisSpec(treatment="A", outcome="Y", covariates=("L",), censor="C", censor_covariates=("L", "V"))


def test_sequential_regression_under_dropout_that_depends_on_a_post_baseline_variable():
    data = prepare(dropout_table(6000, 3), DROPOUT)
    assert post_baseline_columns(data).size == 1
    for est in (AIPW(), TMLE(), AIPW(learner="stacked"), IPW()):
        r = est.fit(data)
        assert r.ci_low <= 3.0 <= r.ci_high, (est.method, r.estimate, r.se)
        if est.method != "ipw":
            assert r.diagnostics["learners"]["sequential_outcome_regression"] is True
        if getattr(est, "learner", "linear") != "linear":  # every weighted part names its candidates
            report = r.diagnostics["learners"]
            assert report["candidates"].keys() == report["ensemble_weights"].keys()
            assert "censoring" in report["candidates"]
    # ignoring V leaves dropout informative: the complete-case comparison is biased
    naive = AIPW().fit(dropout_table(6000, 3), dataclasses.replace(DROPOUT, censor_covariates=None))
    assert naive.ci_high < 3.0


def test_default_estimators_pass_the_learner_to_the_doubly_robust_ones():
    ests = default_estimators(methods=("ipw", "aipw", "tmle"), learner="stacked", n_repeats=2, truncate_by_arm=99)
    assert [getattr(e, "learner", None) for e in ests] == [None, "stacked", "stacked"]
    assert ests[0].truncate_by_arm == 99 and ests[2].n_repeats == 2
