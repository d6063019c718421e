"""Run a study end to end: store + study spec → analysis table → estimators side by side →
negative control → one results file (``kind = "causal"``) per study.

The analysis table is built once (and reused by the study's mechanisms:
:func:`~ketaweight.study.cohort.cached_cohort`); every estimator sees the same rows.  The outcome is
analysed on two scales, the change in the outcome kind's unit (e.g. kg) and in % of
baseline; the negative-control outcome (when the study names one) is analysed with the estimator
the study names in ``[analysis] negative_control_method`` (AIPW by default).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ketaweight.causal.analysis import CausalAnalysis
from ketaweight.causal.data import prepare
from ketaweight.causal.positivity import Trimming
from ketaweight.causal.result import CausalResult
from ketaweight.causal.runner import default_estimators, run_estimators
from ketaweight.causal.sensitivity import NegativeControl, negative_control
from ketaweight.causal.spec import AnalysisSpec
from ketaweight.study.catalogue import COVARIATES
from ketaweight.study.cohort import Cohort, build_cohort, cached_cohort
from ketaweight.study.covariates import RowSource
from ketaweight.core.errors import InputError, Location
from ketaweight.core.outputs import check_file_target
from ketaweight.core.provenance import Provenance
from ketaweight.core.results import write_result
from ketaweight.pipelines.results import CausalStudy
from ketaweight.core.spark import DEFAULT_MASTER
from ketaweight.core.vocabulary import ENGINES, Engine
from ketaweight.store.spark import SparkTables
from ketaweight.store.store import Store
from ketaweight.study.spec import Study, load_study

OUTCOME_SCALES = {"outcome_change": "", "outcome_change_pct": "%"}
"""Analysis-table outcome columns and their unit suffix ('' = the kind's canonical unit)."""


@dataclass(frozen=True)
class StudyResults:
    study: Study
    cohort: Cohort
    results: dict[str, list[CausalResult]]  # outcome column → one result per method
    negative_control: NegativeControl | None
    provenance: Provenance
    path: Path | None = None

    def document(self) -> CausalStudy:
        """The results-file payload: per outcome scale the estimators side by side (the negative control
        with the main scale), with the study, the cohort's attrition, units and covariates in words."""
        unit = self.cohort.outcome_unit
        controls = (self.negative_control,) if self.negative_control is not None else ()
        return CausalStudy(
            study=self.study,
            outcome_units={col: (suffix or unit) for col, suffix in OUTCOME_SCALES.items()},
            cohort_attrition=self.cohort.attrition,
            covariates={c: COVARIATES[c].description for c in self.study.covariates.baseline},
            analyses={col: CausalAnalysis.of(rs, controls if col == "outcome_change" else ())
                      for col, rs in self.results.items()})


def analysis_spec(study: Study, outcome: str) -> AnalysisSpec:
    """The plain-table spec for one outcome column of the study's analysis table."""
    return AnalysisSpec(
        treatment="treated",
        outcome=outcome,
        covariates=study.covariates.baseline,
        categorical=study.covariates.categorical,
        squared=study.covariates.squared,
        censor="censored",
        censor_covariates=study.censoring.covariates,
        estimand=study.analysis.estimand,
    )


NO_EXPOSURE_MESSAGE = "no patient started {drugs} in this database"


def require_exposures(store: RowSource, study: Study) -> None:
    """Stop before any estimate when the store holds no exposure to the study's drugs (e.g. a real CDM
    with no ketamine): there is no treated group, so there is nothing to estimate."""
    drugs = list(study.treatment.drugs)  # validated names of core.schema (no quote can occur in them)
    n = store.arrow(f"SELECT count(*) AS n FROM exposures WHERE drug IN ({', '.join(repr(d) for d in drugs)})")["n"][0].as_py()
    if n == 0:
        raise InputError([(Location(str(store.path), column="exposures"),
                           NO_EXPOSURE_MESSAGE.format(drugs=" or ".join(drugs)) + "; there is no treated group to compare, "
                           "so no effect is estimated")])


def run_study(store: RowSource | str | Path, study: Study | str | Path, out_dir: str | Path | None = None, *,
              replace: bool = True, engine: Engine = "duckdb", spark_master: str | None = None,
              scheduler: str | None = None, mediators: bool = True) -> StudyResults:
    """Emulate the target trial of ``study`` on the store (an open :class:`Store` or a path);
    with ``out_dir``, write ``<out_dir>/<study name>.json`` (an earlier one is replaced only with
    ``replace``; a file ketaweight did not write, never).

    ``engine="spark"``: ``store`` is a folder of canonical Parquet tables and the cohort's SQL runs
    on Spark (``spark_master``, default ``local[2]``; docs/scale.md); only the analysis table comes
    back.  ``scheduler``: where bootstrap replicates run (Dask; the numbers do not depend on it).
    ``mediators=False`` builds the cohort without the mediator columns when none is cached (the
    study does not read them; a later :func:`~ketaweight.pipelines.mechanisms.run_mechanisms` on the
    same store then builds its own)."""
    study_path = None
    if not isinstance(study, Study):
        study_path = Path(study)
        study = load_study(study)
    if out_dir is not None:  # before any work: a refused target should not cost a cohort build
        check_file_target(results_path(Path(out_dir), study), replace=replace)
    a = study.analysis
    if engine == "spark" and not isinstance(store, SparkTables):
        store = SparkTables(Path(store), spark_master or DEFAULT_MASTER)
    elif engine not in ENGINES:
        raise ValueError(f"engine={engine!r}: choose one of {', '.join(ENGINES)}")
    if isinstance(store, (Store, SparkTables)):
        store_path, provenance = store.path, store.provenance()
        require_exposures(store, study)
        # a Spark folder's content has no fingerprint here (its tables live with the engine): built each time
        cohort = (cached_cohort(store, study, mediators=mediators) if isinstance(store, Store)
                  else build_cohort(store, study, mediators=mediators))
    else:
        store_path = Path(store)
        with Store(store_path, read_only=True) as opened:
            provenance = opened.provenance()
            require_exposures(opened, study)
            cohort = cached_cohort(opened, study, mediators=mediators)
    common = dict(variance=a.variance, n_bootstrap=a.n_bootstrap, seed=a.seed, on_failure=a.on_failure,
                  learner=a.learner, n_repeats=a.crossfit_repeats, truncate_by_arm=a.truncate_by_arm,
                  propensity_calibration=a.propensity_calibration,
                  scheduler=scheduler)
    estimators = default_estimators(methods=a.methods, **common)
    trimming = study_trimming(study)
    results: dict[str, list[CausalResult]] = {}
    for column in OUTCOME_SCALES:
        spec = analysis_spec(study, column)
        results[column] = run_estimators(prepare(cohort.table, spec), estimators=estimators, trimming=trimming)
    nc = None
    if a.negative_control_kind:
        control_estimator = default_estimators(methods=(a.negative_control_method,), **common)[0]
        nc = negative_control(control_estimator, cohort.table, analysis_spec(study, "outcome_change"),
                              "negative_control_change", trimming=trimming)
    out = StudyResults(study, cohort, results, nc, provenance)
    if out_dir is not None:
        path = write_study_results(out, Path(out_dir), store_path, study_path)
        out = dataclasses.replace(out, path=path)
    return out


def study_trimming(study: Study) -> Trimming | None:
    """The study's common-support trimming rule (None when it trims nothing)."""
    a = study.analysis
    return None if a.trimming == "none" else Trimming(rule=a.trimming, alpha=a.trimming_alpha)


def results_path(out_dir: Path, study: Study, suffix: str = "") -> Path:
    """``<out_dir>/<study name><suffix>.json``; the study name is a plain file name (checked by the spec)."""
    return out_dir / f"{study.study.name}{suffix}.json"


def write_study_results(res: StudyResults, out_dir: Path, store_path: Path, study_path: Path | None) -> Path:
    """``<out_dir>/<study name>.json`` (``kind = "causal"``), counts under 11 masked."""
    return write_result(results_path(out_dir, res.study), res.document(), res.provenance, store=store_path.name,
                        study_file=str(study_path) if study_path else None, seed=res.study.analysis.seed)
