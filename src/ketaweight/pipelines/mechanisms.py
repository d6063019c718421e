"""The article's "how", "how much" and "for whom" for one study: mediation, dose-response and
heterogeneity on the study's analysis table, written as one results file
(``kind = "mechanisms"``; schema in ``docs/mechanisms.md``).

Settings come from the study's ``[mechanisms]`` sections (:class:`ketaweight.study.spec.Mechanisms`).
The analysis table is the study's cohort (:func:`ketaweight.study.cohort.cached_cohort`: the one the
study's emulation built, when it ran on the same store in this process) plus the
derived columns in :data:`~ketaweight.study.catalogue.MECHANISM_COLUMNS`.
"""

from __future__ import annotations

import warnings
import dataclasses
from pathlib import Path

import pandas as pd

from ketaweight.mechanisms.dose_response import DoseResponse, DoseResponseSpec
from ketaweight.causal.spec import AnalysisSpec
from ketaweight.mechanisms.effects import holm
from ketaweight.mechanisms.heterogeneity import (
    DRLearner,
    IndividualEffects,
    ModifierResult,
    modifier_effects,
    subgroup_analysis,
    version_effects,
)
from ketaweight.mechanisms.modifiers import ModifierSearch, search_modifiers, subgroup_column
from ketaweight.study.catalogue import COVARIATES, MECHANISM_COLUMNS
from ketaweight.study.cohort import add_mechanism_columns
from ketaweight.mechanisms.mediation import Mediation, MediationSpec, MediationWarning, Pathway
from ketaweight.core.errors import InputError, Location
from ketaweight.core.results import write_result
from ketaweight.pipelines.results import Heterogeneity, MechanismsResults
from ketaweight.core.outputs import check_file_target
from ketaweight.pipelines.emulation import analysis_spec, results_path
from ketaweight.store import Store
from ketaweight.study import Study, load_study
from ketaweight.study.cohort import cached_cohort

MIN_LEVEL_ROWS = 30
"""Factor levels (routes) with fewer treated rows are left out of by-level curves."""



def unrecorded_pathways(study: Study, table: pd.DataFrame) -> dict[str, str]:
    """Pathways of the study with a mediator that no patient in ``table`` has → why they are left out."""
    out = {}
    for name, cols in study.mechanisms.mediation.pathways.items():
        missing = [c for c in cols if c not in table.columns or table[c].notna().sum() == 0]
        if missing:
            out[f"mediation pathway {name}"] = (
                f"no patient has {', '.join(repr(c) for c in missing)} (its measurement kind was never recorded in the "
                "mediator window); the pathway is left out and its effect is part of the direct remainder")
    return out


MIN_SUBSTUDY = 30
"""Patients with a reference-method value needed before a mediator is calibrated on the substudy."""


def substudy_mediators(study: Study, table: pd.DataFrame) -> dict[str, str]:
    """The study's validation mapping restricted to mediators whose reference column was recorded for at
    least :data:`MIN_SUBSTUDY` patients of ``table``."""
    m = study.mechanisms.mediation
    return {med: ref for med, ref in m.validation.items()
            if ref in table.columns and int(table[ref].notna().sum()) >= MIN_SUBSTUDY}


def unattributable_pathways(study: Study, table: pd.DataFrame) -> dict[str, str]:
    """Pathways measured only by consumer-grade mediators (every mediator named in ``validation``) with no
    validation substudy → why their effect cannot be attributed (measurement error drains it into the direct
    remainder).  A pathway with a clinic-grade mediator too (mood: the MADRS change besides the wearable's
    activity) stays attributable: the weekly activity's noise is small beside the drug's effect on it."""
    m = study.mechanisms.mediation
    calibrated = substudy_mediators(study, table)
    unrecorded = unrecorded_pathways(study, table)
    out = {}
    for name, cols in m.pathways.items():
        if f"mediation pathway {name}" in unrecorded:
            continue
        noisy = [c for c in cols if c in m.validation and c not in calibrated]
        if noisy and all(c in m.validation for c in cols):
            out[f"attribution of pathway {name}"] = (
                f"its mediator(s) {', '.join(repr(c) for c in noisy)} come from consumer-grade records (food app, "
                f"wearable) and no validation substudy recorded {', '.join(repr(m.validation[c]) for c in noisy)}: "
                "measurement error attenuates the pathway toward 0, so most of its effect is reported in the direct "
                "remainder; a research-grade substudy of 5-10% of patients corrects this (regression calibration)")
    return out


