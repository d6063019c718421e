"""Empirical calibration: OHDSI EmpiricalCalibration's reference values, exact maximum likelihood,
and calibration that works (coverage, type-I error) when the controls are like the estimate."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import integrate, optimize, stats

from ketaweight.core.errors import InputError
from ketaweight.network.calibration import (
    CalibrationWarning, Controls, EmpiricalNull, calibrate, expected_absolute_systematic_error, fit_error_model,
    fit_null, null_to_error_model,
)


def simulate_controls(rng, n, mean, sd, true_effects=(0.0,), se=0.1, mean_slope=1.0, sd_slope=0.0):
    """As EmpiricalCalibration's simulateControls: error ~ N(mean + (slope−1)θ, (sd + sd_slope|θ|)²), SEs given."""
    t = np.repeat(np.asarray(true_effects, dtype=float), n)
    ses = np.full(len(t), se) if np.isscalar(se) else rng.choice(se, len(t))
    bias = rng.normal(mean + (mean_slope - 1) * t, sd + sd_slope * np.abs(t))
    return t, t + bias + rng.normal(0, ses), ses


def test_calibrated_p_with_a_zero_null_is_the_traditional_p():
    """EmpiricalCalibration's test: fitNull(c(0, 0), c(0, 0)) then calibrateP gives 0.045500266, 0.002699796."""
    null = EmpiricalNull(0.0, 0.0, 0.0, 2, 0.0)
    assert null.p_value(0.1, 0.05) == pytest.approx(0.045500266, abs=3e-9)  # R prints 8 significant digits
    assert null.p_value(0.3, 0.1) == pytest.approx(0.002699796, abs=1e-9)
    assert null.p_value(0.1, 0.05, two_sided=False) == pytest.approx(0.022750133, abs=3e-9)


def test_fit_null_is_the_maximum_likelihood():
    rng = np.random.default_rng(1)
    _, b, s = simulate_controls(rng, 40, 0.2, 0.15, se=rng.uniform(0.05, 0.3, 40))
    null = fit_null(b, s)

    def nll(p):
        return -np.sum(stats.norm.logpdf(b, p[0], np.sqrt(np.exp(2 * p[1]) + s**2)))

    brute = optimize.minimize(nll, [0.0, math.log(0.1)], method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12})
    assert null.log_likelihood >= -brute.fun - 1e-9
    assert null.mean == pytest.approx(brute.x[0], abs=1e-4) and null.sd == pytest.approx(math.exp(brute.x[1]), abs=1e-4)
    assert null.mean_se == pytest.approx(1 / math.sqrt(np.sum(1 / (null.sd**2 + s**2))))


def test_fit_null_recovers_a_known_null_and_finds_none_where_there_is_none():
    rng = np.random.default_rng(2)
    _, b, s = simulate_controls(rng, 2000, 0.2, 0.2, se=0.1)
    null = fit_null(b, s)
    assert null.mean == pytest.approx(0.2, abs=0.02) and null.sd == pytest.approx(0.2, abs=0.02)
    _, b, s = simulate_controls(rng, 200, 0.0, 0.0, se=0.1)  # random error only
    assert fit_null(b, s).sd < 0.03


def test_expected_absolute_systematic_error():
    for mu, sd in ((0.0, 0.3), (0.2, 0.1), (-0.5, 0.4)):
        numeric = integrate.quad(lambda x: abs(x) * stats.norm.pdf(x, mu, sd), -10, 10, points=[0])[0]
        assert expected_absolute_systematic_error(mu, sd) == pytest.approx(numeric, rel=1e-8)
    assert expected_absolute_systematic_error(0.0, 0.0) == 0 and expected_absolute_systematic_error(-0.3, 0.0) == 0.3
    assert EmpiricalNull(0.1, 0.2, 0.0, 30, 0.0).ease == expected_absolute_systematic_error(0.1, 0.2)


def test_null_based_interval_is_the_closed_form():
    null = EmpiricalNull(0.12, 0.08, 0.01, 30, 0.0)
    est, lo, hi = null_to_error_model(null).calibrate(-0.4, 0.05, 0.95)
    half = stats.norm.ppf(0.975) * math.hypot(0.08, 0.05)
    assert (est, lo, hi) == pytest.approx((-0.52, -0.52 - half, -0.52 + half), abs=1e-9)


