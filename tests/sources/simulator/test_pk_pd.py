"""Closed-form exposure and the antidepressant benefit update."""

import numpy as np
import pytest

from ketaweight.sources.simulator.pd import benefit_after_session, madrs_true
from ketaweight.sources.simulator.pk import individual_clearance, session_auc


def test_auc_formula_iv_half_mg_per_kg_at_70kg():
    # AUC = F*dose/CL: 35 mg IV at CL 79 L/h (Kamp 2020) = 0.443 mg*h/L.
    assert session_auc(np.array([35.0]), np.array([1.0]), np.array([79.0]))[0] == pytest.approx(35 / 79)
    # Oral bioavailability 0.17 scales exposure proportionally.
    assert session_auc(np.array([35.0]), np.array([0.17]), np.array([79.0]))[0] == pytest.approx(0.17 * 35 / 79)


def test_clearance_allometry_and_variability():
    rng = np.random.default_rng(0)
    w = np.full(200_000, 70.0)
    cl = individual_clearance(w, 79.0, 0.30, rng)
    assert cl.mean() == pytest.approx(79.0, rel=0.01)  # mean-one log-normal multiplier
    assert cl.std() / cl.mean() == pytest.approx(0.30, abs=0.01)  # the stated 30% CV
    heavy = individual_clearance(np.full(200_000, 140.0), 79.0, 0.30, np.random.default_rng(0))
    assert heavy.mean() / cl.mean() == pytest.approx(2**0.75, rel=0.01)


def test_benefit_update_is_bounded_and_saturating():
    b = np.array([0.0, 0.5, 0.99])
    new = benefit_after_session(b, np.array([0.6, 0.6, 0.6]), np.array([0.3, 0.3, 0.3]), 0.3)
    np.testing.assert_allclose(new, b + (1 - b) * 0.6 * 0.5)
    assert np.all(new <= 1.0)
    assert benefit_after_session(np.array([0.2]), np.array([0.0]), np.array([1.0]), 0.3)[0] == 0.2  # non-responder


def test_madrs_formula():
    assert madrs_true(np.array([34.0]), np.array([0.5]), np.array([0.2]))[0] == pytest.approx(34 * 0.5 * 0.8)
