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
    from ketaweight.pipelines.network_simulation import SimulatedNetwork
    from ketaweight.sources.simulator import SimulationResult


class ExportFormat(str, Enum):
    duckdb = "duckdb"
    csv = "csv"
    parquet = "parquet"
    omop = "omop"
    fhir = "fhir"


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
    export: ExportFormat = typer.Option(ExportFormat.duckdb, "--format", help="Also export the tables as CSV, Parquet, an OMOP CDM 5.4 (CSV) or FHIR R4 (NDJSON) into OUT/<format>/."),
    truth: bool = typer.Option(True, "--truth/--no-truth", help="Simulate the counterfactual worlds and write the ground truth."),
    measurement: Measurement = typer.Option("clinic", "--measurement",
                                            help="clinic: records as the scenario says (consumer wearables for some patients); "
                                                 "research: weekly intake, activity and expenditure for everyone, without noise, bias or missed weeks; "
                                                 "substudy: clinic records plus reference-method intake and expenditure for a random 10%."),
    replace: bool = typer.Option(False, "--replace", help="Replace an earlier simulation's output in --out (files you added there are kept)."),
    sites: int = typer.Option(1, "--sites", min=1, max=50,
                              help="Simulate a network of this many site stores (OUT/site-1/, OUT/site-2/, ...) that differ in size, case mix, "
                                   "confounding strength and measurement quality, with OUT/network_truth.json."),
    unmeasured_site: bool = typer.Option(True, "--unmeasured-site/--no-unmeasured-site",
                                         help="With --sites 2 or more: the last site has an unmeasured confounder (a known bias)."),
) -> None:
    """Simulate a ketamine-clinic cohort with a known ground truth (or a network of sites with --sites)."""
    from ketaweight.core.outputs import staged_folder
    from ketaweight.pipelines.imports import export_store

    if sites > 1:
        if export.value in ("omop", "fhir"):
            raise typer.BadParameter("--sites writes DuckDB, CSV or Parquet site stores; export a site's store with "
                                     "'ketaweight store export' instead", param_hint="--format")

        def network_action():
            with staged_folder(out, replace=replace) as work:  # every site's store appears together, or none
                return _simulate_network(scenario, sites, patients, seed, work, export.value, truth, measurement.value,
                                         unmeasured_site)

        print_network_truth(run_cli(network_action), out)
        return
    table_export = export.value if export.value in ("duckdb", "csv", "parquet") else "duckdb"

    def action():
        with staged_folder(out, replace=replace) as work:  # the store and every export appear together, or none
            result, store_path = simulate_with_progress(scenario, patients, seed, work, table_export, truth,
                                                        measurement.value)
            if export.value in ("omop", "fhir"):
                export_store(store_path, work / export.value, export.value)  # type: ignore[arg-type]
        return result

    result = run_cli(action)
    if export.value in ("omop", "fhir"):
        console.print(f"{export.value}: [bold]{out / export.value}[/]")
    console.print(f"store: [bold]{out / 'store.duckdb'}[/]")
    if result.truth is not None:
        console.print(f"truth: [bold]{out / 'truth.json'}[/] and {out / 'patient_truth.parquet'}")
    print_truth(result)


def _simulate_network(scenario: str, sites: int, patients: int, seed: int, out: Path, export: str, truth: bool,
                      measurement: str, unmeasured_site: bool) -> SimulatedNetwork:
    from ketaweight.pipelines.network_simulation import run_network_simulation

    with progress_bar(f"simulating {sites} sites of about {patients:,} patients", None) as advance:
        return run_network_simulation(scenario, sites, patients, seed, out, export=export, truth=truth,  # type: ignore[arg-type]
                                      measurement=measurement, unmeasured_site=unmeasured_site, on_patients=advance,
                                      on_site=lambda s: console.print(f"{s.name}: {s.n_patients:,} patients"
                                                                      + (" (unmeasured confounder)" if s.unmeasured_confounder else ""),
                                                                      highlight=False))


def print_network_truth(net: SimulatedNetwork, out: Path) -> None:
    """Each site's store and true effect, and the network's (paths shown under ``out``, where they were moved)."""
    table = make_table("site", "patients", "store", "unmeasured confounder", "true ATE",
                       title="Simulated network: sites and their ground truth (weight change at 84 days, kg)",
                       caption=f"stores under {out}", right=("patients", "true ATE"))
    for spec, store, row in zip(net.sites, net.stores, net.truth.sites):
        ate = row.weight_change_kg.ate if row.weight_change_kg is not None else None
        table.add_row(spec.name, f"{spec.n_patients:,}", f"{store.parent.name}/{store.name}", "yes" if spec.unmeasured_confounder else "no",
                      "—" if ate is None else f"{ate:+.3f}")
    console.print(table)
    w = net.truth.weight_change_kg
    if w is not None:
        console.print(f"network truth: {w.ate_patient_weighted:+.3f} kg (all patients), {w.ate_mean_of_sites:+.3f} kg "
                      f"(mean of sites); negative controls: 0", highlight=False)
    console.print(f"truth: [bold]{out / net.truth_path.name}[/]")


@app.command("scenarios")
def scenarios_command() -> None:
    """List the built-in simulator scenarios."""
    from ketaweight.sources.simulator import builtin_scenarios, load_scenario

    table = make_table("name", "description", title="Built-in scenarios")
    for name in builtin_scenarios():
        table.add_row(name, load_scenario(name).description)
    console.print(table)
