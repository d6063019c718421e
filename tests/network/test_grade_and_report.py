"""The grade and the report with a network: calibrated numbers, the empirical-null rule, consistency
across sites, replication lifting the cap; the report's network section."""

from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import replace

import pytest

from ketaweight.core.results import read_result
from ketaweight.evidence.calibration import EASE_SHARE_OF_MID
from ketaweight.evidence.grade import LEVELS, grade_evidence
from ketaweight.network.synthesis import NetworkWarning, synthesize, write_network
from ketaweight.pipelines.emulation import run_study
from ketaweight.report.render import write_report


@pytest.fixture(scope="module")
def run(network, tmp_path_factory):
    """A results folder: the weight study at site 1 and the network synthesis."""
    folder = tmp_path_factory.mktemp("netrun") / "results"
    weight = run_study(network["stores"][0], "ketamine-weight", folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NetworkWarning)
        path = write_network(synthesize(network["bundles"]), folder)
    return folder, read_result(weight.path), read_result(path)


def _by_name(answer):
    return {c.name: c for c in answer.criteria}


def test_the_grade_reads_the_calibrated_network_estimate(run):
    _, weight, net = run
    single, networked = grade_evidence(weight), grade_evidence(weight, network=net)
    c = net.results.calibrated
    assert (networked.estimate_kg, networked.ci_low_kg, networked.ci_high_kg) == (
        c.calibrated_estimate, c.calibrated_ci_low, c.calibrated_ci_high)
    assert networked.sentence.startswith("Across 3 simulated databases (calibrated with negative and positive controls), ")
    assert networked.estimate_pct is None and "of body weight" not in networked.sentence
    names = _by_name(networked)
    assert "Negative control" in _by_name(single) and "Negative control" not in names
    assert {"Systematic error (empirical null)", "Consistency across sites", "Replication"} <= set(names)
    assert networked.grade in LEVELS
    assert sum(x.grade_change for x in networked.criteria) + 2 == LEVELS.index(networked.grade)


def _with(net, **changes):
    """The network results file with some of its result's fields replaced."""
    return replace(net, results=replace(net.results, **changes))


def _with_null(net, mean: float):
    c = net.results.pool_then_calibrate
    return _with(net, pool_then_calibrate=replace(c, null=replace(c.null, mean=mean, sd=0.0)))


def test_empirical_null_rule(run):
    _, weight, net = run
    worse = _with_null(net, 2 * EASE_SHARE_OF_MID)  # EASE of N(m, 0) is |m|, kg; MID 1 kg
    assert _by_name(grade_evidence(weight, network=worse))["Systematic error (empirical null)"].grade_change == -1
    better = _with_null(net, 0.01)
    assert _by_name(grade_evidence(weight, network=better))["Systematic error (empirical null)"].grade_change == 0


def _with_site_cis(net, cis):
    sites = tuple(replace(s, calibration=replace(s.calibration, calibrated_ci_low=lo, calibrated_ci_high=hi))
                  for s, (lo, hi) in zip(net.results.sites, cis))
    return _with(net, sites=sites)


def test_consistency_across_sites_rule(run):
    _, weight, net = run
    split = _with_site_cis(net, [(0.2, 0.5), (-0.9, -0.4), (net.results.sites[2].calibration.calibrated_ci_low,
                                                            net.results.sites[2].calibration.calibrated_ci_high)])
    split = _with(split, consistency=replace(split.results.consistency, i2=80.0))
    crit = _by_name(grade_evidence(weight, network=split))["Consistency across sites"]
    assert crit.grade_change == -1 and "gain at site-1" in crit.finding
    split = _with(split, consistency=replace(split.results.consistency, i2=30.0))
    assert _by_name(grade_evidence(weight, network=split))["Consistency across sites"].grade_change == 0


def test_replication_lifts_the_cap_only_with_three_agreeing_databases(run):
    _, weight, net = run
    r = net.results
    agree = _with(net, calibrated=replace(r.calibrated, calibrated_estimate=-2.0, calibrated_ci_low=-2.3,
                                          calibrated_ci_high=-1.7),
                  sensitivity={**r.sensitivity, "rr": 0.2, "evalue_ci": 5.0, "evalue_estimate": 8.0})  # a large effect: +1
    agree = _with_site_cis(agree, [(-2.5, -1.5)] * 3)
    a = grade_evidence(weight, network=agree)
    assert _by_name(a)["Replication"].verdict == "supports" and LEVELS.index(a.grade) == 3  # high
    b = grade_evidence(weight, network=_with(agree, sites=agree.results.sites[:2]))
    assert _by_name(b)["Replication"].grade_change < 0 and b.grade == "moderate"


def test_report_has_the_network_section(run, tmp_path):
    folder, _, _ = run
    results = tmp_path / "results"
    shutil.copytree(folder, results)
    paths = write_report(results, tmp_path / "report.html")
    doc = json.loads(paths.json.read_text(encoding="utf-8"))
    ids = [s["id"] for s in doc["sections"]]
    assert ids.index("network") == ids.index("the-link") + 1
    sec = next(s for s in doc["sections"] if s["id"] == "network")
    assert len(sec["figures"]) == 2 and "Forest plot by database" in sec["figures"][0]["figure"]
    assert "Funnel" in sec["figures"][1]["figure"]
    assert [t["columns"][0] for t in sec["tables"]] == ["site", "method", "site"]
    html = paths.html.read_text(encoding="utf-8")
    assert "Many databases" in html and "SIM0" not in html and "<script" not in html
    assert doc["answer"]["sentence"].startswith("Across 3 simulated databases")


def test_report_without_a_network_has_no_network_section(run, tmp_path):
    folder, _, _ = run
    results = tmp_path / "results"
    shutil.copytree(folder, results)
    (results / "network.json").unlink()
    doc = json.loads(write_report(results, tmp_path / "r.html").json.read_text(encoding="utf-8"))
    assert "network" not in [s["id"] for s in doc["sections"]]
