"""CLI: ketaweight demo — the main job end to end: from nothing to the graded answer and its report.

Runs :func:`ketaweight.pipelines.demo.run_demo` (simulate, both target trials, mechanisms,
responsible use, FAERS signals, and a 3-site network) with progress, then :func:`ketaweight.report.render.write_report`;
prints each stage's tables, the report's path and the answer beside the simulator's truth.  The
whole output folder is built in a temporary folder beside it and moved into place at the end
(:func:`ketaweight.core.outputs.staged_folder`): an error or Ctrl-C leaves the target as it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

import typer

from ketaweight.cli import app
from ketaweight.cli._common import console, progress_bar, run_cli
from ketaweight.core.vocabulary import SYNTHETIC_FAERS_REPORTS


def _show(what: str, value: Any) -> None:
    """Print one finished piece of the demo."""
    from ketaweight.cli.store import print_store_summary
    from ketaweight.cli.tables import print_results
    from ketaweight.core.privacy import mask_count
    from ketaweight.store import Store

    if what == "store":
        with Store(value, read_only=True) as store:
            print_store_summary(store)
    elif what == "study":
        for rs in value.results.values():
            print_results(rs, console)
        if value.negative_control is not None:
            console.print(f"negative control: {value.negative_control.interpretation}", highlight=False)
    elif what == "mechanisms" and value.mediation is not None:
        console.print(value.mediation.summary().as_text(), highlight=False)
    elif what == "responsible_use":
        for f in value.flags:
            console.print(f"{f.flag}: {mask_count(f.count)} {f.unit}", highlight=False)
    elif what == "signals":
        console.print(value.to_rich_table())
    elif what == "network":
        from ketaweight.cli.network import print_network

        print_network(value.result)


def network_step(out: Path, results: Path, on_text: Callable[[str], None], *, scenario: str, patients: int,
                 seed: int) -> Any:
    """The demo's network step (stage 7): the sites of a demo of ``patients`` in ``out/network``, the
    synthesis in ``results``.  Module-level so that the demo can run it in a worker process."""
    from ketaweight.network.demo import run_network_demo, site_patients

    return run_network_demo(out / "network", results, scenario=scenario, patients=site_patients(patients), seed=seed,
                            on_stage=on_text)


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path("demo-output"), "--out", "-o", help="Output folder (new, empty, or an earlier demo's with --replace)."),
    scenario: str = typer.Option("article", "--scenario", "-s", help="Simulator scenario (e.g. article, null)."),
    patients: int = typer.Option(20000, "--patients", "-n", min=500, help="Number of virtual patients."),
    seed: int = typer.Option(7, "--seed", help="Random seed: the same seed gives the same files and numbers."),
    faers_reports: int = typer.Option(SYNTHETIC_FAERS_REPORTS, "--faers-reports", min=5000,
                                      help="Reports in the synthetic FAERS quarter (a real quarter has about 400,000)."),
    replace: bool = typer.Option(False, "--replace", help="Replace an earlier demo's output in --out (files you added there are kept)."),
) -> None:
    """End to end: simulate a clinic, emulate both target trials, scan FAERS, grade the evidence, write the report."""
    from ketaweight.core.outputs import staged_folder
    from ketaweight.pipelines.demo import STAGES, run_demo
    from ketaweight.report.render import write_report

    started = time.monotonic()

    def action():
        with staged_folder(out, replace=replace) as work, ExitStack() as bar:
            if replace and out.exists():
                console.print(f"replacing the earlier demo output in {out}", highlight=False)
            advance = bar.enter_context(progress_bar(f"simulating {patients:,} patients", patients))

            def on_done(what: str, value: Any) -> None:
                if what == "store":
                    bar.close()  # the simulation's progress bar ends once the store is written
                _show(what, value)

            run = run_demo(work, scenario=scenario, patients=patients, seed=seed, faers_reports=faers_reports,
                           on_stage=lambda i, title: console.rule(f"{i}/{STAGES} {title}"), on_done=on_done,
                           on_patients=advance, on_text=lambda text: console.print(text, highlight=False),
                           network=partial(network_step, scenario=scenario, patients=patients, seed=seed))
            console.rule(f"{STAGES}/{STAGES} evidence grade and report")
            paths = write_report(run.results, work / "report.html")
        return run, paths

    run, paths = run_cli(action)
    from ketaweight.cli.simulate import print_truth

    console.rule("the simulator's ground truth (what a perfect analysis would find)")
    print_truth(run.simulation)
    console.print(f"\nReport: [bold]{out / paths.html.name}[/] (also {paths.markdown.name}, {paths.json.name})")
    console.print(f"Answer: [bold]{paths.sentence}[/]", highlight=False)
    console.print(f"All patient numbers come from simulated data. Demo took {time.monotonic() - started:.0f} s.")
