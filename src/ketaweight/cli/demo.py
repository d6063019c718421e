"""CLI: ``ketaweight demo`` — the main job end to end on simulated data.

Simulate a ketamine-clinic cohort (scenario ``article`` by default), load it into the DuckDB
store, emulate both shipped target trials (weight, and depression as the therapeutic
context) with every estimator side by side, and compare with the simulator's truth.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import typer

from ketaweight.causal.io import results_table
from ketaweight.cli import app
from ketaweight.cli._common import console, run_cli
from ketaweight.cli.simulate import ExportFormat, print_truth, run_simulation
from ketaweight.cli.store import print_store_summary
from ketaweight.emulation import run_study
from ketaweight.store import Store

DEMO_STUDIES = ("ketamine-weight", "ketamine-depression")


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path("demo-output"), "--out", "-o", help="Output folder (an earlier demo there is replaced)."),
    scenario: str = typer.Option("article", "--scenario", "-s", help="Simulator scenario (e.g. article, null)."),
    patients: int = typer.Option(20000, "--patients", "-n", min=500, help="Number of virtual patients."),
    seed: int = typer.Option(7, "--seed", help="Random seed: the same seed gives the same files and numbers."),
) -> None:
    """End to end: simulate a clinic cohort, load the store, emulate both target trials, compare with the truth."""
    if (out / "store.duckdb").exists():
        shutil.rmtree(out)
    console.rule("1. simulate a ketamine-clinic cohort (synthetic data)")
    result, store_path = run_cli(lambda: run_simulation(scenario, patients, seed, out, ExportFormat.duckdb, True))
    with Store(store_path, read_only=True) as store:
        print_store_summary(store)
    for i, study in enumerate(DEMO_STUDIES, start=2):
        console.rule(f"{i}. target-trial emulation: {study}")
        with console.status(f"running {study}"):
            res = run_cli(lambda: run_study(store_path, study, out / "results"))
        for column, rs in res.results.items():
            console.print(results_table(rs))
        if res.negative_control is not None:
            console.print(f"negative control: {res.negative_control.interpretation}")
        console.print(f"results: {res.path}")
    console.rule("4. the simulator's ground truth (what a perfect analysis would find)")
    print_truth(result)
    console.print(f"\nDemo output in [bold]{out}[/] (all numbers come from simulated data)")
