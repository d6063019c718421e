"""Run a study end to end: store + study spec → analysis table → estimators side by side →
negative control → one results file (``kind = "causal"``) per study.

The analysis table is built once (and reused by the study's mechanisms:
:func:`~ketaweight.study.cohort.cached_cohort`); every estimator sees the same rows.  The outcome is
analysed on two scales, the change in the outcome kind's unit (e.g. kg) and in % of
baseline; the negative-control outcome (when the study names one) is analysed with AIPW.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ketaweight.causal.data import prepare
from ketaweight.causal.io import causal_payload
from ketaweight.causal.result import CausalResult
from ketaweight.causal.runner import default_estimators, run_estimators
from ketaweight.causal.sensitivity import NegativeControl, negative_control
from ketaweight.causal.spec import AnalysisSpec
from ketaweight.study.catalogue import COVARIATES
from ketaweight.study.cohort import Cohort, cached_cohort
from ketaweight.core.privacy import mask_counts
from ketaweight.core.provenance import Provenance
from ketaweight.core.results import write_results
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


def run_study(store: Store | str | Path, study: Study | str | Path, out_dir: str | Path | None = None) -> StudyResults:
    """Emulate the target trial of ``study`` on the store (an open :class:`Store` or a path);
    with ``out_dir``, write ``<out_dir>/<study name>.json``."""
    study_path = None
    if not isinstance(study, Study):
        study_path = Path(study)
        study = load_study(study)
    a = study.analysis
    if isinstance(store, Store):
        store_path, provenance = store.path, store.provenance()
        cohort = cached_cohort(store, study)
    else:
        store_path = Path(store)
        with Store(store_path, read_only=True) as opened:
            provenance = opened.provenance()
            cohort = cached_cohort(opened, study)
    estimators = default_estimators(methods=a.methods, variance=a.variance, n_bootstrap=a.n_bootstrap,
                                    seed=a.seed, on_failure=a.on_failure)
    results: dict[str, list[CausalResult]] = {}
    for column in OUTCOME_SCALES:
        spec = analysis_spec(study, column)
        results[column] = run_estimators(prepare(cohort.table, spec), estimators=estimators)
    nc = None
    if a.negative_control_kind:
        aipw = next((e for e in estimators if e.__class__.__name__ == "AIPW"), estimators[-1])
        nc = negative_control(aipw, cohort.table, analysis_spec(study, "outcome_change"), "negative_control_change")
    out = StudyResults(study, cohort, results, nc, provenance)
    if out_dir is not None:
        path = write_study_results(out, Path(out_dir), store_path, study_path)
        out = replace(out, path=path)
    return out


def write_study_results(res: StudyResults, out_dir: Path, store_path: Path, study_path: Path | None) -> Path:
    """The results file: per outcome scale the causal payload, plus study, cohort attrition and units."""
    unit = res.cohort.outcome_unit
    payload: dict[str, Any] = {
        "study": res.study.model_dump(mode="json"),
        "outcome_units": {col: (suffix or unit) for col, suffix in OUTCOME_SCALES.items()},
        "cohort_attrition": mask_counts([s.to_dict() for s in res.cohort.attrition]),
        "covariates": {c: COVARIATES[c].description for c in res.study.covariates.baseline},
        "analyses": {
            col: causal_payload(rs, negative_controls=[res.negative_control] if (res.negative_control and col == "outcome_change") else [])
            for col, rs in res.results.items()
        },
    }
    provenance = {**res.provenance.to_dict(), "store": store_path.name,
                  "study_file": str(study_path) if study_path else None, "seed": res.study.analysis.seed}
    return write_results(out_dir / f"{res.study.study.name}.json", "causal", payload, provenance)
