"""MGPS: openEBGM's published scores, the likelihood against scipy, the fit against a known truth
and against vigipy, and honest reporting of non-convergence."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

from ketaweight.core.errors import ConvergenceWarning
from ketaweight.signals import mgps
from ketaweight.signals.tables import from_contingency

THETA = (3.25379356, 0.39988854, 2.02612692, 1.90807970, 0.06534557)


def test_openebgm_reference_scores():
    """DESIGN.md §6 (openEBGM's CAERS prior): N=16, E=0.40643623 → EB05 15.68, EBGM 23.26, EB95 33.48;
    N=1, E=0.0360548272 → Qn 0.2819737, EBGM 2.23, EB05 0.49, EB95 13.85.  Tolerance 0.01 (openEBGM
    rounds to 2 decimals and bisects to ±0.005); Qn to 1e-7."""
    s = mgps.ebgm_scores(THETA, [16, 1], [0.40643623, 0.0360548272])
    np.testing.assert_allclose(s.eb05, [15.68, 0.49], atol=0.01)
    np.testing.assert_allclose(s.ebgm, [23.26, 2.23], atol=0.01)
    np.testing.assert_allclose(s.eb95, [33.48, 13.85], atol=0.01)
    assert s.qn[1] == pytest.approx(0.2819737, abs=1e-7)


def test_quantiles_bracket_and_order(model_table):
    _, n, e = model_table
    s = mgps.ebgm_scores(THETA, n[:5000], e[:5000])
    assert np.all(s.eb05 < s.eb95)
    assert np.all((s.qn >= 0) & (s.qn <= 1))
    # the quantile really is the 5% point of the posterior mixture
    a1, b1, a2, b2, p = THETA
    cdf = s.qn * stats.gamma.cdf(s.eb05, a1 + n[:5000], scale=1 / (b1 + e[:5000])) + (1 - s.qn) * stats.gamma.cdf(
        s.eb05, a2 + n[:5000], scale=1 / (b2 + e[:5000]))
    np.testing.assert_allclose(cdf, 0.05, atol=1e-8)


@pytest.mark.parametrize("truncation", ["component", "mixture"])
def test_likelihood_matches_scipy(model_table, truncation):
    _, n, e = model_table
    n, e = n[:3000], e[:3000]
    a1, b1, a2, b2, p = THETA
    f1 = stats.nbinom.pmf(n, a1, b1 / (b1 + e))
    f2 = stats.nbinom.pmf(n, a2, b2 / (b2 + e))
    z1 = stats.nbinom.pmf(0, a1, b1 / (b1 + e))
    z2 = stats.nbinom.pmf(0, a2, b2 / (b2 + e))
    if truncation == "component":
        want = np.sum(np.log(p * f1 / (1 - z1) + (1 - p) * f2 / (1 - z2)))
    else:
        want = np.sum(np.log((p * f1 + (1 - p) * f2) / (1 - p * z1 - (1 - p) * z2)))
    assert mgps.truncated_loglik(THETA, n, e, truncation=truncation) == pytest.approx(want, rel=1e-12)


def test_log_gamma_ratio_is_exact_where_gammaln_differences_cancel():
    """log Γ(x+d) − log Γ(x) for an integer d is Σ log(x+k), k = 0..d−1, summed exactly by fsum.
    At x = 6·10⁷ (the statin49 margin cell) the plain gammaln difference is off by ~10⁻⁷; the
    helper must be within 10⁻¹² relative, and the two formulas must meet at the switch point."""
    import math

    from scipy import special

    x, d = 6.0e7 + 1.0, 559
    exact = math.fsum(math.log(x + k) for k in range(d))
    got = float(mgps._log_gamma_ratio(np.array([x]), float(d))[0])
    assert got == pytest.approx(exact, rel=1e-12)
    naive = float(special.gammaln(x + d) - special.gammaln(x))
    assert abs(naive - exact) > abs(got - exact)  # the helper is the more accurate one here
    for d in (-0.57, 0.43, 2.5, 558.4):  # α − 1 over the range of fitted α
        xs = np.array([mgps._STIRLING_FROM - 1e-9, mgps._STIRLING_FROM])
        below, above = mgps._log_gamma_ratio(xs, d)
        at = float(special.gammaln(xs[1] + d) - special.gammaln(xs[1]))
        assert above == pytest.approx(at, rel=1e-13, abs=1e-12)
        assert below == pytest.approx(above, abs=1e-9)


def test_density_of_a_huge_count_matches_scipy():
    """A FAERS margin cell (n ≈ 6·10⁷, E ≈ n): log NB against scipy's nbinom.logpmf to 10⁻⁶ absolute.
    scipy differences gammaln values, so at this size it is itself only good to ~10⁻⁷; the exactness
    of our count term is checked against fsum above."""
    n = np.array([6.0e7, 1.2e7, 3.0])
    e = np.array([5.9e7, 1.25e7, 0.2])
    for a, b in [(0.43, 0.037), (559.4, 47.1)]:
        want = stats.nbinom.logpmf(n, a, b / (b + e))
        np.testing.assert_allclose(mgps._log_nb(n, e, a, b), want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("truncation", ["component", "mixture"])
def test_analytic_gradient(model_table, truncation):
    _, n, e = model_table
    w = np.random.default_rng(0).integers(1, 4, size=2000).astype(float)
    cells = mgps._Cells(n[:2000], e[:2000], w, truncation)
    u = mgps._to_u(np.array(THETA))
    _, g = mgps._negll_and_grad(u, cells)
    h = 1e-6
    num = [(mgps._negll_and_grad(u + h * d, cells, False) - mgps._negll_and_grad(u - h * d, cells, False)) / (2 * h)
           for d in np.eye(5)]
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-5)


def test_mixture_fit_recovers_the_true_prior(model_table):
    """Data drawn from a known prior: the exact (mixture-truncated) MLE is within 4 standard errors
    of the truth in every parameter, and beats the truth's log-likelihood (as an MLE must)."""
    theta, n, e = model_table
    fit = mgps.fit_prior(n, e, truncation="mixture")
    assert fit.converged and not fit.boundary
    est = mgps._to_u(fit.prior.as_array())
    true = mgps._to_u(np.array(theta))
    assert np.all(np.abs(est - true) < 4 * np.array(fit.se_log))
    assert fit.loglik >= mgps.truncated_loglik(theta, n, e, truncation="mixture") - 1e-6


def test_component_truncation_does_not_recover_the_prior(model_table):
    """openEBGM's per-component truncation is not the model's conditional likelihood: on the same
    data its estimate of P is far from the truth (documented in docs/signals.md)."""
    theta, n, e = model_table
    fit = mgps.fit_prior(n, e, truncation="component")
    assert fit.converged
    assert abs(fit.prior.p - theta[4]) > 0.05


def test_statin49_fit_converges_and_beats_starts(statin49):
    t = from_contingency(statin49)
    c = t.prior_cells
    fit = mgps.fit_prior(c["n"], c["e"])
    assert fit.converged and fit.newton_decrement <= fit.tolerance
    for s in fit.starts:
        if s.loglik is not None:
            assert fit.loglik >= s.loglik - 1e-6


def test_non_convergence_is_reported(model_table):
    theta, n, e = model_table
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        fit = mgps.fit_prior(n[:2000], e[:2000], max_iter=1, starts=[(50.0, 0.01, 0.01, 50.0, 0.5)], tolerance=1e-12)
    assert not fit.converged
    assert "decrement" in fit.message or "Newton" in fit.message


def test_degenerate_data_flagged_at_boundary():
    """Every cell from a point mass λ = 1: no interior maximum; the fit says so."""
    rng = np.random.default_rng(3)
    e = np.exp(rng.normal(0, 1, 30_000))
    n = rng.poisson(e)
    keep = n > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = mgps.fit_prior(n[keep], e[keep])
    assert fit.boundary or not fit.converged


def test_squash_keeps_weights_and_largest_e():
    n = np.r_[np.ones(1000), np.full(10, 5.0)]
    e = np.linspace(0.01, 2, n.size)
    sn, se, sw = mgps.squash(n, e, bin_size=50, keep_bins=2, min_pts=500)
    assert sw.sum() == n.size
    assert np.isclose((se * sw).sum(), e.sum())
    assert np.sum(sn == 1) == (1000 - 100) // 50 + 100


def test_bad_prior_rejected():
    with pytest.raises(ValueError, match="strictly between"):
        mgps.ebgm_scores((1, 1, 1, 1, 1.5), [1], [1.0])


@pytest.mark.peers
@pytest.mark.parametrize("truncation", ["mixture", "component"])
def test_loglik_at_least_vigipy_on_statin49(statin49, truncation):
    """Under one likelihood definition at a time, our fitted prior's log-likelihood on statin49
    (all 350 cells of the table, as vigipy fits them) is ≥ that of vigipy's GPS prior."""
    vigipy = pytest.importorskip("vigipy")
    long = statin49.stack().reset_index()
    long.columns = ["AE", "name", "count"]
    long = long[long["count"] > 0]
    res = vigipy.gps(vigipy.convert(long), min_events=1, decision_metric="rank", decision_thres=0)
    theirs = np.asarray(res.params["prior_param"], dtype=float)
    c = from_contingency(statin49).prior_cells
    ours = mgps.fit_prior(c["n"], c["e"], truncation=truncation)
    their_ll = mgps.truncated_loglik(theirs, c["n"], c["e"], truncation=truncation)
    assert ours.converged
    assert ours.loglik >= their_ll - 1e-9


def test_squashed_fit_is_close_to_the_full_fit(model_table):
    """openEBGM-style fit on squashed data: reported as squashed, its full-data log-likelihood within
    0.1% of the exact MLE's (squashing is an approximation; the default fit is exact)."""
    _, n, e = model_table
    exact = mgps.fit_prior(n, e)
    sq = mgps.fit_prior(n, e, squash_data=True)
    assert sq.squashed and sq.n_points_fitted < sq.n_cells and not exact.squashed
    assert sq.loglik <= exact.loglik + 1e-6
    assert sq.loglik == pytest.approx(exact.loglik, rel=1e-3)


def test_repeated_cells_scored_once_give_identical_results():
    rng = np.random.default_rng(5)
    n = rng.integers(1, 6, size=250_000).astype(float)
    e = rng.choice([0.1, 0.5, 1.0, 2.5], size=n.size)
    s = mgps.ebgm_scores(THETA, n, e)  # de-duplicated path (20 distinct cells)
    ref = mgps._ebgm_scores(mgps.GammaMixturePrior(*THETA), n[:2000], e[:2000])
    np.testing.assert_array_equal(s.eb05[:2000], ref.eb05)
    np.testing.assert_array_equal(s.ebgm[:2000], ref.ebgm)


@pytest.mark.parametrize("truncation", ["component", "mixture"])
def test_likelihood_in_two_halves_equals_one_pass(model_table, monkeypatch, truncation):
    """Large tables are evaluated in two halves at once (two threads): the same log-likelihood and
    gradient as one pass (to rounding), and the same fit to well within the fit's own tolerance."""
    _, n, e = model_table
    w = np.random.default_rng(1).integers(1, 4, size=n.size).astype(float)
    whole = mgps._Cells(n, e, w, truncation, split=False)
    monkeypatch.setattr(mgps, "_SPLIT_CELLS", 1_000)
    halves = mgps._Cells(n, e, w, truncation)
    assert len(halves.chunks) == 2 and sum(c.n.size for c in halves.chunks) == n.size
    u = mgps._to_u(np.array(THETA))
    f1, g1 = mgps._negll_and_grad(u, whole)
    f2, g2 = mgps._negll_and_grad(u, halves)
    assert f2 == pytest.approx(f1, rel=1e-12) and mgps._negll_and_grad(u, halves, False) == f2
    np.testing.assert_allclose(g2, g1, rtol=1e-9, atol=1e-7)
    fit = mgps.fit_prior(n, e, truncation=truncation, proxy_threshold=10**9)
    monkeypatch.setattr(mgps, "_SPLIT_CELLS", 10**9)
    ref = mgps.fit_prior(n, e, truncation=truncation, proxy_threshold=10**9)
    assert fit.converged and ref.converged
    np.testing.assert_allclose(fit.prior.as_array(), ref.prior.as_array(), rtol=1e-6)
    s1, s2 = mgps.ebgm_scores(fit.prior, n, e), mgps.ebgm_scores(ref.prior, n, e)
    np.testing.assert_allclose(s1.eb05, s2.eb05, rtol=1e-7)


def test_multistart_on_a_subsample_reaches_the_same_full_data_fit(model_table, monkeypatch):
    """Above a million cells the starts run on a random subsample: the Newton polish on the full data
    still ends at the full-data MLE the squashed proxy leads to (within the fit tolerance), every run
    the same."""
    _, n, e = model_table
    ref = mgps.fit_prior(n, e)
    monkeypatch.setattr(mgps, "_SAMPLE_CELLS", 5_000)
    fit, again = mgps.fit_prior(n, e), mgps.fit_prior(n, e)
    assert "subsample" in fit.message and "subsample" not in ref.message
    assert fit.converged and fit.to_dict()["starts_loglik_on"] == "random subsample"
    np.testing.assert_allclose(fit.prior.as_array(), ref.prior.as_array(), rtol=1e-5)
    assert fit.loglik == pytest.approx(ref.loglik, abs=1e-6)
    assert fit.prior == again.prior
