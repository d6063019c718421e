"""Check the mechanism analyses against the simulator's ground truth over replicate cohorts.

Per scenario and replicate: simulate a cohort (with its counterfactual worlds), build the
study's analysis table, run mediation, the dose-response MSM on sessions and the DR-learner,
and compare with the truth *of that cohort's analysed patients*:

* mediation — truth is the mean over the mediation's patients (after its restriction) of the
  simulator's pathway effects ``effect_via_{pathway}_kg`` ("course minus course with that
  pathway switched off"), of ``effect_kg`` (total), and, for the direct remainder, of the
  effect through pathways left out of the analysis (0 when every pathway has its mediators);
* dose-response — the *true curve* at s sessions is the mean true 12-week weight change under
  each treated patient's own course, E[Y(course) | sessions = s], over treated analysed patients
  (noise-free, from ``patient_truth``).  It equals the MSM's E[Y^s] when the number of sessions
  is unrelated to the confounders given treatment (in the simulator it is driven by random
  discontinuation, maintenance and route); counts with fewer than 50 treated patients are skipped;
* per-patient effects — correlation and calibration slope of the DR-learner's predictions
  against each patient's true effect ``effect_kg``.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.model_selection import cross_val_predict

from ketaweight.causal.data import prepare
from ketaweight.mechanisms.dose_response import DoseResponse, DoseResponseSpec
from ketaweight.mechanisms.heterogeneity import DRLearner, compare_to_truth
from ketaweight.pipelines.mechanisms import mediation_spec
from ketaweight.study.cohort import add_mechanism_columns
from ketaweight.mechanisms.mediation import Mediation
from ketaweight.core.errors import KetaweightWarning
from ketaweight.core.provenance import Provenance
from ketaweight.core.outputs import MARKDOWN_GENERATOR, json_and_markdown_targets
from ketaweight.core.replicates import run_replicates
from ketaweight.core.results import write_result, write_text_atomic
from ketaweight.pipelines.results import MechanismRow, MechanismsValidation
from ketaweight.pipelines.emulation import analysis_spec
from ketaweight.pipelines.validation import replicate_checkpoint
from ketaweight.sources.simulator import load_scenario, simulate, with_measurement
from ketaweight.store import Store
from ketaweight.study import Study, load_study
from ketaweight.study.cohort import build_cohort

MIN_BIN = 50
"""Treated patients needed at a session count for the true curve to be compared there."""


def scenario_cohort(scenario: str, study: Any, n_patients: int, seed: int,
                    measurement: str = "clinic") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(analysis table with mechanism columns, patient truth aligned to its rows); ``measurement``
    is a design of :data:`ketaweight.sources.simulator.MEASUREMENTS`."""
    res = simulate(with_measurement(load_scenario(scenario), measurement), n_patients, seed)
    with Store(":memory:") as store:
        store.load_frames(res.tables, label="simulated", provenance=res.provenance)
        table = add_mechanism_columns(build_cohort(store, study).table)
    truth = res.patient_truth.to_pandas().set_index("patient_id").loc[table["patient_id"]].reset_index()
    return table, truth


def mediation_check(table: pd.DataFrame, truth: pd.DataFrame, study: Any, *, n_bootstrap: int, seed: int) -> dict[str, Any]:
    """Estimates, CIs and truths of total, direct and each pathway on one cohort."""
    spec = mediation_spec(study, table)
    res = Mediation(n_bootstrap=n_bootstrap, seed=seed, n_jobs=1,
                    interval=study.mechanisms.mediation.interval).fit(table, spec)
    truth = truth.loc[res.row_index]  # the patients the mediation analysed (restriction, complete covariates)
    measured = {p.name for p in spec.pathways}
    unmeasured = [c for c in ("appetite", "metabolism", "mood") if c not in measured]
    true = {"total": truth["effect_kg"].mean(),
            "direct": sum(truth[f"effect_via_{c}_kg"].mean() for c in unmeasured)}
    true.update({p: truth[f"effect_via_{p}_kg"].mean() for p in measured})
    got = {"total": res.total, "direct": res.direct, **res.pathways}
    return {k: (r.estimate, r.ci_low, r.ci_high, float(true[k])) for k, r in got.items()}


def dose_check(table: pd.DataFrame, truth: pd.DataFrame, study: Any) -> dict[str, float]:
    """MSM curve of weight change on sessions vs the true curve (see module docstring)."""
    treated = table["treated"].to_numpy() == 1
    rows = table.loc[treated]
    sessions = rows["sessions_to_horizon"].to_numpy(dtype=float)
    true_course = truth.loc[treated, "weight_change_course_kg"].to_numpy()
    counts = pd.Series(sessions).value_counts()
    grid = tuple(float(s) for s in sorted(counts[counts >= MIN_BIN].index))
    cov = study.covariates
    spec = DoseResponseSpec(exposure="sessions_to_horizon", outcome="outcome_change", covariates=cov.baseline,
                            categorical=cov.categorical, squared=cov.squared, censor="censored")
    curve = DoseResponse(method="msm", grid=grid).fit(rows, spec).curve
    target = np.array([true_course[sessions == p.exposure].mean() for p in curve])
    est = np.array([p.estimate for p in curve])
    covered = np.array([p.ci_low <= t <= p.ci_high for p, t in zip(curve, target)])
    return {"points": len(curve), "max_abs_error": float(np.max(np.abs(est - target))),
            "share_covered": float(covered.mean()),
            "true_slope": float(np.polyfit(sessions, true_course, 1)[0]), "estimated_slope": float(np.polyfit(grid, est, 1)[0])}


