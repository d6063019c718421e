"""CLI: ``ketaweight simulate`` and ``ketaweight scenarios``."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer
from rich.table import Table as RichTable

from ketaweight.cli import app
from ketaweight.cli._common import console, progress_bar, run_cli
from ketaweight.cli.tables import truth_table
from ketaweight.pipelines.imports import export_store
from ketaweight.pipelines.simulation import run_simulation
from ketaweight.sources.simulator import MEASUREMENTS, SimulationResult, builtin_scenarios, load_scenario, with_measurement
from ketaweight.sources.simulator.run import n_simulated_days


class ExportFormat(str, Enum):
    duckdb = "duckdb"
    csv = "csv"
    parquet = "parquet"
    omop = "omop"
    fhir = "fhir"


Measurement = Enum("Measurement", {name: name for name in MEASUREMENTS}, type=str)  # type: ignore[misc]
"""The simulator's measurement designs as a CLI choice (from :data:`ketaweight.sources.simulator.MEASUREMENTS`)."""


def simulate_with_progress(scenario: str, patients: int, seed: int, out: Path, export: str = "duckdb",
                           truth: bool = True, measurement: str = "clinic") -> tuple[SimulationResult, Path]:
    """:func:`~ketaweight.pipelines.simulation.run_simulation` with a progress bar and stage messages."""
    s = with_measurement(load_scenario(scenario), measurement)
    with progress_bar(f"simulating {patients:,} patients × {n_simulated_days(s)} days ({s.name})", patients) as advance:
        return run_simulation(scenario, patients, seed, out, export, truth, measurement, on_patients=advance,  # type: ignore[arg-type]
                              on_stage=lambda text: console.print(text))


def print_truth(result: SimulationResult) -> None:
    table = truth_table(result)
    if table is not None:
        console.print(table)


@app.command("simulate")
def simulate_command(
    scenario: str = typer.Option("article", "--scenario", "-s", help="Built-in scenario name (see `ketaweight scenarios`) or a TOML file."),
    patients: int = typer.Option(20000, "--patients", "-n", min=1, help="Number of virtual patients."),
    seed: int = typer.Option(7, "--seed", help="Random seed; the same seed gives identical files."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: store.duckdb, truth.json, patient_truth.parquet."),
    export: ExportFormat = typer.Option(ExportFormat.duckdb, "--format", help="Also export the tables as CSV, Parquet, an OMOP CDM 5.4 (CSV) or FHIR R4 (NDJSON) into OUT/<format>/."),
    truth: bool = typer.Option(True, "--truth/--no-truth", help="Simulate the counterfactual worlds and write the ground truth."),
    measurement: Measurement = typer.Option("clinic", "--measurement",
                                            help="clinic: records as the scenario says (consumer wearables for some patients); "
                                                 "research: weekly intake, activity and expenditure for everyone, without noise, bias or missed weeks."),
) -> None:
    """Simulate a ketamine-clinic cohort with a known ground truth."""
    table_export = export.value if export.value in ("duckdb", "csv", "parquet") else "duckdb"
    result, store_path = run_cli(lambda: simulate_with_progress(scenario, patients, seed, out, table_export, truth,
                                                                measurement.value))
    if export.value in ("omop", "fhir"):
        run_cli(lambda: export_store(store_path, out / export.value, export.value))  # type: ignore[arg-type]
        console.print(f"{export.value}: [bold]{out / export.value}[/]")
    console.print(f"store: [bold]{store_path}[/]")
    if result.truth is not None:
        console.print(f"truth: [bold]{out / 'truth.json'}[/] and {out / 'patient_truth.parquet'}")
    print_truth(result)


@app.command("scenarios")
def scenarios_command() -> None:
    """List the built-in simulator scenarios."""
    table = RichTable(title="Built-in scenarios")
    table.add_column("name")
    table.add_column("description")
    for name in builtin_scenarios():
        table.add_row(name, load_scenario(name).description)
    console.print(table)
