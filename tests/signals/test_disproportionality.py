"""PRR, ROR, IC and Yates χ²: hand-computed tables and the published statin49 values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ketaweight.signals import disproportionality as dp
from ketaweight.signals.tables import from_contingency


def test_hand_computed_table():
    # a=10, b=20, c=30, d=40 (N=100): PRR = (10/30)/(30/70) = 7/9; ROR = 400/600 = 2/3
    a, b, c, d = 10, 20, 30, 40
    p = dp.prr(a, b, c, d)
    r = dp.ror(a, b, c, d)
    assert p["estimate"][0] == pytest.approx(7 / 9, rel=1e-12)
    assert r["estimate"][0] == pytest.approx(2 / 3, rel=1e-12)
    se = math.sqrt(1 / 10 - 1 / 30 + 1 / 30 - 1 / 70)
    assert p["ci_low"][0] == pytest.approx(7 / 9 * math.exp(-1.959963984540054 * se), rel=1e-9)
    se_r = math.sqrt(1 / 10 + 1 / 20 + 1 / 30 + 1 / 40)
    assert r["ci_high"][0] == pytest.approx(2 / 3 * math.exp(1.959963984540054 * se_r), rel=1e-9)
    # Yates: N(|ad-bc| - N/2)^2 / ((a+b)(c+d)(a+c)(b+d)) = 100*(200-50)^2/(30*70*40*60)
    assert dp.yates_chi2(a, b, c, d)[0] == pytest.approx(100 * 150**2 / (30 * 70 * 40 * 60), rel=1e-12)
    assert dp.expected_count(a, b, c, d)[0] == pytest.approx(30 * 40 / 100)


def test_zero_cells_are_undefined_unless_haldane():
    p = dp.prr(0, 10, 5, 100)
    assert np.isnan(p["estimate"][0]) and not p["haldane"][0]
    r = dp.ror(3, 10, 0, 100)
    assert np.isnan(r["estimate"][0])
    rh = dp.ror(3, 10, 0, 100, haldane=True)
    assert rh["haldane"][0]
    assert rh["estimate"][0] == pytest.approx(3.5 * 100.5 / (10.5 * 0.5))


def test_information_component_exact_interval():
    # IC = log2((a+.5)/(E+.5)); interval from Gamma(a+.5, rate E+.5) quantiles
    from scipy import stats

    ic = dp.information_component(5, 1.0)
    assert ic["estimate"][0] == pytest.approx(math.log2(5.5 / 1.5))
    assert ic["ci_low"][0] == pytest.approx(math.log2(stats.gamma.ppf(0.025, 5.5, scale=1 / 1.5) * 1.0 / 1.0) - math.log2(1.0), rel=1e-9)
    assert ic["ci_high"][0] == pytest.approx(math.log2(stats.gamma.ppf(0.975, 5.5, scale=1 / 1.5)), rel=1e-9)


def test_inconsistent_margins_raise():
    with pytest.raises(ValueError, match="negative"):
        dp.two_by_two(10, 5, 20, 100)


def test_statin49_atorvastatin_rhabdomyolysis(statin49):
    """DESIGN.md §6 / issue 5: a = 2041, E ≈ 112.06, PRR 19.24 (18.40–20.11), ROR 19.43 (18.58–20.32),
    IC 4.18 — published to 2 decimals, so the tolerance is 0.005."""
    t = from_contingency(statin49)
    pc = t.pair("atorvastatin", "rhabdomyolysis")
    assert pc.a == 2041
    assert pc.e == pytest.approx(112.06, abs=0.005)
    p = dp.prr(pc.a, pc.b, pc.c, pc.d)
    r = dp.ror(pc.a, pc.b, pc.c, pc.d)
    ic = dp.information_component(pc.a, pc.e)
    for got, want in ((p["estimate"], 19.24), (p["ci_low"], 18.40), (p["ci_high"], 20.11),
                      (r["estimate"], 19.43), (r["ci_low"], 18.58), (r["ci_high"], 20.32),
                      (ic["estimate"], 4.18)):
        assert got[0] == pytest.approx(want, abs=0.005)


@pytest.mark.peers
def test_prr_ror_equal_vigipy_on_statin49(statin49):
    """Where the definitions agree (no zero cells, so no Haldane correction in vigipy), our PRR and
    ROR with their 95% limits equal vigipy's to 1e-9 relative, on every cell of statin49."""
    vigipy = pytest.importorskip("vigipy")
    long = statin49.stack().reset_index()
    long.columns = ["AE", "name", "count"]
    long = long[long["count"] > 0]
    cont = vigipy.convert(long)
    kw = dict(min_events=1, decision_metric="rank", decision_thres=0)
    vp = vigipy.prr(cont, **kw).all_signals
    vr = vigipy.ror(cont, **kw).all_signals
    t = from_contingency(statin49)
    checked = 0
    for res, fn in ((vp, dp.prr), (vr, dp.ror)):
        est_col = "PRR" if fn is dp.prr else "ROR"
        for _, row in res.iterrows():
            pc = t.pair(str(row["Product"]).lower(), str(row["Adverse Event"]).lower())
            if min(pc.a, pc.b, pc.c, pc.d) == 0:
                continue  # vigipy applies the Haldane correction there; we report undefined
            ours = fn(pc.a, pc.b, pc.c, pc.d)
            assert ours["estimate"][0] == pytest.approx(row[est_col], rel=1e-9)
            assert ours["ci_low"][0] == pytest.approx(row["CI Lower"] if "CI Lower" in row else row["LowerBound"], rel=1e-6)
            checked += 1
    assert checked > 300
