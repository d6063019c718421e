"""The main job end to end, from nothing to a results folder the report reads (``ketaweight demo``):

1. simulate a ketamine-clinic cohort (scenario ``article`` by default) into the DuckDB store;
2. emulate both shipped target trials (weight; depression as the therapeutic context);
3. the weight study's mechanisms: mediation by pathway, dose-response, heterogeneity;
4. responsible-use views from the store (adverse events per session, monitoring flags);
5. FAERS signals on a small synthetic quarter in the real FAERS file format (generated here,
   labelled synthetic) and on a real FAERS-derived table shipped by ``mddc``;
6. (when the caller passes ``network``) a small network of simulated clinics, calibrated and pooled
   (the network layer sits above this one, so the CLI hands it in as a callback).

The signals (stage 6) and the network (stage 7) need nothing the other stages make (their data are
generated afresh), so on a machine with two or more cores each runs from the start in a worker process
beside stages 1–5 (the three take about a third, a sixth and a half of the demo's CPU time); their
results, progress lines and warnings are shown at their stage, in order, as if run there.

The evidence grade and the report are the layer above (:func:`ketaweight.report.render.write_report`
on ``OUT/results``), so the CLI calls it after this pipeline; nothing here renders.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ketaweight.pipelines.background import Background, Inline, cores

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


NetworkStep = Callable[[Path, Path, Callable[[str], None]], Any]
"""``step(out, results, on_text)``: the network step; picklable (a module-level function or a
``functools.partial`` of one) so that it can run in a worker process."""


def _network(step: NetworkStep, out: Path, results: Path) -> tuple[Any, list[str]]:
    """The network step's value and its progress lines."""
    lines: list[str] = []
    return step(out, results, lines.append), lines


def _signals(out: Path, results: Path, faers_reports: int) -> list[ScanResult]:
    """Stage 6: the synthetic FAERS quarter's scan, then the mddc table's."""
    return [synthetic_faers_signals(out / "faers", results / "signals-synthetic-faers.json", faers_reports),
            mddc_signals(results / "signals-mddc.json")]


def run_demo(out: Path, *, scenario: str = "article", patients: int = 20_000, seed: int = 7,
             faers_reports: int = SYNTHETIC_FAERS_REPORTS,
             on_stage: Callable[[int, str], None] = lambda number, title: None,
             on_done: Callable[[str, Any], None] = lambda what, value: None,
             on_patients: Callable[[int], None] | None = None,
             on_text: Callable[[str], None] = lambda text: None,
             network: NetworkStep | None = None) -> DemoRun:
    """Run stages 1–7 into ``out``.  ``on_stage(number, title)`` is called as a stage starts and
    ``on_done(what, value)`` with each piece as it is ready (``"store"`` (its path), ``"study"``,
    ``"mechanisms"``, ``"responsible_use"``, ``"signals"``, ``"network"``), so a caller can show
    progress.  ``network(out, results_folder, on_text)``, when given, runs the network step (stage 7);
    its progress lines go to ``on_text`` at stage 7.  With two cores or more, the signals and the
    network run in worker processes from the start (see the module's docstring); those are started
    with ``spawn`` and import the main module, so a script calling this needs the usual
    ``if __name__ == "__main__":`` guard (the ``ketaweight`` command has it)."""
    results = out / "results"
    later = Background if cores() >= 2 else Inline
    steps: dict[str, Background | Inline] = {}
    try:
        steps["signals"] = later(_signals, out, results, faers_reports)
        if network is not None:
            steps["network"] = later(_network, network, out, results)
        return _stages(out, scenario, patients, seed, on_stage, on_done, on_patients, on_text, steps)
    finally:
        for step in steps.values():
            step.stop()


def _stages(out: Path, scenario: str, patients: int, seed: int, on_stage: Callable[[int, str], None],
            on_done: Callable[[str, Any], None], on_patients: Callable[[int], None] | None,
            on_text: Callable[[str], None], steps: dict[str, Background | Inline]) -> DemoRun:
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
    for scan_result in steps["signals"].result():
        run.signals.append(scan_result)
        on_done("signals", scan_result)
    # -- stage 7 (issue 15): a small network of clinics, handed in by the layer above --------------
    if "network" in steps:
        on_stage(7, "a network of clinics: negative controls, calibration, pooling")
        run.network, lines = steps["network"].result()
        for line in lines:
            on_text(line)
        on_done("network", run.network)
    return run
