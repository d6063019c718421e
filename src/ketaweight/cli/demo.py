"""CLI: ``ketaweight demo`` — the main job end to end: from nothing to the graded answer and its report.

Runs :func:`ketaweight.pipelines.demo.run_demo` (simulate, both target trials, mechanisms,
responsible use, FAERS signals, and a 3-site network) with progress, then :func:`ketaweight.report.render.write_report`;
prints each stage's tables, the report's path and the answer beside the simulator's truth.
"""

from __future__ import annotations

import shutil
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import typer

from ketaweight.cli import app
from ketaweight.cli._common import console, progress_bar, run_cli
from ketaweight.cli.simulate import print_truth
from ketaweight.cli.store import print_store_summary
from ketaweight.cli.network import print_network
from ketaweight.cli.tables import results_table
from ketaweight.network.demo import run_network_demo, site_patients
from ketaweight.pipelines.demo import STAGES, run_demo
from ketaweight.pipelines.signals import SYNTHETIC_FAERS_REPORTS
from ketaweight.report.render import write_report
from ketaweight.store import Store


def _show(what: str, value: Any) -> None:
    """Print one finished piece of the demo."""
    if what == "store":
        with Store(value, read_only=True) as store:
            print_store_summary(store)
    elif what == "study":
        for rs in value.results.values():
            console.print(results_table(rs))
        if value.negative_control is not None:
            console.print(f"negative control: {value.negative_control.interpretation}")
    elif what == "mechanisms" and value.mediation is not None:
        console.print(value.mediation.as_text(), highlight=False)
    elif what == "responsible_use":
        for f in value["flags"]:
            console.print(f"{f['flag']}: {f['count']} {f['unit']}", highlight=False)
    elif what == "signals":
        console.print(value.to_rich_table())
    elif what == "network":
        print_network(value.result)


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path("demo-output"), "--out", "-o", help="Output folder (an earlier demo there is replaced)."),
    scenario: str = typer.Option("article", "--scenario", "-s", help="Simulator scenario (e.g. article, null)."),
    patients: int = typer.Option(20000, "--patients", "-n", min=500, help="Number of virtual patients."),
    seed: int = typer.Option(7, "--seed", help="Random seed: the same seed gives the same files and numbers."),
    faers_reports: int = typer.Option(SYNTHETIC_FAERS_REPORTS, "--faers-reports", min=5000,
                                      help="Reports in the synthetic FAERS quarter (a real quarter has about 400,000)."),
) -> None:
    """End to end: simulate a clinic, emulate both target trials, scan FAERS, grade the evidence, write the report."""
    started = time.monotonic()
    if (out / "store.duckdb").exists():
        shutil.rmtree(out)
    with ExitStack() as bar:  # the simulation's progress bar, closed once the store is written
        advance = bar.enter_context(progress_bar(f"simulating {patients:,} patients", patients))

        def on_done(what: str, value: Any) -> None:
            if what == "store":
                bar.close()
            _show(what, value)

        def network(folder: Path, results: Path):
            return run_network_demo(folder / "network", results, scenario=scenario, patients=site_patients(patients),
                                    seed=seed, on_stage=lambda text: console.print(text, highlight=False))

        def action():
            return run_demo(out, scenario=scenario, patients=patients, seed=seed, faers_reports=faers_reports,
                            on_stage=lambda i, title: console.rule(f"{i}/{STAGES} {title}"), on_done=on_done,
                            on_patients=advance, network=network)

        run = run_cli(action)
    console.rule(f"{STAGES}/{STAGES} evidence grade and report")
    with console.status("grading and writing the report"):
        paths = run_cli(lambda: write_report(run.results, out / "report.html"))
    console.rule("the simulator's ground truth (what a perfect analysis would find)")
    print_truth(run.simulation)
    console.print(f"\nReport: [bold]{paths.html}[/] (also {paths.markdown.name}, {paths.json.name})")
    console.print(f"Answer: [bold]{paths.sentence}[/]", highlight=False)
    console.print(f"All patient numbers come from simulated data. Demo took {time.monotonic() - started:.0f} s.")
