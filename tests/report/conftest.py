"""One small end-to-end run shared by the report tests (simulated cohort, both studies, mechanisms, signals)."""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

import pytest

from ketaweight.pipelines.mechanisms import run_mechanisms
from ketaweight.pipelines.signals import mddc_signals, synthetic_faers_signals
from ketaweight.pipelines.simulation import run_simulation
from ketaweight.pipelines.emulation import run_study
from ketaweight.report.render import ReportPaths, write_report
from ketaweight.pipelines.responsible_use import responsible_use


def make_run(out: Path, scenario: str, patients: int) -> Path:
    """Simulate, emulate both studies, mechanisms, responsible use and signals (a 10,000-report
    synthetic FAERS quarter and the mddc table); return the results folder."""
    _, store = run_simulation(scenario, patients, 3, out, "duckdb", True)
    results = out / "results"
    for study in ("ketamine-weight", "ketamine-depression"):
        run_study(store, study, results)
    run_mechanisms(store, "ketamine-weight", results, n_bootstrap=50)
    responsible_use(store, out_path=results / "responsible_use.json")
    synthetic_faers_signals(out / "faers", results / "signals-synthetic-faers.json", n_reports=10_000)
    mddc_signals(results / "signals-mddc.json")
    return results


@pytest.fixture(scope="session")
def article_run(tmp_path_factory, worker_id) -> tuple[Path, ReportPaths]:
    """An article-scenario run of 3,000 patients with mechanisms and signals, and its report.

    Built once for the whole test session, also under pytest-xdist: workers share the base
    temporary folder and the first one to take the lock builds the run (read-only afterwards).
    """
    base = tmp_path_factory.getbasetemp()
    root = base.parent if worker_id != "master" else base
    out = root / "report-article"
    with open(root / "report-article.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "report.json").exists():
            results = make_run(out / "run", "article", 3000)
            write_report(results, out / "report.html")
    answer = json.loads((out / "report.json").read_text(encoding="utf-8"))["answer"]
    return out / "run" / "results", ReportPaths(out / "report.html", out / "report.md", out / "report.json",
                                                answer["sentence"], answer["grade"])
