"""CLI: ``ketaweight analyze`` — estimators side by side on an analysis table.

A thin wrapper: :func:`ketaweight.pipelines.table_analysis.analyze_table` (``--table``) and
:func:`ketaweight.pipelines.emulation.run_study` (``--store/--study``) are the library calls; the
command only parses options and prints.  The engines are imported inside the command, so
``ketaweight --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ketaweight.cli import app
from ketaweight.cli._common import console, run_cli
from ketaweight.core.privacy import mask_count
from ketaweight.core.vocabulary import DEFAULT_METHODS, LEARNERS, METHODS, PROPENSITY_CALIBRATIONS, TRIM_RULES

if TYPE_CHECKING:
    from ketaweight.causal.result import CausalResult
    from ketaweight.causal.sensitivity import NegativeControl
    from ketaweight.core.attrition import AttritionStep


class EstimandOption(str, Enum):
    ATE = "ATE"
    ATT = "ATT"
    ATO = "ATO"


LearnerOption = Enum("LearnerOption", {name: name for name in LEARNERS}, type=str)  # type: ignore[misc]
CalibrationOption = Enum("CalibrationOption", {name: name for name in PROPENSITY_CALIBRATIONS}, type=str)  # type: ignore[misc]
TrimOption = Enum("TrimOption", {name.replace("-", "_"): name for name in TRIM_RULES}, type=str)  # type: ignore[misc]


class MissingOutcomeOption(str, Enum):
    exclude = "exclude"
    censor = "censor"


class EngineOption(str, Enum):
    duckdb = "duckdb"
    spark = "spark"


class OnFailureOption(str, Enum):
    warn = "warn"
    raise_ = "raise"


@app.command("analyze")
def analyze_command(
    store: Path | None = typer.Option(None, "--store", help="Canonical DuckDB store (with --study): emulate the study's target trial."),
    study: str | None = typer.Option(None, "--study", help="Study spec TOML or shipped study name (ketamine-weight, ketamine-depression)."),
    table: Path | None = typer.Option(None, "--table", "-t", help="Or: an analysis table, one row per person (.csv or .parquet)."),
    treatment: str | None = typer.Option(None, "--treatment", help="With --table: 0/1 treatment column (1 = treated)."),
    outcome: str | None = typer.Option(None, "--outcome", help="With --table: numeric outcome column (e.g. weight change in kg)."),
    covariates: str | None = typer.Option(None, "--covariates", help="With --table: comma-separated baseline confounder columns."),
    categorical: str = typer.Option("", "--categorical", help="Comma-separated covariates entered as level indicators."),
    squared: str = typer.Option("", "--squared", help="Comma-separated numeric covariates that also enter squared."),
    censor: str | None = typer.Option(None, "--censor", help="0/1 column, 1 = lost to follow-up; enables censoring weights."),
    censor_covariates: str = typer.Option("", "--censor-covariates", help="Covariates of the censoring model (default: --covariates)."),
    missing_outcome: MissingOutcomeOption = typer.Option(MissingOutcomeOption.exclude, "--missing-outcome", help="A missing outcome not marked censored: exclude the row (counted) or treat it as censored."),
    estimand: EstimandOption | None = typer.Option(None, "--estimand", help="ATE (everyone; the default), ATT (the treated) or ATO (overlap-weighted; IPW, AIPW)."),
    estimators: str | None = typer.Option(None, "--estimators", help=f"Comma-separated methods among {', '.join(METHODS)} (default: {','.join(DEFAULT_METHODS)})."),
    learner: LearnerOption | None = typer.Option(None, "--learner", help="Nuisance models of AIPW/TMLE: linear (default), stacked (GLM + boosted trees) or augmented (stacked, GLMs on tree leaves too)."),
    propensity_calibration: CalibrationOption | None = typer.Option(None, "--propensity-calibration", help="Recalibrate AIPW/TMLE's cross-fitted propensity: none (default) or logistic (docs/validation.md)."),
    crossfit_repeats: int | None = typer.Option(None, "--crossfit-repeats", min=1, max=50, help="Cross-fitting splits of AIPW/TMLE; the median is reported (default 1)."),
    trim: TrimOption | None = typer.Option(None, "--trim", help="Common-support trimming first: none, common-support, crump (Crump et al. 2009) or fixed."),
    trim_alpha: float | None = typer.Option(None, "--trim-alpha", min=0.001, max=0.499, help="With --trim fixed: keep propensities in [a, 1 - a] (default 0.1)."),
    truncate_by_arm: float | None = typer.Option(None, "--truncate-by-arm", min=50.01, max=100, help="IPW: cap each weighted arm's weights at its own percentile, e.g. 99."),
    bootstrap: int = typer.Option(0, "--bootstrap", min=0, help="Bootstrap replicates (n_bootstrap) for SE and CI; 0 = analytic sandwich variance."),
    seed: int = typer.Option(0, "--seed", help="Seed for the bootstrap and the cross-fitting folds."),
    jobs: int = typer.Option(-1, "--jobs", help="Worker threads for the bootstrap (-1 = every core)."),
    on_failure: OnFailureOption = typer.Option(OnFailureOption.warn, "--on-failure", help="'warn' on failed diagnostics, or 'raise' to stop with an error."),
    negative_controls: str = typer.Option("", "--negative-control", help="Comma-separated negative-control outcome columns (analysed with IPW)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Folder for the results JSON (causal_results.json, or <study>.json with --study)."),
    replace: bool = typer.Option(False, "--replace", help="Replace an earlier results file of the same name in --out."),
    engine: EngineOption = typer.Option(EngineOption.duckdb, "--engine", envvar="KETAWEIGHT_ENGINE",
                                        help="Where the study's rows are selected: duckdb (the --store file) or spark "
                                             "(--store is a folder of canonical Parquet tables; docs/scale.md)."),
    spark_master: str = typer.Option("local[2]", "--spark-master", envvar="KETAWEIGHT_SPARK_MASTER",
                                     help="With --engine spark: the Spark master URL (local[N], spark://host:7077, yarn)."),
    scheduler: str | None = typer.Option(None, "--scheduler", envvar="KETAWEIGHT_DASK_SCHEDULER",
                                         help="Run bootstrap replicates on Dask: local:N or a scheduler address "
                                              "(tcp://host:8786); same numbers as without."),
) -> None:
    """Estimate the treatment effect with several estimators side by side, with diagnostics.

    Two forms: --store FILE --study NAME emulates a target trial from the canonical store (the
    study spec sets estimators and options; the options below override it); --table FILE
    --treatment ... --outcome ... --covariates ... analyses a ready table such as NHEFS.
    Positivity: --trim restricts to a common support, --truncate-by-arm caps IPW weights per arm,
    --estimand ATO weights by overlap; each is stated in the results.
    """
    if (store is None) == (table is None) or (store is not None) != (study is not None):
        console.print("[bold red]error:[/] give either --store and --study, or --table with --treatment, --outcome and --covariates")
        raise typer.Exit(code=2)
    overrides = {k: v for k, v in {
        "estimand": estimand.value if estimand else None, "learner": learner.value if learner else None,
        "propensity_calibration": propensity_calibration.value if propensity_calibration else None,
        "crossfit_repeats": crossfit_repeats, "trimming": trim.value if trim else None, "trimming_alpha": trim_alpha,
        "truncate_by_arm": truncate_by_arm, "methods": tuple(m.strip() for m in estimators.split(",") if m.strip())
        if estimators else None}.items() if v is not None}
    if store is not None:
        _analyze_study(store, study, out, replace, overrides, engine.value, spark_master, scheduler)  # type: ignore[arg-type]
        return
    if treatment is None or outcome is None or covariates is None:
        console.print("[bold red]error:[/] --table needs --treatment, --outcome and --covariates")
        raise typer.Exit(code=2)

    def action():
        from ketaweight.causal.positivity import Trimming
        from ketaweight.causal.spec import AnalysisSpec, as_tuple
        from ketaweight.pipelines.table_analysis import analyze_table, read_table

        spec = AnalysisSpec(
            treatment=treatment, outcome=outcome, covariates=as_tuple(covariates), categorical=as_tuple(categorical),
            squared=as_tuple(squared), censor=censor, censor_covariates=as_tuple(censor_covariates) or None,
            missing_outcome=missing_outcome.value, estimand=overrides.get("estimand", "ATE"),
        )
        rule = overrides.get("trimming", "none")
        trimming = None if rule == "none" else Trimming(rule=rule, alpha=overrides.get("trimming_alpha", 0.1))
        return analyze_table(read_table(table), spec, methods=overrides.get("methods", DEFAULT_METHODS),
                             n_bootstrap=bootstrap, seed=seed, n_jobs=jobs, on_failure=on_failure.value,
                             negative_controls=as_tuple(negative_controls), learner=overrides.get("learner", "linear"),
                             n_repeats=overrides.get("crossfit_repeats", 1), trimming=trimming,
                             propensity_calibration=overrides.get("propensity_calibration", "none"),
                             truncate_by_arm=truncate_by_arm, out=out, provenance={"data": str(table)}, replace=replace,
                             scheduler=scheduler)

    analysis = run_cli(action)
    if analysis.results:
        _print_attrition(analysis.results[0].diagnostics.get("attrition", []))
    _print_results(analysis.results, analysis.negative_controls, analysis.path)


def _print_attrition(steps: Sequence[AttritionStep] | Sequence[dict]) -> None:
    """Every counted step from the input rows to those analysed (the data owner's own counts)."""
    for s in steps:
        d = s if isinstance(s, dict) else s.to_dict()
        console.print(f"  {d['step']:<20} {mask_count(d['n_after']):>10}  ({d['reason']}; excluded "
                      f"{mask_count(d['n_excluded'])})", highlight=False)


def _print_results(results: Sequence[CausalResult], controls: Sequence[NegativeControl], path: Path | None) -> None:
    from ketaweight.cli.tables import print_results

    print_results(results, console)
    for nc in controls:
        console.print(f"negative control: {nc.interpretation}", highlight=False)
    if path is not None:
        console.print(f"results: [bold]{path}[/]")


def _analyze_study(store: Path, study: str, out: Path | None, replace: bool, overrides: dict, engine: str,
                   spark_master: str, scheduler: str | None) -> None:
    """The --store/--study form: attrition, then both outcome scales side by side; options given on the
    command line override the study's ``[analysis]`` settings."""
    from ketaweight.core.replicates import validate_scheduler
    from ketaweight.core.spark import check_master
    from ketaweight.pipelines.emulation import run_study
    from ketaweight.study.spec import load_study

    run_cli(lambda: (validate_scheduler(scheduler), check_master(spark_master)))

    def action():
        spec = load_study(study)
        return run_study(store, spec.with_analysis(**overrides) if overrides else spec, out, replace=replace,
                         engine=engine, spark_master=spark_master, scheduler=scheduler,  # type: ignore[arg-type]
                         mediators=False)  # the mediators are the mechanisms command's

    res = run_cli(action)
    console.print(f"[bold]{res.study.study.title}[/]")
    _print_attrition(res.cohort.attrition)
    for i, rs in enumerate(res.results.values()):
        controls = [res.negative_control] if (res.negative_control is not None and i == 0) else []
        _print_results(rs, controls, res.path if i == len(res.results) - 1 else None)
