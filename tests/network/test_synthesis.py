"""Synthesis: the same study everywhere, pooling as the meta-analysis module computes it, and
calibration that undoes the unmeasured confounder of the biased site (simulator truth)."""

from __future__ import annotations

import warnings

import pytest

from ketaweight.core.errors import InputError
from ketaweight.core.results import read_results
from ketaweight.network.bundle import read_bundle
from ketaweight.network.meta import meta_analyze
from ketaweight.network.site import bundle_site
from ketaweight.network.synthesis import NetworkWarning, synthesize, write_network
from ketaweight.pipelines.network_site import site_data
from ketaweight.study.spec import load_study


@pytest.fixture(scope="module")
def result(network):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NetworkWarning)
        return synthesize(network["bundles"])


def test_pooling_is_the_meta_analysis_of_the_site_estimates(result, network):
    bundles = [read_bundle(b) for b in network["bundles"]]
    est = [b.results.primary.estimate for b in bundles]
    se = [b.results.primary.se for b in bundles]
    assert result.pooled["fixed"].estimate == meta_analyze(est, se, method="fixed").estimate
    reml = meta_analyze(est, se, method="reml", hartung_knapp=True)
    assert result.primary_pooling == "reml+hk" and result.primary.estimate == reml.estimate
    assert result.primary.ci_low == reml.ci_low and result.primary.df == 2
    assert result.bayesian.likelihoods == ("grid",) * 3 and result.bayesian.mu_ci_low < result.bayesian.mu < result.bayesian.mu_ci_high
    assert len(result.pooled_controls) == len(bundles[0].results.controls)
    assert [s.site for s in result.sites] == ["site-1", "site-2", "site-3"]


def test_calibration_undoes_the_biased_sites_unmeasured_confounder(result, network):
    """Site 3 has the unmeasured confounder: its uncalibrated CI misses its true effect, the calibrated
    one covers it; the other sites' nulls sit near 0."""
    truth = {s["site"]: s["weight_change_kg"]["ate"] for s in network["truth"]["sites"]}
    biased = result.sites[-1]
    assert network["truth"]["sites"][-1]["unmeasured_confounder"]
    assert biased.ci_high < truth["site-3"]  # too much "weight loss"
    c = biased.calibration
    assert c.null.mean < -0.05 and c.calibrated_ci_low <= truth["site-3"] <= c.calibrated_ci_high
    for s in result.sites[:-1]:
        assert abs(s.calibration.null.mean) < 0.05 and s.calibration.ci_low <= truth[s.site] <= s.calibration.ci_high
    net_truth = network["truth"]["weight_change_kg"]["ate_mean_of_sites"]
    assert result.calibrated.calibrated_ci_low <= net_truth <= result.calibrated.calibrated_ci_high
    assert result.replication.k == 3 and result.replication.direction == "loss"
    assert result.sensitivity["evalue_ci"] > 1


def test_network_results_file(result, tmp_path):
    path = write_network(result, tmp_path)
    doc = read_results(path, kind="network")
    assert doc["provenance"]["sites"] == ["site-1", "site-2", "site-3"] and doc["provenance"]["synthetic"]
    r = doc["results"]
    assert r["calibrated"]["calibrated_estimate"] == result.calibrated.calibrated_estimate
    assert set(r["pooled"]) == {"fixed", "dl", "reml+hk"} and len(r["sites"]) == 3
    assert "SIM0" not in path.read_text(encoding="utf-8")


def test_bundles_of_different_studies_or_names_are_refused(network, tmp_path):
    study = load_study("ketamine-weight")
    other = study.model_copy(update={"outcome": study.outcome.model_copy(update={"window_days": 10})})
    odd = bundle_site(site_data(network["stores"][0], other), "site-9", tmp_path / "odd.zip").path
    with pytest.raises(InputError, match="different study"):
        synthesize([*network["bundles"][:2], odd])
    with pytest.raises(InputError, match="more than once"):
        synthesize([network["bundles"][0], network["bundles"][0]])
    with pytest.raises(InputError, match="no bundles"):
        synthesize([])


def test_one_site_is_a_warning_not_a_network(network):
    with pytest.warns(NetworkWarning, match="one site"):
        r = synthesize(network["bundles"][:1], leave_one_out=False)
    assert r.primary.k == 1 and r.replication.k == 1
