"""CLI: ketaweight validate estimators | mechanisms — the analyses against the simulator's truth
over replicate cohorts (slow: minutes; not part of make test)."""

from __future__ import annotations

from pathlib import Path

import typer

from ketaweight.cli import app
from ketaweight.cli._common import console, make_table, progress_bar, run_cli
from ketaweight.cli.simulate import Measurement

validate_app = typer.Typer(help="Check the analyses against the simulator's ground truth over replicate cohorts "
                           "(slow: minutes).", no_args_is_help=True)
app.add_typer(validate_app, name="validate")


@validate_app.command("estimators")
def validate_estimators_command(
    study: str = typer.Option("ketamine-weight", "--study", help="Shipped study name or a study TOML."),
    scenarios: str = typer.Option("null,article", "--scenarios", help="Comma-separated simulator scenarios."),
    replicates: int = typer.Option(200, "--replicates", "-r", min=2, help="Replicate cohorts per scenario."),
    patients: int = typer.Option(5000, "--patients", "-n", min=200, help="Patients per replicate cohort."),
    truth_patients: int = typer.Option(200_000, "--truth-patients", min=1000, help="Patients in the large cohort that gives the truth."),
    seed: int = typer.Option(2026, "--seed", help="Master seed (replicate seeds are spawned from it)."),
    out: Path = typer.Option(Path("validation-output"), "--out", "-o", help="Folder for validation.json and validation.md."),
    replace: bool = typer.Option(False, "--replace", help="Replace earlier validation files in --out."),
    scheduler: str | None = typer.Option(None, "--scheduler", help="Run the replicates on Dask: 'local:N' (a local "
                                         "cluster of N processes) or a scheduler address (tcp://host:8786); "
                                         "same results as without (docs/scale.md)."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Keep finished replicates in this file "
                                           "(one per scenario beside it); a rerun resumes from them."),
) -> None:
    """Coverage and bias of every estimator against the simulator's ground truth (slow: minutes)."""
    from ketaweight.pipelines.validation import validate, validation_paths, write_validation

    from ketaweight.core.replicates import validate_scheduler

    run_cli(lambda: validation_paths(out, replace=replace))  # refuse before minutes of work, not after
    run_cli(lambda: validate_scheduler(scheduler))
    names = tuple(s.strip() for s in scenarios.split(",") if s.strip())

    def action():
        with progress_bar(f"{replicates} replicates × {len(names)} scenarios", replicates * len(names)) as advance:
            return validate(study, names, replicates=replicates, n_patients=patients,
                            truth_patients=truth_patients, seed=seed, on_replicate=advance,
                            scheduler=scheduler, checkpoint=checkpoint)

    rows = run_cli(action)
    json_path, md_path = run_cli(lambda: write_validation(rows, out, study=study, seed=seed, replicates=replicates,
                                                          patients=patients, replace=replace))
    table = make_table("scenario", "outcome", "method", "truth", "bias", "bias/SE", "coverage",
                       title=f"Validation against simulator truth ({replicates} replicates × {patients:,} patients)",
                       right=("truth", "bias", "bias/SE", "coverage"))
    for r in rows:
        table.add_row(r.scenario, r.outcome, r.method, f"{r.truth:+.3f}", f"{r.bias:+.4f}",
                      f"{100 * r.bias_over_se:+.1f}%", f"{100 * r.coverage:.1f}%")
    console.print(table)
    console.print(f"written: {json_path}, {md_path}")


@validate_app.command("mechanisms")
def validate_mechanisms_command(
    study: str = typer.Option("ketamine-weight", "--study", help="Shipped study name or a study TOML."),
    scenarios: str = typer.Option("null,appetite,metabolic,mood-activity,article", "--scenarios",
                                  help="Comma-separated simulator scenarios."),
    replicates: int = typer.Option(20, "--replicates", "-r", min=2, help="Replicate cohorts per scenario."),
    patients: int = typer.Option(10_000, "--patients", "-n", min=1000, help="Patients per replicate cohort."),
    bootstrap: int = typer.Option(200, "--bootstrap", min=50, help="Mediation bootstrap replicates per cohort."),
    seed: int = typer.Option(2026, "--seed", help="Master seed (replicate seeds are spawned from it)."),
    out: Path = typer.Option(Path("validation-output"), "--out", "-o",
                             help="Folder for mechanisms-validation-<measurement>.json/.md."),
    measurement: Measurement = typer.Option("clinic", "--measurement",
                                            help="clinic: the scenarios' records; research: every mediator measured "
                                                 "without noise, bias or missed weeks (the estimator's check under its assumptions)."),
    intermediate_in_outcome: bool | None = typer.Option(
        None, "--intermediate-in-outcome/--no-intermediate-in-outcome",
        help="Override the study's [mechanisms.mediation] intermediate_in_outcome (default: as the study says)."),
    replace: bool = typer.Option(False, "--replace", help="Replace earlier mechanisms-validation files in --out."),
    scheduler: str | None = typer.Option(None, "--scheduler", help="Run the replicates on Dask: 'local:N' (a local "
                                         "cluster of N processes) or a scheduler address (tcp://host:8786); "
                                         "same results as without (docs/scale.md)."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Keep finished replicates in this file "
                                           "(one per scenario beside it); a rerun resumes from them."),
) -> None:
    """Mediation, dose-response and per-patient effects against the simulator's truth (slow: minutes)."""
    from ketaweight.pipelines.mechanisms_validation import (
        mechanisms_validation_paths,
        validate_mechanisms,
        write_mechanisms_validation,
    )
    from ketaweight.core.replicates import validate_scheduler
    from ketaweight.study import load_study

    run_cli(lambda: mechanisms_validation_paths(out, measurement.value, replace=replace))
    run_cli(lambda: validate_scheduler(scheduler))
    names = tuple(s.strip() for s in scenarios.split(",") if s.strip())

    def action():
        spec = load_study(study)
        if intermediate_in_outcome is not None:
            spec = spec.with_mediation(intermediate_in_outcome=intermediate_in_outcome)
        settings["intermediate_in_outcome"] = spec.mechanisms.mediation.intermediate_in_outcome
        with progress_bar(f"{replicates} replicates × {len(names)} scenarios", replicates * len(names)) as advance:
            return validate_mechanisms(spec, names, replicates=replicates, n_patients=patients, n_bootstrap=bootstrap,
                                       seed=seed, measurement=measurement.value, on_replicate=advance,
                                       scheduler=scheduler, checkpoint=checkpoint)

    settings: dict[str, bool] = {}

    rows, extra = run_cli(action)
    *_, text = run_cli(lambda: write_mechanisms_validation(
        rows, extra, out, study=study, seed=seed, replicates=replicates, patients=patients, n_bootstrap=bootstrap,
        measurement=measurement.value, replace=replace, **settings))
    console.print(text)
