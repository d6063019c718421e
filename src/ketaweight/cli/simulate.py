"""CLI: ``ketaweight simulate`` and ``ketaweight scenarios``."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer
from rich.table import Table as RichTable

from ketaweight.cli import app
from ketaweight.cli._common import console, progress_bar, run_cli
from ketaweight.cli.store import print_store_summary
from ketaweight.simulate import MEASUREMENTS, builtin_scenarios, load_scenario, simulate, with_measurement, write_truth
from ketaweight.simulate.run import SimulationResult, n_simulated_days
from ketaweight.store import Store


class ExportFormat(str, Enum):
    duckdb = "duckdb"
    csv = "csv"
    parquet = "parquet"


Measurement = Enum("Measurement", {name: name for name in MEASUREMENTS}, type=str)  # type: ignore[misc]
"""The simulator's measurement designs as a CLI choice (from :data:`ketaweight.simulate.MEASUREMENTS`)."""


def run_simulation(scenario: str, patients: int, seed: int, out: Path, export: ExportFormat,
                   truth: bool, measurement: str = "clinic") -> tuple[SimulationResult, Path]:
    """Simulate, write the store (and optional CSV/Parquet copy) and the truth into ``out``."""
    s = with_measurement(load_scenario(scenario), measurement)
    store_path = out / "store.duckdb"
    if store_path.exists():
        raise ValueError(f"{store_path} already exists; choose an empty --out folder or delete it")
    with progress_bar(f"simulating {patients:,} patients × {n_simulated_days(s)} days ({s.name})", patients) as advance:
        result = simulate(s, patients, seed, truth=truth, on_patients=advance)
    out.mkdir(parents=True, exist_ok=True)
    with console.status("writing the store"), Store(store_path) as store:
        store.load_frames(result.tables, label=f"simulated scenario '{s.name}'")
        if export is not ExportFormat.duckdb:
            store.export(out / export.value, export.value)
    write_truth(result, out)
    return result, store_path


def print_truth(result: SimulationResult) -> None:
    t = result.truth
    if t is None:
        return
    table = RichTable(title=f"Ground truth at {t['horizon_days']} days (simulated, scenario '{result.scenario.name}')")
    for col in ("quantity", "ATE", "ATT"):
        table.add_column(col, justify="right" if col != "quantity" else "left")
    rows = [("weight change, kg", t["weight_change_kg"]), ("weight change, %", t["weight_change_pct"])]
    rows += [(f"  via {k}, kg" if k != "interaction" else "  pathway interaction, kg", v)
             for k, v in t["pathways_kg"].items()]
    rows += [(f"MADRS change at {day.replace('_', ' ')}, points", v) for day, v in t["madrs_points"].items()]
    rows += [("resting HR (negative control), bpm", t["negative_control_resting_hr_bpm"])]
    for label, v in rows:
        table.add_row(label, f"{v['ate']:+.3f}", f"{v['att']:+.3f}")
    table.add_row("crude difference of true change, kg", f"{t['crude_difference_true_weight_change_kg']:+.3f}", "")
    console.print(table)


@app.command("simulate")
def simulate_command(
    scenario: str = typer.Option("article", "--scenario", "-s", help="Built-in scenario name (see `ketaweight scenarios`) or a TOML file."),
    patients: int = typer.Option(20000, "--patients", "-n", min=1, help="Number of virtual patients."),
    seed: int = typer.Option(7, "--seed", help="Random seed; the same seed gives identical files."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: store.duckdb, truth.json, patient_truth.parquet."),
    export: ExportFormat = typer.Option(ExportFormat.duckdb, "--format", help="Also export the tables as CSV or Parquet into OUT/<format>/."),
    truth: bool = typer.Option(True, "--truth/--no-truth", help="Simulate the counterfactual worlds and write the ground truth."),
    measurement: Measurement = typer.Option("clinic", "--measurement",
                                            help="clinic: records as the scenario says (consumer wearables for some patients); "
                                                 "research: weekly intake, activity and expenditure for everyone, without noise, bias or missed weeks."),
) -> None:
    """Simulate a ketamine-clinic cohort with a known ground truth."""
    result, store_path = run_cli(lambda: run_simulation(scenario, patients, seed, out, export, truth, measurement.value))
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
