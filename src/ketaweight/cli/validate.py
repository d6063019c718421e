"""CLI: ketaweight validate estimators | mechanisms — the analyses against the simulator's truth
over replicate cohorts (slow: minutes; not part of make test)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from ketaweight.cli import app
from ketaweight.cli._common import console, make_table, progress_bar, run_cli
from ketaweight.cli.simulate import Measurement

OutcomeModel = Enum("OutcomeModel", {name: name for name in ("auto", "energy-balance", "free")}, type=str)  # type: ignore[misc]
"""The mediation's outcome models (``[mechanisms.mediation] outcome_model``)."""

validate_app = typer.Typer(help="Check the analyses against the simulator's ground truth over replicate cohorts "
                           "(slow: minutes).", no_args_is_help=True)
app.add_typer(validate_app, name="validate")


@validate_app.command("estimators")
def validate_estimators_command(
    study: str = typer.Option("ketamine-weight", "--study", help="Shipped study name or a study TOML."),
    grid: bool = typer.Option(False, "--grid", help="Run the scenario grid (harder worlds, flexible learners; hours) "
                              "instead of --scenarios; writes validation-grid.json/.md."),
    grid_file: Path | None = typer.Option(None, "--grid-file", help="With --grid: a grid TOML of your own "
                                          "([[entry]] name, scenario, patients) instead of the shipped one."),
    entries: str | None = typer.Option(None, "--entries", help="With --grid: comma-separated entry names to run "
                                       "(each keeps the cohorts it has in the whole grid)."),
    estimators: str | None = typer.Option(None, "--estimators", help="With --grid: comma-separated estimator labels "
                                          "(default: all but the two 'augmented+calibrated' ones; e.g. 'aipw (augmented),aipw (linear)')."),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Worker processes (default: every core)."),
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
    """Coverage and bias of every estimator against the simulator's ground truth (slow: minutes; --grid: hours)."""
    if grid:
        _validate_grid(study, grid_file, replicates, truth_patients, seed, workers, out, replace,
                       entries=_names(entries), estimators=_names(estimators), scheduler=scheduler,
                       checkpoint=checkpoint)
        return
    if entries or estimators:
        raise typer.BadParameter("--entries and --estimators choose within the grid: add --grid",
                                 param_hint="--entries/--estimators")
    from ketaweight.core.replicates import validate_scheduler
    from ketaweight.pipelines.validation import validate, validation_paths, write_validation

    run_cli(lambda: validation_paths(out, replace=replace))  # refuse before minutes of work, not after
    run_cli(lambda: validate_scheduler(scheduler))
    names = _names(scenarios) or ()

    def action():
        with progress_bar(f"{replicates} replicates × {len(names)} scenarios", replicates * len(names)) as advance:
            return validate(study, names, replicates=replicates, n_patients=patients,
                            truth_patients=truth_patients, seed=seed, workers=workers, on_replicate=advance,
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


def _names(text: str | None) -> tuple[str, ...] | None:
    """A comma-separated option as names (None when not given)."""
    return None if text is None else tuple(t.strip() for t in text.split(",") if t.strip())


def _validate_grid(study: str, grid_file: Path | None, replicates: int, truth_patients: int, seed: int,
                   workers: int | None, out: Path, replace: bool, *, entries: tuple[str, ...] | None,
                   estimators: tuple[str, ...] | None, scheduler: str | None, checkpoint: Path | None) -> None:
    """The --grid form: every grid entry (or ``entries``) × estimator; results written after each entry (an
    interrupted run keeps the entries it finished, marked partial; with --checkpoint, every finished replicate)."""
    from ketaweight.core.replicates import validate_scheduler
    from ketaweight.pipelines.validation_grid import (DEFAULT_GRID_ESTIMATORS, PRIMARY, check_selection, grid_paths, load_grid,
                                                      meets_target, validate_grid, write_grid)

    run_cli(lambda: grid_paths(out, replace=replace))
    run_cli(lambda: validate_scheduler(scheduler))
    grid = run_cli(lambda: load_grid(grid_file))
    labels = estimators or DEFAULT_GRID_ESTIMATORS
    run_cli(lambda: check_selection(grid, entries, labels))
    chosen = [e for e in grid if entries is None or e.name in entries]
    settings = dict(study=study, seed=seed, replicates=replicates, truth_patients=truth_patients,
                    grid_file=str(grid_file) if grid_file else "shipped", estimators=list(labels),
                    entries=[e.name for e in chosen])

    def action():
        run = dict(replicates=replicates, truth_patients=truth_patients, seed=seed, workers=workers,
                   estimators=labels, entries=entries, scheduler=scheduler, checkpoint=checkpoint)
        with progress_bar(f"{replicates} replicates × {len(chosen)} scenarios", replicates * len(chosen)) as advance:
            return validate_grid(study, grid, **run, on_replicate=advance,
                                 on_entry=lambda rows: write_grid(rows, out, partial=True, **settings))

    rows = run_cli(action)
    json_path, md_path = run_cli(lambda: write_grid(rows, out, partial=False, **settings))
    table = make_table("scenario", "estimator", "bias/SE", "coverage", "target",
                       title=f"Validation grid ({replicates} replicates per scenario)",
                       right=("bias/SE", "coverage"))
    for r in rows:
        target = ("met" if meets_target(r) else "not met") if r.method == PRIMARY else ""
        table.add_row(r.scenario, r.method, f"{100 * r.bias_over_se:+.1f}%", f"{100 * r.coverage:.1f}%", target)
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
    workers: int | None = typer.Option(None, "--workers", min=1, help="Worker processes (default: every core)."),
    seed: int = typer.Option(2026, "--seed", help="Master seed (replicate seeds are spawned from it)."),
    out: Path = typer.Option(Path("validation-output"), "--out", "-o",
                             help="Folder for mechanisms-validation-<measurement>.json/.md."),
    measurement: Measurement = typer.Option("clinic", "--measurement",
                                            help="clinic: the scenarios' records; research: every mediator measured "
                                                 "without noise, bias or missed weeks (the estimator's check under its assumptions); "
                                                 "substudy: clinic records plus a research-grade validation substudy of 10%."),
    intermediate_in_outcome: bool | None = typer.Option(
        None, "--intermediate-in-outcome/--no-intermediate-in-outcome",
        help="Override the study's [mechanisms.mediation] intermediate_in_outcome (default: as the study says)."),
    outcome_model: OutcomeModel | None = typer.Option(
        None, "--outcome-model", help="Override the study's [mechanisms.mediation] outcome_model: energy-balance (one "
        "kcal-to-kg coefficient for the energy mediators), free (one per mediator) or auto (default: as the study says)."),
    mediation_only: bool = typer.Option(False, "--mediation-only", help="Check mediation only (skips dose-response "
                                        "and per-patient effects, most of each replicate's time)."),
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
    names = _names(scenarios) or ()

    def action():
        spec = load_study(study)
        if intermediate_in_outcome is not None:
            spec = spec.with_mediation(intermediate_in_outcome=intermediate_in_outcome)
        if outcome_model is not None:
            spec = spec.with_mediation(outcome_model=outcome_model.value)
        settings["intermediate_in_outcome"] = spec.mechanisms.mediation.intermediate_in_outcome
        settings["outcome_model"] = spec.mechanisms.mediation.outcome_model
        with progress_bar(f"{replicates} replicates × {len(names)} scenarios", replicates * len(names)) as advance:
            return validate_mechanisms(spec, names, replicates=replicates, n_patients=patients, n_bootstrap=bootstrap,
                                       seed=seed, measurement=measurement.value, mediation_only=mediation_only,
                                       on_replicate=advance, scheduler=scheduler, workers=workers,
                                       checkpoint=checkpoint)

    settings: dict[str, bool | str] = {}

    rows, extra = run_cli(action)
    *_, text = run_cli(lambda: write_mechanisms_validation(
        rows, extra, out, study=study, seed=seed, replicates=replicates, patients=patients, n_bootstrap=bootstrap,
        measurement=measurement.value, replace=replace, **settings))
    console.print(text)