def test_error_model_recovers_a_known_model():
    rng = np.random.default_rng(3)
    t, b, s = simulate_controls(rng, 600, 0.1, 0.15, true_effects=(0.0, -0.5, -1.0, -2.0), se=0.05,
                                mean_slope=0.9, sd_slope=0.05)
    m = fit_error_model(b, s, t)
    assert m.mean_intercept == pytest.approx(0.1, abs=0.02) and m.mean_slope == pytest.approx(0.9, abs=0.02)
    assert m.sd_intercept == pytest.approx(0.15, abs=0.02) and m.sd_slope == pytest.approx(0.05, abs=0.02)
    assert m.source == "negative and positive controls"


@pytest.mark.parametrize("true_effect", [0.0, -1.0])
def test_calibration_restores_coverage_and_type_i_error(true_effect):
    """Studies whose estimates carry systematic error N(0.15, 0.1²): uncalibrated 95% CIs (SE 0.05) miss
    the truth most of the time; CIs calibrated with 30 negative controls and 3×30 positive controls
    drawn from the same error distribution cover it about 95% of the time, and calibrated p-values
    reject a true null about 5% of the time."""
    rng = np.random.default_rng(4)
    covered, covered_raw, rejected = [], [], []
    for _ in range(200):
        t, b, s = simulate_controls(rng, 30, 0.15, 0.1, true_effects=(0.0, -0.5, -1.0, -2.0), se=0.05)
        controls = Controls.of([f"c{i}" for i in range(len(t))], t, b, s)
        est = true_effect + rng.normal(0.15, 0.1) + rng.normal(0, 0.05)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CalibrationWarning)
            cal = calibrate(est, 0.05, controls, with_leave_one_out=False)
        covered.append(cal.calibrated_ci_low <= true_effect <= cal.calibrated_ci_high)
        covered_raw.append(cal.ci_low <= true_effect <= cal.ci_high)
        rejected.append(cal.calibrated_p < 0.05)
    assert np.mean(covered_raw) < 0.5
    assert 0.91 <= np.mean(covered) <= 0.985
    if true_effect == 0.0:
        assert np.mean(rejected) <= 0.09


def test_leave_one_out_leaves_a_control_out_with_its_positive_controls():
    rng = np.random.default_rng(5)
    t, b, s = simulate_controls(rng, 25, 0.1, 0.1, true_effects=(0.0, -1.0), se=0.05)
    groups = [f"nc{i % 25}" for i in range(len(t))]
    names = [f"nc{i % 25}" + ("" if t[i] == 0 else "+pc") for i in range(len(t))]
    cal = calibrate(0.3, 0.05, Controls.of(names, t, b, s, groups))
    loo = cal.loo
    assert len(loo.rows) == 50 and {r["group"] for r in loo.rows} == set(groups)
    cov = loo.coverage["0.95"]
    assert set(cov) == {"-1", "0"} and cov["0"]["n"] == 25
    assert cov["0"]["calibrated"] >= 0.8 > cov["0"]["uncalibrated"]
    assert loo.type_i["0.95"]["calibrated"] <= 0.2 < loo.type_i["0.95"]["uncalibrated"]


def test_warnings_for_few_and_imprecise_controls_and_a_refusal_for_none():
    rng = np.random.default_rng(6)
    t, b, s = simulate_controls(rng, 6, 0.0, 0.1, se=0.3)
    with pytest.warns(CalibrationWarning) as record:
        cal = calibrate(0.1, 0.05, Controls.of([f"c{i}" for i in range(6)], t, b, s), with_leave_one_out=False)
    text = " ".join(str(w.message) for w in record)
    assert "fewer than 10" in text and "imprecise" in text and "2×" in text
    assert len(cal.warnings) == 2 and cal.model.source.startswith("empirical null")
    with pytest.raises(InputError, match="at least 2"), warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationWarning)
        calibrate(0.1, 0.05, Controls.of(["a", "b"], [0, 0], [0.1, float("nan")], [0.1, 0.1]))
    with pytest.raises(InputError, match="finite"):
        calibrate(float("nan"), 0.05, Controls.of(["a", "b"], [0, 0], [0.1, 0.2], [0.1, 0.1]))