def mediation_spec(study: Study, table: pd.DataFrame) -> MediationSpec:
    """The study's mediation spec on ``table``: mediator baselines present in the table join the
    confounders, restriction columns (``exclude_if``) leave them; pathways whose mediators were
    never recorded are left out (:func:`unrecorded_pathways` says which and why); mediators with a
    recorded validation substudy are calibrated on it (:func:`substudy_mediators`)."""
    m, cov = study.mechanisms.mediation, study.covariates
    extra = tuple(c for c in m.extra_covariates if c in table.columns and c not in cov.baseline)
    unrecorded = unrecorded_pathways(study, table)
    left_out = {key.removeprefix("mediation pathway ") for key in unrecorded}
    pathways = tuple(Pathway(name, cols) for name, cols in m.pathways.items() if name not in left_out)
    if not pathways:
        raise InputError([(Location("study", column="mechanisms.mediation.pathways"),
                           "no pathway has every mediator recorded (" + "; ".join(unrecorded.values())
                           + "); name recorded mediator columns in [mechanisms.mediation] pathways, e.g. the food-diary "
                             "columns intake_change and activity_change")])
    covariates = tuple(c for c in cov.baseline + extra if c not in m.exclude_if)
    return MediationSpec(
        treatment="treated", outcome="outcome_change", covariates=covariates,
        categorical=tuple(c for c in cov.categorical if c in covariates), squared=tuple(c for c in cov.squared if c in covariates),
        pathways=pathways, censor_covariates=m.censor_covariates, intermediate=m.intermediate,
        intermediate_in_outcome=intermediate_in_outcome(study, table), exclude_if=m.exclude_if,
        energy_balance=energy_balance(study, table, pathways), **calibration_settings(study, table, pathways),
    )


def intermediate_in_outcome(study: Study, table: pd.DataFrame) -> bool:
    """The study's ``intermediate_in_outcome``, with ``"auto"`` resolved: False when a validation substudy
    calibrates every consumer-grade mediator (:func:`substudy_calibrates_all`), else True (the study spec's field
    says why)."""
    m = study.mechanisms.mediation
    if m.intermediate_in_outcome != "auto":
        return bool(m.intermediate_in_outcome)
    return not substudy_calibrates_all(study, table)


def substudy_calibrates_all(study: Study, table: pd.DataFrame) -> bool:
    """Whether a validation substudy in ``table`` calibrates every consumer-grade mediator (those named in
    ``validation``) of the recorded pathways: the condition of the ``"auto"`` settings."""
    m = study.mechanisms.mediation
    unrecorded = unrecorded_pathways(study, table)
    consumer = {c for name, cols in m.pathways.items() if f"mediation pathway {name}" not in unrecorded
                for c in cols if c in m.validation}
    return bool(consumer) and consumer <= set(substudy_mediators(study, table))


def energy_balance(study: Study, table: pd.DataFrame, pathways: tuple[Pathway, ...]) -> dict[str, float]:
    """The mediation spec's ``energy_balance``: the study's factors of the analysed mediators when its
    ``outcome_model`` is (or ``"auto"`` resolves to) ``"energy-balance"`` — auto: when a substudy calibrates every
    consumer-grade mediator (:func:`substudy_calibrates_all`) — else empty (a free coefficient per mediator; also
    when fewer than two energy mediators are analysed: one alone has nothing to share its coefficient with)."""
    m = study.mechanisms.mediation
    wanted = m.outcome_model == "energy-balance" or (m.outcome_model == "auto" and substudy_calibrates_all(study, table))
    used = {c for p in pathways for c in p.mediators}
    tied = {k: v for k, v in m.energy_balance.items() if k in used}
    return tied if wanted and len(tied) >= 2 else {}


def calibration_settings(study: Study, table: pd.DataFrame, pathways: tuple[Pathway, ...]) -> dict[str, object]:
    """``validation``, ``calibration_covariates`` and ``calibration_interactions`` of the mediation spec (empty without a
    substudy)."""
    used = {c for p in pathways for c in p.mediators}
    validation = {k: v for k, v in substudy_mediators(study, table).items() if k in used}
    if not validation:
        return {}
    m = study.mechanisms.mediation
    extra = tuple(c for c in m.calibration_covariates if c in table.columns)
    return {"validation": validation, "calibration_covariates": extra, "calibration_interactions": m.calibration_interactions}


def search_candidates(study: Study) -> list[str]:
    """Every baseline covariate of the catalogue (post-baseline columns excluded), atypical features included."""
    return [c for c, cov in COVARIATES.items() if not cov.post_baseline]


def search_catalogue(table: pd.DataFrame, spec: AnalysisSpec, individual: IndividualEffects, study: Study
                     ) -> tuple[ModifierSearch, tuple[ModifierResult, ...]]:
    """The modifier search on the DR-learner's pseudo-outcomes, and subgroup effects of the top modifiers found
    (a found modifier whose subgroups cannot be estimated is noted in the search's ``skipped``)."""
    het = study.mechanisms.heterogeneity
    rows = table.loc[individual.row_index]
    search = search_modifiers(individual.pseudo_outcome, rows, search_candidates(study), alpha=het.search_alpha)
    found: list[ModifierResult] = []
    for column in search.found[: het.search_top]:
        grouped, name = subgroup_column(table, column)
        try:
            found.append(modifier_effects(grouped, spec, name))
        except InputError as exc:
            search.skipped[f"{column} (subgroups)"] = str(exc)
    adjusted = holm([r.p_value for r in found]) if found else []
    return search, tuple(dataclasses.replace(r, p_holm=p) for r, p in zip(found, adjusted))


