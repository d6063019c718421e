"""Meta-analysis reproduces metafor on the 13 BCG vaccine trials and agrees with statsmodels.

Data: Colditz et al. (1994), as metafor's ``dat.bcg`` (vaccinated TB+/TB−, control TB+/TB−);
log relative risks and their sampling variances as ``escalc(measure = "RR")`` computes them.
Reference values are metafor's printed output (``rma(yi, vi, method = "FE" | "DL" | "REML")``,
``confint()``, ``predict()``), to the printed precision.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.meta_analysis import combine_effects

from ketaweight.core.errors import InputError
from ketaweight.network.meta import meta_analyze

BCG = [(4, 119, 11, 128), (6, 300, 29, 274), (3, 228, 11, 209), (62, 13536, 248, 12619), (33, 5036, 47, 5761),
       (180, 1361, 372, 1079), (8, 2537, 10, 619), (505, 87886, 499, 87892), (29, 7470, 45, 7232),
       (17, 1699, 65, 1600), (186, 50448, 141, 27197), (5, 2493, 3, 2338), (27, 16886, 29, 17825)]


@pytest.fixture(scope="module")
def bcg() -> tuple[np.ndarray, np.ndarray]:
    a, b, c, d = (np.array(x, dtype=float) for x in zip(*BCG))
    yi = np.log((a / (a + b)) / (c / (c + d)))
    vi = 1 / a - 1 / (a + b) + 1 / c - 1 / (c + d)
    return yi, vi


def test_fixed_effect_reproduces_metafor(bcg):
    yi, vi = bcg
    r = meta_analyze(yi, np.sqrt(vi), method="fixed")
    assert (round(r.estimate, 4), round(r.ci_low, 4), round(r.ci_high, 4)) == (-0.4303, -0.5097, -0.3509)
    assert round(r.q, 2) == 152.23 and r.q_df == 12 and r.q_p < 1e-4
    assert round(r.i2, 2) == 92.12 and round(r.h2, 2) == 12.69
    assert r.prediction_low is None and r.tau2 == 0


def test_dersimonian_laird_reproduces_metafor(bcg):
    yi, vi = bcg
    r = meta_analyze(yi, np.sqrt(vi), method="dl")
    assert (round(r.estimate, 4), round(r.ci_low, 4), round(r.ci_high, 4)) == (-0.7141, -1.0644, -0.3638)
    assert round(r.se, 4) == 0.1787 and round(r.tau2, 4) == 0.3088 and round(r.i2, 2) == 92.12


def test_reml_reproduces_metafor(bcg):
    yi, vi = bcg
    r = meta_analyze(yi, np.sqrt(vi), method="reml", prediction="normal")
    assert (round(r.estimate, 4), round(r.se, 4), round(r.tau2, 4)) == (-0.7145, 0.1798, 0.3132)
    assert (round(r.ci_low, 4), round(r.ci_high, 4)) == (-1.0669, -0.3622)
    assert round(r.tau2_se, 4) == 0.1664 and round(r.tau, 4) == 0.5597
    assert round(r.i2, 2) == 92.22 and round(r.h2, 2) == 12.86
    assert tuple(round(x, 4) for x in r.tau2_ci) == (0.1197, 1.1115)  # confint(): Q-profile
    # predict(res, transf = exp): prediction interval 0.15 to 1.55 on the risk-ratio scale
    assert (round(math.exp(r.prediction_low), 2), round(math.exp(r.prediction_high), 2)) == (0.15, 1.55)
    # rma(..., test = "knha"): Hartung–Knapp with t on 12 df
    hk = meta_analyze(yi, np.sqrt(vi), method="reml", hartung_knapp=True)
    assert (round(hk.ci_low, 4), round(hk.ci_high, 4)) == (-1.1084, -0.3206) and hk.df == 12
    assert hk.estimate == r.estimate


def test_prediction_interval_on_t_is_wider_than_on_the_normal(bcg):
    yi, vi = bcg
    t = meta_analyze(yi, np.sqrt(vi), method="reml")
    z = meta_analyze(yi, np.sqrt(vi), method="reml", prediction="normal")
    assert t.prediction_low < z.prediction_low < z.prediction_high < t.prediction_high
    half = (t.prediction_high - t.prediction_low) / 2
    from scipy import stats
    assert half == pytest.approx(stats.t.ppf(0.975, 11) * math.sqrt(t.tau2 + t.se**2), rel=1e-12)


@pytest.mark.parametrize(("ours", "theirs"), [("dl", "dl"), ("pm", "iterated")])
def test_agrees_with_statsmodels_where_the_methods_coincide(bcg, ours, theirs):
    yi, vi = bcg
    sm = combine_effects(yi, vi, method_re=theirs)
    fe = meta_analyze(yi, np.sqrt(vi), method="fixed")
    assert fe.estimate == pytest.approx(sm.mean_effect_fe, rel=1e-12)
    assert fe.se == pytest.approx(sm.sd_eff_w_fe, rel=1e-12)
    re = meta_analyze(yi, np.sqrt(vi), method=ours)
    assert re.tau2 == pytest.approx(sm.tau2, rel=1e-6)
    assert re.estimate == pytest.approx(sm.mean_effect_re, rel=1e-6)
    assert re.se == pytest.approx(sm.sd_eff_w_re, rel=1e-6)
    assert re.q == pytest.approx(sm.q, rel=1e-12)
    hk = meta_analyze(yi, np.sqrt(vi), method=ours, hartung_knapp=True)
    assert hk.se == pytest.approx(math.sqrt(sm.var_hksj_re), rel=1e-6)  # statsmodels' "random effect wls"


def test_hartung_knapp_floor_keeps_the_interval_from_narrowing():
    y, se = [0.1, 0.1001, 0.0999, 0.1], [0.05, 0.06, 0.05, 0.07]  # far more alike than their SEs say
    plain = meta_analyze(y, se, method="reml")
    hk = meta_analyze(y, se, method="reml", hartung_knapp=True)
    floor = meta_analyze(y, se, method="reml", hartung_knapp=True, hartung_knapp_floor=True)
    assert hk.se < 0.01 * plain.se and floor.se == pytest.approx(plain.se) and floor.df == 3
    assert "floored" in floor.variance


def test_homogeneous_sites_give_zero_tau2_and_the_fixed_effect():
    y, se = [0.1, 0.12, 0.09, 0.11], [0.05, 0.06, 0.05, 0.07]
    fe = meta_analyze(y, se, method="fixed")
    for m in ("dl", "reml", "pm"):
        r = meta_analyze(y, se, method=m)
        assert r.tau2 == 0 and r.estimate == pytest.approx(fe.estimate) and r.i2 == 0
        assert r.tau2_ci[0] == 0


def test_one_site_is_its_own_estimate():
    r = meta_analyze([0.3], [0.1], method="reml")
    assert (r.estimate, r.se, r.tau2, r.q, r.q_p) == (0.3, 0.1, 0.0, 0.0, None)
    assert r.prediction_low is None and r.tau2_ci is None


def test_bad_inputs_are_named():
    with pytest.raises(InputError) as exc:
        meta_analyze([0.1, float("nan"), 0.2], [0.1, 0.1, 0.0], labels=["a", "b", "c"])
    text = str(exc.value)
    assert "column 'b'" in text and "not a finite number" in text and "column 'c'" in text and "> 0" in text
    with pytest.raises(InputError):
        meta_analyze([], [])
    with pytest.raises(ValueError, match="method"):
        meta_analyze([0.1], [0.1], method="hunter-schmidt")  # type: ignore[arg-type]
