"""The energy-balance outcome model of the mediation (``MediationSpec.energy_balance``): analytic truths on a
linear structural model in which weight follows stored energy.

Fixture (truth by hand; kcal/d and kg as the study's mediators): L ~ N(0, 1); A ~ Bernoulli(expit(0.5 L));
course intensity Z = A·(2 + U), U ~ Uniform(0, 4), so E[Z | A = 1] = 4;
mood D = −2A + 0.3L + e; activity energy P = −D + 0.2L + 2e (pathway "mood": D, then P);
intake I = −5Z + 0.5D + L + 10e (pathway "appetite"); non-activity expenditure X = Z + 0.1e (pathway
"metabolism": nearly a function of Z, as the drug's per-session thermogenesis); weight
Y = θ(0.76·I − X − P) + 0.5L + e with θ = 0.1 kg per kcal/d and no other effect of D.

Interventional effects (Z at each pathway's level, Z acts on Y only through the mediators):
IE_metabolism = −θ·4 = −0.4; IE_appetite = 0.76θ·(−5·4) = −1.52; IE_mood = −θ·(+2) [P follows −D]
+ 0.76θ·0.5·(−2) [intake follows D] = −0.276; direct 0; total −2.196.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from ketaweight.mechanisms.mediation import ASSUMPTIONS, ENERGY_BALANCE_ASSUMPTION, Mediation, MediationSpec, Pathway

THETA = 0.1
TRUTH = {"total": -2.196, "direct": 0.0, "mood": -0.276, "appetite": -1.52, "metabolism": -0.4}
FACTORS = {"intake": 0.76, "expenditure": -1.0, "activity": -1.0}
PATHWAYS = (Pathway("mood", ("madrs", "activity")), Pathway("appetite", ("intake",)),
            Pathway("metabolism", ("expenditure",)))


def energy_sem(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    l = rng.normal(size=n)
    a = (rng.random(n) < expit(0.5 * l)).astype(float)
    z = a * (2 + 4 * rng.random(n))
    d = -2 * a + 0.3 * l + rng.normal(size=n)
    p = -d + 0.2 * l + 2 * rng.normal(size=n)
    i = -5 * z + 0.5 * d + l + 10 * rng.normal(size=n)
    x = z + 0.1 * rng.normal(size=n)
    y = THETA * (0.76 * i - x - p) + 0.5 * l + rng.normal(size=n)
    return pd.DataFrame({"a": a, "l": l, "sessions": z, "madrs": d, "activity": p, "intake": i, "expenditure": x, "y": y})


def spec(**settings) -> MediationSpec:
    return MediationSpec(treatment="a", outcome="y", covariates=("l",), pathways=PATHWAYS, intermediate=("sessions",),
                         intermediate_in_outcome=False, **settings)


@pytest.fixture(scope="module")
def fits():
    data = energy_sem(20_000, 0)
    return (Mediation(n_bootstrap=200, seed=1).fit(data, spec()),
            Mediation(n_bootstrap=200, seed=1).fit(data, spec(energy_balance=FACTORS)))


def test_both_outcome_models_recover_the_effects(fits):
    """Free and energy-balance outcome models are both correct here: every effect within 4 SE of its truth."""
    for r in fits:
        got = {"total": r.total, "direct": r.direct, **r.pathways}
        for name, truth in TRUTH.items():
            assert got[name].estimate == pytest.approx(truth, abs=4 * got[name].se + 1e-3), name


def test_the_small_pathway_borrows_precision_from_the_energy_balance(fits):
    """The metabolism mediator varies only with course intensity; its free outcome coefficient is identified from
    that variation alone, the tied one from intake's large variation too: its SE falls at least threefold
    (computed about tenfold), and the kcal-to-kg coefficient is θ within 10 % (about 4 SE: it is the untreated
    arm's, SD 0.0045 over seeds at n = 5,000, so about 0.0023 at the 20,000 here)."""
    free, tied = fits
    assert tied.pathways["metabolism"].se < free.pathways["metabolism"].se / 3
    eb = tied.diagnostics["energy_balance"]
    assert eb["kg_per_kcal_per_day"] == pytest.approx(THETA, rel=0.10)
    assert eb["factors_kcal_per_unit"] == FACTORS and eb["other_mediators"] == ["madrs"]
    assert "energy_balance" not in free.diagnostics


def test_other_mediators_act_only_through_the_energy_mediators(fits):
    """The MADRS change has no outcome coefficient in the energy balance (it has one, near 0, when free); each
    energy mediator's coefficient is θ times its factor."""
    free, tied = fits
    per_unit = {m["column"]: m["outcome_per_unit_untreated"] for m in tied.diagnostics["mediators"]}
    theta = tied.diagnostics["energy_balance"]["kg_per_kcal_per_day"]
    assert per_unit["madrs"] == 0.0
    for column, factor in FACTORS.items():
        assert per_unit[column] == pytest.approx(theta * factor, rel=1e-12)
    assert next(m for m in free.diagnostics["mediators"] if m["column"] == "madrs")["outcome_per_unit_untreated"] != 0.0
    assert tied.assumptions == (*ASSUMPTIONS, ENERGY_BALANCE_ASSUMPTION) and free.assumptions == ASSUMPTIONS


def test_energy_balance_spec_errors():
    with pytest.raises(ValueError, match="not mediators"):
        spec(energy_balance={"intake": 0.76, "l": -1.0})
    with pytest.raises(ValueError, match="at least two"):
        spec(energy_balance={"intake": 0.76})
    with pytest.raises(ValueError, match="nonzero"):
        spec(energy_balance={"intake": 0.76, "expenditure": 0.0})
    with pytest.raises(ValueError, match="carry 0 by construction"):  # no energy mediator in or after "metabolism"
        spec(energy_balance={"intake": 0.76, "activity": -1.0})
