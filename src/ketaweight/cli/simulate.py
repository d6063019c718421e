"""CLI: ``ketaweight simulate`` and ``ketaweight scenarios``."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer
from rich.table import Table as RichTable

from ketaweight.cli import app
from ketaweight.cli._common import console, progress_bar, run_cli
from ketaweight.cli.tables import truth_table
from ketaweight.pipelines.network_simulation import SimulatedNetwork, run_network_simulation
from ketaweight.pipelines.simulation import run_simulation
from ketaweight.sources.simulator import MEASUREMENTS, SimulationResult, builtin_scenarios, load_scenario, with_measurement
from ketaweight.sources.simulator.run import n_simulated_days


class ExportFormat(str, Enum):
    duckdb = "duckdb"
    csv = "csv"
    parquet = "parquet"


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
    export: ExportFormat = typer.Option(ExportFormat.duckdb, "--format", help="Also export the tables as CSV or Parquet into OUT/<format>/."),
    truth: bool = typer.Option(True, "--truth/--no-truth", help="Simulate the counterfactual worlds and write the ground truth."),
    measurement: Measurement = typer.Option("clinic", "--measurement",
                                            help="clinic: records as the scenario says (consumer wearables for some patients); "
                                                 "research: weekly intake, activity and expenditure for everyone, without noise, bias or missed weeks."),
    sites: int = typer.Option(1, "--sites", min=1, max=50,
                              help="Simulate a network of this many site stores (OUT/site-1/ …) that differ in size, case mix, "
                                   "confounding strength and measurement quality, with OUT/network_truth.json."),
    unmeasured_site: bool = typer.Option(True, "--unmeasured-site/--no-unmeasured-site",
                                         help="With --sites ≥ 2: the last site has an unmeasured confounder (a known bias)."),
) -> None:
    """Simulate a ketamine-clinic cohort with a known ground truth (or a network of sites with --sites)."""
    if sites > 1:
        net = run_cli(lambda: _simulate_network(scenario, sites, patients, seed, out, export.value, truth, measurement.value,
                                                unmeasured_site))
        print_network_truth(net)
        return
    result, store_path = run_cli(lambda: simulate_with_progress(scenario, patients, seed, out, export.value, truth,
                                                                measurement.value))
    console.print(f"store: [bold]{store_path}[/]")
    if result.truth is not None:
        console.print(f"truth: [bold]{out / 'truth.json'}[/] and {out / 'patient_truth.parquet'}")
    print_truth(result)


def _simulate_network(scenario: str, sites: int, patients: int, seed: int, out: Path, export: str, truth: bool,
                      measurement: str, unmeasured_site: bool) -> SimulatedNetwork:
    with progress_bar(f"simulating {sites} sites of about {patients:,} patients", None) as advance:
        return run_network_simulation(scenario, sites, patients, seed, out, export=export, truth=truth,  # type: ignore[arg-type]
                                      measurement=measurement, unmeasured_site=unmeasured_site, on_patients=advance,
                                      on_site=lambda s: console.print(f"{s.name}: {s.n_patients:,} patients"
                                                                      + (" (unmeasured confounder)" if s.unmeasured_confounder else ""),
                                                                      highlight=False))


def print_network_truth(net: SimulatedNetwork) -> None:
    """Each site's store and true effect, and the network's."""
    table = RichTable(title="Simulated network: sites and their ground truth (weight change at 84 days, kg)",
                      caption=f"stores under {net.truth_path.parent}")
    for col in ("site", "patients", "store", "unmeasured confounder", "true ATE"):
        table.add_column(col, justify="right" if col in ("patients", "true ATE") else "left")
    for spec, store, row in zip(net.sites, net.stores, net.truth["sites"]):
        ate = row["weight_change_kg"]["ate"] if row["weight_change_kg"] else None
        table.add_row(spec.name, f"{spec.n_patients:,}", f"{store.parent.name}/{store.name}", "yes" if spec.unmeasured_confounder else "no",
                      "—" if ate is None else f"{ate:+.3f}")
    console.print(table)
    if "weight_change_kg" in net.truth:
        w = net.truth["weight_change_kg"]
        console.print(f"network truth: {w['ate_patient_weighted']:+.3f} kg (all patients), {w['ate_mean_of_sites']:+.3f} kg "
                      f"(mean of sites); negative controls: 0", highlight=False)
    console.print(f"truth: [bold]{net.truth_path}[/]")


@app.command("scenarios")
def scenarios_command() -> None:
    """List the built-in simulator scenarios."""
    table = RichTable(title="Built-in scenarios")
    table.add_column("name")
    table.add_column("description")
    for name in builtin_scenarios():
        table.add_row(name, load_scenario(name).description)
    console.print(table)