def individual_check(table: pd.DataFrame, truth: pd.DataFrame, study: Any, seed: int) -> dict[str, float]:
    """DR-learner predictions against the true individual effects, and the calibrated spread (SD) against
    the true SD of the conditional effect given the baseline covariates (and whether its interval covers it)."""
    spec = analysis_spec(study, "outcome_change")
    fit = DRLearner(seed=seed).fit(table, spec)
    true = truth.loc[fit.row_index, "effect_kg"].to_numpy()
    x = prepare(table, spec).x.matrix[:, 1:]
    out = compare_to_truth(fit.predicted, true)
    out["blp_slope"] = fit.distribution["calibration"]["blp_slope"]
    spread = fit.distribution["spread"]
    out["sd_calibrated"] = spread["sd_calibrated"]
    # The SD of τ(L) = E[effect | baseline covariates], what a learner on baseline traits can recover (the rest of
    # the individual effects' spread no recorded trait predicts): the true effects regressed on the design by
    # cross-fitted boosting (noise-free targets, so little shrinkage).
    oracle = cross_val_predict(HistGradientBoostingRegressor(max_iter=300, random_state=0), x, true, cv=5)
    out["sd_truth_given_baseline"] = float(oracle.std())
    lo, hi = spread["sd_calibrated_ci"]
    out["sd_calibrated_covers_truth_given_baseline"] = float(lo <= out["sd_truth_given_baseline"] <= hi)
    out["share_predicted_below_-1"] = fit.distribution["share_predicted_below_threshold"]
    out["share_true_below_-1"] = float(np.mean(true < -1.0))
    return out


def validate_mechanisms(
    study: Any = "ketamine-weight",
    scenarios: tuple[str, ...] = ("null", "appetite", "metabolic", "mood-activity", "article"),
    *,
    replicates: int = 20,
    n_patients: int = 10_000,
    n_bootstrap: int = 200,
    seed: int = 2026,
    measurement: str = "clinic",
    mediation_only: bool = False,
    on_replicate: Callable[[int], None] | None = None,
    scheduler: Any = None,
    workers: int | None = None,
    checkpoint: Path | None = None,
) -> tuple[list[MechanismRow], dict[str, dict[str, float]]]:
    """Mediation coverage per effect, plus dose-response and DR-learner agreement (means over replicates;
    ``mediation_only`` skips those two, which cost most of a replicate's time).

    Replicates run in ``workers`` local processes (default one per core) or where ``scheduler`` says, resumable
    from ``checkpoint`` (as :func:`ketaweight.pipelines.validation.validate`); each replicate has its own seed,
    so the rows do not depend on either."""
    study = study if isinstance(study, Study) else load_study(study)
    seeds = np.random.SeedSequence(seed).generate_state(len(scenarios) * replicates)
    rows: list[MechanismRow] = []
    extra: dict[str, dict[str, float]] = {}
    for k, scenario in enumerate(scenarios):
        reps = run_replicates(_replicate, [int(x) for x in seeds[k * replicates: (k + 1) * replicates]],
                              shared=(scenario, study, n_patients, n_bootstrap, measurement, mediation_only),
                              scheduler=scheduler, workers=workers or os.cpu_count() or 1, on_replicate=on_replicate,
                              name=f"validate-mechanisms-{scenario}",
                              checkpoint=replicate_checkpoint(checkpoint, f"mechanisms-{measurement}", scenario, seed=seed,
                                                              patients=n_patients, n_bootstrap=n_bootstrap,
                                                              mediation_only=mediation_only,
                                                              study=study.model_dump(mode="json")))
        med, dose, ind = ([rep[i] for rep in reps if len(rep) > i] for i in range(3))
        for q in med[0]:
            est, lo, hi, tr = (np.array([m[q][i] for m in med]) for i in range(4))
            cover = float(np.mean((lo <= tr) & (tr <= hi)))
            rows.append(MechanismRow(scenario, q, float(tr.mean()), float(est.mean()), cover,
                                     math.sqrt(cover * (1 - cover) / replicates), replicates))
        if not mediation_only:
            extra[scenario] = {**{f"dose_{k2}": float(np.mean([d[k2] for d in dose])) for k2 in dose[0]},
                               **{f"individual_{k2}": _nanmean([d[k2] for d in ind]) for k2 in ind[0]}}
    return rows, extra


