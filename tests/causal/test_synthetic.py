"""Known truth: a null effect and a non-null effect with real confounding (data generated here).

The cohort (``causal_synthetic.confounded_table``) has a crude bias of about +1.3 kg, so
the crude CI must miss the truth while every adjusted estimator's 95% CI covers it.  Seeds
are fixed; the checks could fail (coverage is 95%, not 100%), which is why they run on one
stated seed and n = 4000 rather than on many draws.
"""

from __future__ import annotations

import pytest

from causal_synthetic import CONFOUNDED_SPEC, confounded_table
from ketaweight.causal import AIPW, IPW, Crude, GEstimation, Standardization, negative_control

ADJUSTED = [Standardization(), IPW(), AIPW(), GEstimation(), IPW(variance="bootstrap", n_bootstrap=200, seed=1)]


@pytest.mark.parametrize("truth", [0.0, -2.0])
def test_adjusted_cis_cover_truth_and_crude_is_biased(truth):
    table = confounded_table(4000, effect=truth, seed=2024)
    crude = Crude().fit(table, CONFOUNDED_SPEC)
    assert crude.estimate - truth > 1.0 and not (crude.ci_low <= truth <= crude.ci_high)
    for est in ADJUSTED:
        r = est.fit(table, CONFOUNDED_SPEC)
        assert r.ci_low <= truth <= r.ci_high, (r.method, r.estimate, r.ci_low, r.ci_high)
        assert abs(r.estimate - truth) < 0.25, r.method
        assert r.diagnostics["balance"]["max_abs_smd_weighted"] < 0.1
        assert r.diagnostics["balance"]["max_abs_smd_unweighted"] > 0.3


def test_negative_control_outcome_shows_no_effect_after_adjustment():
    table = confounded_table(4000, effect=-2.0, seed=7)
    nc = negative_control(IPW(), table, CONFOUNDED_SPEC, "NC")
    assert nc.covers_null and nc.result.outcome == "NC" and "covers 0" in nc.interpretation
    crude_nc = negative_control(Crude(), table, CONFOUNDED_SPEC, "NC")
    assert not crude_nc.covers_null and "residual confounding" in crude_nc.interpretation
