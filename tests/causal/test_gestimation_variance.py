"""G-estimation's closed-form sandwich against the generic numerical stacked sandwich
(:func:`ketaweight.causal.mestimation.sandwich`, central differences), with and without censoring."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from causal_synthetic import CONFOUNDED_SPEC, confounded_table
from ketaweight.causal import GEstimation
from ketaweight.causal.data import prepare
from ketaweight.causal.diagnostics import WarningLog
from ketaweight.causal.mestimation import sandwich
from ketaweight.causal.weights import censoring_design, censoring_model


def numerical_se(data, estimate: float) -> float:
    """The stacked equations of the censoring model, the weighted propensity model and ψ, with a
    numerical Jacobian (the variance g-estimation used before it had a closed form)."""
    x, a, obs = data.x.matrix, data.a, data.observed
    y0 = np.where(obs, data.y, 0.0)
    cm = censoring_model(data)
    z = None if cm is None else censoring_design(data)
    kz = 0 if z is None else z.shape[1]
    ps = GEstimation()._fit(data, WarningLog("warn", silent=True), analytic=False).models[-1].fit

    def estfun(t: np.ndarray) -> np.ndarray:
        parts, w = [], obs.astype(float)
        if z is not None:
            pi = expit(z @ t[:kz])
            parts.append(z * (obs - pi)[:, None])
            w = np.where(obs, 1.0 / pi, 0.0)
        e = expit(x @ t[kz:-1])
        parts.append(x * (w * (a - e))[:, None])
        parts.append((w * (a - e) * (y0 - t[-1] * a))[:, None])
        return np.column_stack(parts)

    theta = np.concatenate([[] if cm is None else cm.fit.coef, ps.coef, [estimate]])
    return float(np.sqrt(sandwich(estfun, theta)[-1, -1]))


@pytest.mark.parametrize("censor", [None, "censored"])
def test_closed_form_equals_numerical_sandwich_on_nhefs(nhefs, nhefs_spec, censor):
    data = prepare(nhefs, nhefs_spec(censor=censor) if censor else nhefs_spec(missing_outcome="exclude"))
    r = GEstimation().fit(data)
    assert r.se == pytest.approx(numerical_se(data, r.estimate), rel=1e-6)
    if censor:
        assert r.estimate == pytest.approx(3.446, abs=5e-4)  # Hernán & Robins 2020, Program 14.3


def test_closed_form_equals_numerical_sandwich_on_confounded_data():
    data = prepare(confounded_table(4000, effect=-2.0, seed=5), CONFOUNDED_SPEC)
    r = GEstimation().fit(data)
    assert r.se == pytest.approx(numerical_se(data, r.estimate), rel=1e-6)