def _replicate(shared: tuple[str, Any, int, int, str, bool], r: int, seed: int) -> list[dict[str, Any]]:
    """Replicate ``r`` of :func:`validate_mechanisms`: [mediation, dose-response, per-patient] checks
    ([mediation] only with ``mediation_only``)."""
    scenario, study, n_patients, n_bootstrap, measurement, mediation_only = shared
    s = int(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KetaweightWarning)
        table, truth = scenario_cohort(scenario, study, n_patients, s, measurement)
        med = mediation_check(table, truth, study, n_bootstrap=n_bootstrap, seed=s)
        if mediation_only:
            return [med]
        return [med, dose_check(table, truth, study), individual_check(table, truth, study, s)]


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def as_markdown(rows: list[MechanismRow], extra: dict[str, dict[str, float]], *, n_patients: int,
                measurement: str = "clinic", intermediate_in_outcome: bool | str = "auto",
                outcome_model: str = "auto") -> str:
    """The validation tables for docs/mechanisms.md."""
    lines = ["| scenario | effect | truth (kg) | mean estimate (kg) | relative error | 95% CI coverage (MCSE) |",
             "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {r.scenario} | {r.quantity} | {r.truth:+.3f} | {r.mean_estimate:+.3f} | "
              f"{f'{100 * (r.mean_estimate - r.truth) / r.truth:+.0f}%' if abs(r.truth) > 1e-3 else '—'} | "
              f"{100 * r.coverage:.0f}% ({100 * r.coverage_mcse:.0f}) |" for r in rows]
    if extra:
        lines += ["", "| scenario | dose: max abs error (kg) | dose: band covers truth | dose: true / estimated slope (kg per session) "
                  "| per patient: correlation | calibration slope (truth on prediction) | BLP slope | share predicted / true < −1 kg "
                  "| calibrated spread / true SD of τ(L) / SD of effects (kg) |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for sc, e in extra.items():
        lines.append(f"| {sc} | {e['dose_max_abs_error']:.3f} | {100 * e['dose_share_covered']:.0f}% | "
                     f"{e['dose_true_slope']:+.3f} / {e['dose_estimated_slope']:+.3f} | {e['individual_correlation']:.2f} | "
                     f"{e['individual_calibration_slope']:.2f} | {e['individual_blp_slope']:.2f} | "
                     f"{100 * e['individual_share_predicted_below_-1']:.1f}% / {100 * e['individual_share_true_below_-1']:.1f}% | "
                     f"{e['individual_sd_calibrated']:.2f} / {e['individual_sd_truth_given_baseline']:.2f} / "
                     f"{e['individual_sd_truth']:.2f} |")
    replicates = rows[0].replicates if rows else 0
    z = {True: "in the mediator and outcome models", False: "in the mediator models only",
         "auto": "in the mediator models, and in the outcome model unless a validation substudy calibrates every "
                 "consumer-grade mediator ('auto')"}[intermediate_in_outcome]
    outcome = {"energy-balance": "the energy-balance outcome model (one kcal-to-kg coefficient)",
               "free": "a free outcome coefficient per mediator",
               "auto": "the energy-balance outcome model when a validation substudy calibrates every consumer-grade "
                       "mediator, else a free coefficient per mediator ('auto')"}[outcome_model]
    lines += ["", f"{replicates} replicate cohorts of {n_patients:,} simulated patients per scenario, measurement "
                  f"'{measurement}', course intensity {z}, {outcome} (means over replicates)."]
    return "\n".join(lines)


def mechanisms_validation_paths(out: Path, measurement: str, *, replace: bool) -> tuple[Path, Path]:
    """``out/mechanisms-validation-<measurement>.json`` and ``.md``, checked writable (call before a long run)."""
    return json_and_markdown_targets(out, f"mechanisms-validation-{measurement}", replace=replace)


def write_mechanisms_validation(rows: list[MechanismRow], extra: dict[str, dict[str, float]], out: Path, *,
                                study: str, seed: int, replicates: int, patients: int, n_bootstrap: int,
                                measurement: str, intermediate_in_outcome: bool | str, outcome_model: str = "auto",
                                replace: bool = True) -> tuple[Path, Path, str]:
    """``out/mechanisms-validation-<measurement>.json`` and ``.md``; returns both paths and the Markdown."""
    json_target, md_target = mechanisms_validation_paths(out, measurement, replace=replace)
    out.mkdir(parents=True, exist_ok=True)
    json_path = write_result(json_target, MechanismsValidation(tuple(rows), extra),
                             Provenance("simulated", "ketaweight simulator, replicate cohorts"), exact_counts=True,
                             replace=replace, study=study, seed=seed, replicates=replicates, patients=patients, n_bootstrap=n_bootstrap,
                             measurement=measurement, intermediate_in_outcome=intermediate_in_outcome,
                             outcome_model=outcome_model)
    text = as_markdown(rows, extra, n_patients=patients, measurement=measurement,
                       intermediate_in_outcome=intermediate_in_outcome, outcome_model=outcome_model)
    md_path = write_text_atomic(md_target, MARKDOWN_GENERATOR + text + "\n")
    return json_path, md_path, text
