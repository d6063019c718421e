"""Synthetic confounded cohorts with known truth for the causal tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ketaweight.causal import AnalysisSpec


def confounded_table(n: int, effect: float, seed: int) -> pd.DataFrame:
    """Synthetic cohort with real confounding and a known effect (outcome units: kg).

    L1 ~ N(0,1), L2 ~ Bernoulli(0.4), L3 ∈ {a, b, c}; P(A=1|L) = expit(−0.3 + 0.8·L1 + 0.7·L2
    + 0.4·[L3=c]); Y = effect·A + 2·L1 + 1.5·L2 − [L3=b] + N(0, 2²); a negative-control outcome
    NC = L1 + L2 + N(0,1) that A cannot affect.  Crude bias ≈ +1.3 kg.
    """
    rng = np.random.default_rng(seed)
    l1 = rng.normal(size=n)
    l2 = (rng.random(n) < 0.4).astype(float)
    l3 = rng.choice(np.array(["a", "b", "c"]), size=n)
    lin = -0.3 + 0.8 * l1 + 0.7 * l2 + 0.4 * (l3 == "c")
    a = (rng.random(n) < 1 / (1 + np.exp(-lin))).astype(float)
    y = effect * a + 2 * l1 + 1.5 * l2 - 1.0 * (l3 == "b") + rng.normal(scale=2.0, size=n)
    nc = l1 + l2 + rng.normal(size=n)
    return pd.DataFrame({"A": a, "Y": y, "NC": nc, "L1": l1, "L2": l2, "L3": l3})


CONFOUNDED_SPEC = AnalysisSpec(treatment="A", outcome="Y", covariates=("L1", "L2", "L3"), categorical=("L3",))
