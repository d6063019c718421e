"""The whole causal pipeline against the simulator's ground truth (one cohort per scenario).

Tolerances: each check is a 95% CI statement on one seeded cohort, so it could fail by chance
in 5% of seeds; the seeds are fixed, and the 200-replicate coverage study is the
`ketaweight validate estimators` command (docs/validation.md).
"""

import pytest

from ketaweight.pipelines.emulation import run_study
from ketaweight.core.results import read_results
from ketaweight.sources.simulator import load_scenario, simulate
from ketaweight.store.store import Store
from ketaweight.pipelines.validation import cohort_truth
from ketaweight.study.spec import load_study

N = 6000


def _analyse(scenario: str, study: str, seed: int, out=None):
    res = simulate(load_scenario(scenario), N, seed)
    with Store(":memory:") as store:
        store.load_frames(res.tables, label="simulated")
        return run_study(store, study, out), res


@pytest.fixture(scope="module")
def null_run():
    return _analyse("null", "ketamine-weight", 21)


@pytest.fixture(scope="module")
def article_run():
    return _analyse("article", "ketamine-weight", 22)


def test_null_scenario_every_adjusted_estimator_covers_zero(null_run):
    out, _ = null_run
    for r in out.results["outcome_change"]:
        if r.method == "crude":
            # The naive comparison is visibly biased by confounding by indication.
            assert r.ci_high < -0.1, r
        else:
            assert r.ci_low <= 0.0 <= r.ci_high, r


def test_article_scenario_estimators_cover_truth_and_crude_does_not(article_run):
    out, _ = article_run
    truth = cohort_truth("article", load_study("ketamine-weight"), 50_000, 99)
    for column, true_value in truth.items():
        for r in out.results[column]:
            if r.method == "crude":
                assert r.ci_high < true_value - 0.1, r
            else:
                assert r.ci_low <= true_value <= r.ci_high, (column, r.method, true_value, r)
    assert truth["outcome_change"] < -0.2  # the article scenario's weight loss is real


def test_negative_control_covers_null(article_run):
    out, _ = article_run
    assert out.negative_control is not None and out.negative_control.covers_null


def test_depression_study_finds_the_antidepressant_effect():
    out, _ = _analyse("null", "ketamine-depression", 23)
    truth = cohort_truth("null", load_study("ketamine-depression"), 50_000, 98)["outcome_change"]
    aipw = next(r for r in out.results["outcome_change"] if r.method == "aipw")
    assert truth < -3.0  # MADRS points at 4 weeks
    assert aipw.ci_low <= truth <= aipw.ci_high


def test_results_file_is_masked_and_documents_the_study(tmp_path):
    res = simulate(load_scenario("article"), 400, 5)
    with Store(tmp_path / "store.duckdb") as store:
        store.load_frames(res.tables, label="simulated", provenance=res.provenance)
    out = run_study(tmp_path / "store.duckdb", "ketamine-weight", tmp_path / "results")
    doc = read_results(out.path, kind="causal")
    payload = doc["results"]
    assert payload["study"]["study"]["name"] == "ketamine-weight"
    assert payload["outcome_units"] == {"outcome_change": "kg", "outcome_change_pct": "%"}
    steps = payload["cohort_attrition"]
    shown = [s[k] for s in steps for k in ("n_before", "n_excluded", "n_after")]
    assert all(v in ("<11", "suppressed") or v == 0 or v >= 11 for v in shown)
    from ketaweight.core.privacy import disclosure_risks

    assert disclosure_risks(doc) == []  # no masked count recoverable from the cells beside it
    assert "SIM" not in out.path.read_text()  # no patient identifiers in the results file
    # provenance comes from the store's load record, not from a truth.json beside it (there is none here)
    assert not (tmp_path / "truth.json").exists()
    assert doc["provenance"]["synthetic"] is True and doc["provenance"]["origin"] == "simulated"
