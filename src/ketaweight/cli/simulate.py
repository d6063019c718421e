"""CLI: ketaweight simulate and ketaweight scenarios."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ketaweight.cli import app
from ketaweight.cli._common import console, make_table, progress_bar, run_cli
from ketaweight.core.vocabulary import MEASUREMENT_DESIGNS

if TYPE_CHECKING:
    from ketaweight.sources.simulator import SimulationResult


class ExportFormat(str, Enum):
    duckdb = "duckdb"
    csv = "csv"
    parquet = "parquet"


Measurement = Enum("Measurement", {name: name for name in MEASUREMENT_DESIGNS}, type=str)  # type: ignore[misc]
"""The simulator's measurement designs as a CLI choice (:data:`ketaweight.core.vocabulary.MEASUREMENT_DESIGNS`)."""


def simulate_with_progress(scenario: str, patients: int, seed: int, out: Path, export: str = "duckdb",
                           truth: bool = True, measurement: str = "clinic") -> tuple[SimulationResult, Path]:
    """:func:`~ketaweight.pipelines.simulation.run_simulation` with a progress bar and stage messages."""
    from ketaweight.pipelines.simulation import run_simulation
    from ketaweight.sources.simulator import load_scenario, with_measurement
    from ketaweight.sources.simulator.run import n_simulated_days

    s = with_measurement(load_scenario(scenario), measurement)
    with progress_bar(f"simulating {patients:,} patients × {n_simulated_days(s)} days ({s.name})", patients) as advance:
        return run_simulation(scenario, patients, seed, out, export, truth, measurement, on_patients=advance,  # type: ignore[arg-type]
                              on_stage=lambda text: console.print(text))


def print_truth(result: SimulationResult) -> None:
    from ketaweight.cli.tables import truth_table

    table = truth_table(result)
    if table is not None:
        console.print(table)


@app.command("simulate")
def simulate_command(
    scenario: str = typer.Option("article", "--scenario", "-s", help="Built-in scenario name (see 'ketaweight scenarios') or a TOML file."),
    patients: int = typer.Option(20000, "--patients", "-n", min=1, help="Number of virtual patients."),
    seed: int = typer.Option(7, "--seed", help="Random seed; the same seed gives identical files."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (new or empty, or an earlier simulation's with --replace): store.duckdb, truth.json, patient_truth.parquet."),
    export: ExportFormat = typer.Option(ExportFormat.duckdb, "--format", help="Also export the tables as CSV or Parquet into OUT/<format>/."),
    truth: bool = typer.Option(True, "--truth/--no-truth", help="Simulate the counterfactual worlds and write the ground truth."),
    measurement: Measurement = typer.Option("clinic", "--measurement",
                                            help="clinic: records as the scenario says (consumer wearables for some patients); "
                                                 "research: weekly intake, activity and expenditure for everyone, without noise, bias or missed weeks."),
    replace: bool = typer.Option(False, "--replace", help="Replace an earlier simulation's output in --out (files you added there are kept)."),
) -> None:
    """Simulate a ketamine-clinic cohort with a known ground truth."""
    from ketaweight.core.outputs import staged_folder

    def action():
        with staged_folder(out, replace=replace) as work:
            result, _ = simulate_with_progress(scenario, patients, seed, work, export.value, truth, measurement.value)
        return result

    result = run_cli(action)
    console.print(f"store: [bold]{out / 'store.duckdb'}[/]")
    if result.truth is not None:
        console.print(f"truth: [bold]{out / 'truth.json'}[/] and {out / 'patient_truth.parquet'}")
    print_truth(result)


@app.command("scenarios")
def scenarios_command() -> None:
    """List the built-in simulator scenarios."""
    from ketaweight.sources.simulator import builtin_scenarios, load_scenario

    table = make_table("name", "description", title="Built-in scenarios")
    for name in builtin_scenarios():
        table.add_row(name, load_scenario(name).description)
    console.print(table)