def dose_specs(study: Study, treated: pd.DataFrame) -> list[DoseResponseSpec]:
    """One spec per exposure (among the treated), plus mg/kg by route when asked."""
    d, cov = study.mechanisms.dose_response, study.covariates
    common = dict(outcome="outcome_change", covariates=cov.baseline, categorical=cov.categorical, squared=cov.squared,
                  censor="censored", degree=d.degree)
    specs = [DoseResponseSpec(exposure=e, **common) for e in d.exposures]
    if d.by_route:
        specs.append(DoseResponseSpec(exposure="cumulative_mg_per_kg", by="first_route", **common))
    return specs


def run_mechanisms(store: Store | str | Path, study: Study | str | Path, out_dir: str | Path | None = None, *,
                   n_bootstrap: int | None = None, seed: int | None = None, exact_counts: bool = False,
                   replace: bool = True) -> MechanismsResults:
    """Mediation, dose-response and heterogeneity of ``study`` on ``store`` (an open store or a
    path); with ``out_dir``, write ``<out_dir>/<study name>-mechanisms.json`` (an earlier one is
    replaced only with ``replace``; a file ketaweight did not write, never)."""
    study = study if isinstance(study, Study) else load_study(study)
    if out_dir is not None:  # before any work: a refused target should not cost a cohort build
        check_file_target(results_path(Path(out_dir), study, "-mechanisms"), replace=replace)
    seed = study.analysis.seed if seed is None else seed
    if isinstance(store, Store):
        store_path, provenance, cohort = store.path, store.provenance(), cached_cohort(store, study)
    else:
        store_path = Path(store)
        with Store(store_path, read_only=True) as opened:
            provenance, cohort = opened.provenance(), cached_cohort(opened, study)
    table = add_mechanism_columns(cohort.table)
    mech = study.mechanisms
    skipped: dict[str, str] = {**unrecorded_pathways(study, table), **unattributable_pathways(study, table)}
    circular = [c for cols in mech.mediation.pathways.values() for c in cols if c == f"{study.outcome.kind}_change"]
    mediation = None
    if circular:
        skipped["mediation"] = f"mediator(s) {circular} are the outcome measure itself; set [mechanisms.mediation] pathways"
    else:
        try:
            spec_m = mediation_spec(study, table)
            mediation = Mediation(n_bootstrap=n_bootstrap or mech.mediation.n_bootstrap, seed=seed,
                                  interval=mech.mediation.interval).fit(table, spec_m)
        except InputError as exc:  # e.g. no mediator recorded before a short outcome window
            skipped["mediation"] = str(exc)
    for what, why in skipped.items():
        warnings.warn(f"{what} not estimable: {why}", MediationWarning, stacklevel=2)
    treated = table.loc[table["treated"] == 1]
    curves = []
    for spec in dose_specs(study, treated):
        rows = treated
        if spec.by:
            counts = rows[spec.by].value_counts()
            rows = rows.loc[rows[spec.by].isin(counts[counts >= MIN_LEVEL_ROWS].index)]
        curves.extend(DoseResponse(method=m).fit(rows, spec) for m in ("msm", "g-formula"))
    spec = analysis_spec(study, "outcome_change")
    het = mech.heterogeneity
    subgroups = subgroup_analysis(table, spec, het.modifiers)
    versions = [version_effects(table, spec, v) for v in het.versions]
    individual = DRLearner(loss_threshold=het.loss_threshold_kg, seed=seed,
                           learner=het.learner or study.analysis.learner).fit(table, spec)
    search, found = (search_catalogue(table, spec, individual, study) if het.search else (None, ()))
    res = MechanismsResults(study.study.name, cohort.outcome_unit, skipped, mediation, tuple(curves),
                            Heterogeneity(tuple(subgroups), tuple(versions), individual, search=search, found=found),
                            table=table)
    if out_dir is not None:
        path = write_result(results_path(Path(out_dir), study, "-mechanisms"), res, provenance,
                            exact_counts=exact_counts, store=store_path.name, study=study.study.name, seed=seed)
        res = dataclasses.replace(res, path=path)
    return res


__all__ = ["MECHANISM_COLUMNS", "MechanismsResults", "add_mechanism_columns", "dose_specs", "mediation_spec", "run_mechanisms",
           "unrecorded_pathways"]
