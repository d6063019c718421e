"""The main job end to end, from nothing to a results folder the report reads (``ketaweight demo``):

1. simulate a ketamine-clinic cohort (scenario ``article`` by default) into the DuckDB store;
2. emulate both shipped target trials (weight; depression as the therapeutic context);
3. the weight study's mechanisms: mediation by pathway, dose-response, heterogeneity;
4. responsible-use views from the store (adverse events per session, monitoring flags);
5. FAERS signals on a small synthetic quarter in the real FAERS file format (generated here,
   labelled synthetic) and on a real FAERS-derived table shipped by ``mddc``;
6. (when the caller passes ``network``) a small network of simulated clinics, calibrated and pooled
   (the network layer sits above this one, so the CLI hands it in as a callback).

The evidence grade and the report are the layer above (:func:`ketaweight.report.render.write_report`
on ``OUT/results``), so the CLI calls it after this pipeline; nothing here renders.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ketaweight.pipelines.emulation import StudyResults, run_study
from ketaweight.pipelines.mechanisms import run_mechanisms
from ketaweight.pipelines.responsible_use import responsible_use
from ketaweight.pipelines.results import MechanismsResults, ResponsibleUse
from ketaweight.pipelines.signals import SYNTHETIC_FAERS_REPORTS, mddc_signals, synthetic_faers_signals
from ketaweight.pipelines.simulation import run_simulation
from ketaweight.signals.scan import ScanResult
from ketaweight.sources.simulator import SimulationResult

DEMO_STUDIES = ("ketamine-weight", "ketamine-depression")
STAGES = 8
"""Stages the CLI numbers (the network is stage 7, the report stage 8)."""


@dataclass
class DemoRun:
    """What the demo computed; ``results`` is the folder the report reads."""

    out: Path
    simulation: SimulationResult | None = None
    store: Path | None = None
    studies: list[StudyResults] = field(default_factory=list)
    mechanisms: MechanismsResults | None = None
    responsible_use: ResponsibleUse | None = None
    signals: list[ScanResult] = field(default_factory=list)
    network: Any = None  # what the network step returned (issue 15)

    @property
    def results(self) -> Path:
        return self.out / "results"


def run_demo(out: Path, *, scenario: str = "article", patients: int = 20_000, seed: int = 7,
             faers_reports: int = SYNTHETIC_FAERS_REPORTS,
             on_stage: Callable[[int, str], None] = lambda number, title: None,
             on_done: Callable[[str, Any], None] = lambda what, value: None,
             on_patients: Callable[[int], None] | None = None,
             network: Callable[[Path, Path], Any] | None = None) -> DemoRun:
    """Run stages 1–7 into ``out``.  ``on_stage(number, title)`` is called as a stage starts and
    ``on_done(what, value)`` with each piece as it is ready (``"store"`` (its path), ``"study"``,
    ``"mechanisms"``, ``"responsible_use"``, ``"signals"``, ``"network"``), so a caller can show
    progress.  ``network(out, results_folder)``, when given, runs the network step (stage 7)."""
    run = DemoRun(out)
    on_stage(1, "simulate a ketamine-clinic cohort (synthetic data)")
    run.simulation, run.store = run_simulation(scenario, patients, seed, out, "duckdb", True, on_patients=on_patients)
    on_done("store", run.store)
    for i, study in enumerate(DEMO_STUDIES, start=2):
        on_stage(i, f"target-trial emulation: {study}")
        res = run_study(run.store, study, run.results)
        run.studies.append(res)
        on_done("study", res)
    on_stage(4, f"mechanisms: mediation, dose-response, heterogeneity ({DEMO_STUDIES[0]})")
    run.mechanisms = run_mechanisms(run.store, DEMO_STUDIES[0], run.results)
    on_done("mechanisms", run.mechanisms)
    on_stage(5, "responsible use: adverse events and monitoring flags")
    run.responsible_use = responsible_use(run.store, out_path=run.results / "responsible_use.json")
    on_done("responsible_use", run.responsible_use)
    on_stage(6, "signals from spontaneous reports (FAERS format)")
    for scan_result in (synthetic_faers_signals(out / "faers", run.results / "signals-synthetic-faers.json", faers_reports),
                        mddc_signals(run.results / "signals-mddc.json")):
        run.signals.append(scan_result)
        on_done("signals", scan_result)
    # -- stage 7 (issue 15): a small network of clinics, handed in by the layer above --------------
    if network is not None:
        on_stage(7, "a network of clinics: negative controls, calibration, pooling")
        run.network = network(out, run.results)
        on_done("network", run.network)
    return run
