"""Small clinics are real users: the report never crashes on them, and no masked count can be
recomputed from what the outputs show (complementary suppression, checked by a scanner)."""

from __future__ import annotations

import json

import pytest

from ketaweight.core.privacy import disclosure_risks
from ketaweight.pipelines.emulation import run_study
from ketaweight.pipelines.mechanisms import run_mechanisms
from ketaweight.pipelines.responsible_use import responsible_use
from ketaweight.pipelines.simulation import run_simulation
from ketaweight.report.render import write_report


@pytest.fixture(scope="module", params=[30, 100, 400])
def small_clinic(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"clinic{request.param}") / "run"
    _, store = run_simulation("article", request.param, 5, out, "duckdb", False)
    results = out / "results"
    run_study(store, "ketamine-weight", results)
    try:
        run_mechanisms(store, "ketamine-weight", results, n_bootstrap=50)
    except ValueError:  # too few patients for a mechanism analysis is a clear error, not a crash of the report
        pass
    responsible_use(store, out_path=results / "responsible_use.json")
    return request.param, results, write_report(results, out / "report.html")


def test_report_on_a_small_clinic_is_written_and_honest(small_clinic):
    """main: `report` on a 30- or 100-patient clinic raised TypeError in evidence.conclude (a null CI)."""
    n, _, paths = small_clinic
    answer = json.loads(paths.json.read_text(encoding="utf-8"))["answer"]
    assert answer["grade"] in ("very low", "low", "moderate")
    if answer["conclusion"] == "not estimable":
        assert "could not be estimated" in answer["sentence"] and answer["grade"] == "very low"


def test_no_masked_count_is_recoverable_in_any_output(small_clinic):
    """main: attrition n_excluded = n_before − n_after; n_outside_support from its share and n (P2, P3)."""
    _, results, paths = small_clinic
    for path in [*results.glob("*.json"), paths.json]:
        doc = json.loads(path.read_text(encoding="utf-8"))
        assert disclosure_risks(doc) == [], path.name
    report = json.loads(paths.json.read_text(encoding="utf-8"))
    attrition = next(t for s in report["sections"] for t in s["tables"] if t["caption"].startswith("Cohort attrition"))
    rows = attrition["rows"]  # step, remaining, excluded
    for prev, row in zip(rows, rows[1:]):
        if row[2] == "<11":
            assert not (prev[1].replace(",", "").isdigit() and row[1].replace(",", "").isdigit()), (prev, row)
