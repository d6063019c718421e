"""Check the causal engine against the simulator's ground truth over replicate cohorts.

For each scenario: the population truth of the study's estimand *in the eligible cohort*
(mean individual effect over the eligible patients of one large simulated population), then
``replicates`` independent cohorts, each simulated, loaded into an in-memory store, turned
into the study's analysis table and analysed by every estimator.  Reported per estimator:
mean estimate, bias, bias as a share of the mean standard error, empirical SD of the
estimates vs the mean SE, and the coverage of the 95% CI (with its Monte-Carlo standard
error √(p(1−p)/R)).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ketaweight.study.cohort import build_cohort
from ketaweight.pipelines.emulation import run_study
from ketaweight.core.errors import KetaweightWarning
from ketaweight.core.provenance import Provenance
from ketaweight.core.outputs import MARKDOWN_GENERATOR, json_and_markdown_targets
from ketaweight.core.replicates import Checkpoint, run_replicates
from ketaweight.core.results import write_result, write_text_atomic
from ketaweight.pipelines.results import ValidationResults, ValidationRow
from ketaweight.sources.simulator import load_scenario, simulate
from ketaweight.store.store import Store
from ketaweight.study.spec import Study, load_study

def _truth_columns(study: Study) -> tuple[str, str | None]:
    kind, horizon = study.outcome.kind, study.outcome.horizon_days
    if kind == "weight":
        if horizon != 84:
            raise ValueError("simulator weight truth is at 84 days; set outcome.horizon_days = 84")
        return "effect_kg", "effect_pct"
    if kind == "madrs":
        return f"effect_madrs_day{horizon}", None
    raise ValueError(f"no simulator truth for outcome kind {kind!r}")


def cohort_truth(scenario: str, study: Study, n_patients: int, seed: int) -> dict[str, float]:
    """The estimand's true value among the eligible patients of one large simulated cohort."""
    res = simulate(load_scenario(scenario), n_patients, seed)
    with Store(":memory:") as store:
        store.load_frames(res.tables, label="simulated", provenance=res.provenance)
        cohort = build_cohort(store, study)
    truth = res.patient_truth.to_pandas().set_index("patient_id")
    rows = truth.loc[cohort.table["patient_id"]]
    if study.analysis.estimand == "ATT":
        rows = rows[cohort.table["treated"].to_numpy() == 1]
    col_kg, col_pct = _truth_columns(study)
    out = {"outcome_change": float(rows[col_kg].mean())}
    if col_pct:
        out["outcome_change_pct"] = float(rows[col_pct].mean())
    return out


def _one_replicate(args: tuple[str, Study, int, int]) -> dict[str, dict[str, tuple[float, float, float, float]]]:
    scenario, study, n_patients, seed = args
    res = simulate(load_scenario(scenario), n_patients, seed, truth=False)
    with Store(":memory:") as store, warnings.catch_warnings():
        warnings.simplefilter("ignore", KetaweightWarning)
        store.load_frames(res.tables, label="simulated", provenance=res.provenance)
        out = run_study(store, study)
    return {col: {r.method: (r.estimate, r.se, r.ci_low, r.ci_high) for r in rs} for col, rs in out.results.items()}


def _replicate(shared: tuple[str, Study, int], r: int, seed: int) -> dict[str, dict[str, tuple[float, float, float, float]]]:
    """Replicate ``r`` of :func:`validate` (the signature of :func:`~ketaweight.core.replicates.run_replicates`)."""
    return _one_replicate((*shared, int(seed)))


def replicate_checkpoint(path: Path | None, kind: str, scenario: str, **run: Any) -> Checkpoint | None:
    """The checkpoint of one scenario's replicates: ``<stem>-<scenario><suffix>`` beside ``path``."""
    if path is None:
        return None
    return Checkpoint(path.with_name(f"{path.stem}-{scenario}{path.suffix or '.json'}"),
                      {"kind": kind, "scenario": scenario, **run})


def validate(
    study: Study | str = "ketamine-weight",
    scenarios: tuple[str, ...] = ("null", "article"),
    *,
    replicates: int = 200,
    n_patients: int = 5000,
    truth_patients: int = 200_000,
    seed: int = 2026,
    workers: int | None = None,
    on_replicate: Callable[[int], None] | None = None,
    scheduler: Any = None,
    checkpoint: Path | None = None,
) -> list[ValidationRow]:
    """Coverage and bias of every estimator of ``study`` over ``replicates`` simulated cohorts.

    Replicates run where ``scheduler`` says (:func:`ketaweight.core.replicates.run_replicates`; ``None``:
    ``workers`` local processes), each with its own fixed seed, so the rows do not depend on it; with
    ``checkpoint`` finished replicates are kept per scenario and a rerun resumes from them."""
    study = study if isinstance(study, Study) else load_study(study)
    seeds = np.random.SeedSequence(seed).generate_state(len(scenarios) * (replicates + 1))
    rows: list[ValidationRow] = []
    for k, scenario in enumerate(scenarios):
        base = k * (replicates + 1)
        truth = cohort_truth(scenario, study, truth_patients, int(seeds[base]))
        reps = run_replicates(_replicate, [int(x) for x in seeds[base + 1: base + 1 + replicates]],
                              shared=(scenario, study, n_patients), scheduler=scheduler,
                              workers=workers or os.cpu_count() or 1, on_replicate=on_replicate,
                              checkpoint=replicate_checkpoint(checkpoint, "validation", scenario, seed=seed,
                                                              patients=n_patients, study=study.model_dump(mode="json")),
                              name=f"validate-{scenario}")
        for outcome, true_value in truth.items():
            for method in reps[0][outcome]:
                est, se, lo, hi = (np.array([r[outcome][method][i] for r in reps]) for i in range(4))
                cover = float(np.mean((lo <= true_value) & (true_value <= hi)))
                mean_se = float(np.mean(se))
                rows.append(ValidationRow(
                    scenario=scenario, outcome=outcome, method=method, truth=true_value,
                    mean_estimate=float(est.mean()), bias=float(est.mean() - true_value),
                    bias_over_se=float((est.mean() - true_value) / mean_se),
                    bias_mcse=float(est.std(ddof=1) / math.sqrt(replicates)), empirical_sd=float(est.std(ddof=1)),
                    mean_se=mean_se, coverage=cover, coverage_mcse=math.sqrt(cover * (1 - cover) / replicates),
                    replicates=replicates,
                ))
    return rows


def as_markdown(rows: list[ValidationRow], *, n_patients: int) -> str:
    """The coverage table for docs/validation.md."""
    lines = [
        "| scenario | outcome | method | truth | mean estimate | bias (MCSE) | bias / SE | empirical SD | mean SE | coverage (MCSE) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.scenario} | {r.outcome} | {r.method} | {r.truth:+.4f} | {r.mean_estimate:+.4f} | {r.bias:+.4f} ({r.bias_mcse:.4f}) | "
            f"{100 * r.bias_over_se:+.1f}% | {r.empirical_sd:.4f} | {r.mean_se:.4f} | {100 * r.coverage:.1f}% ({100 * r.coverage_mcse:.1f}) |"
        )
    lines.append("")
    lines.append(f"{rows[0].replicates if rows else 0} replicate cohorts of {n_patients:,} simulated patients per scenario.")
    return "\n".join(lines)


def validation_paths(out: Path, *, replace: bool) -> tuple[Path, Path]:
    """``out/validation.json`` and ``out/validation.md``, checked writable (call before a long run)."""
    return json_and_markdown_targets(out, "validation", replace=replace)


def write_validation(rows: list[ValidationRow], out: Path, *, study: str, seed: int, replicates: int,
                     patients: int, replace: bool = True) -> tuple[Path, Path]:
    """``out/validation.json`` (``kind = "validation"``) and the Markdown table ``out/validation.md``."""
    json_target, md_target = validation_paths(out, replace=replace)
    out.mkdir(parents=True, exist_ok=True)
    json_path = write_result(json_target, ValidationResults(tuple(rows)),
                             Provenance("simulated", "ketaweight simulator, replicate cohorts"), exact_counts=True,
                             replace=replace, study=study, seed=seed, replicates=replicates, patients=patients)
    md_path = write_text_atomic(md_target, MARKDOWN_GENERATOR + as_markdown(rows, n_patients=patients) + "\n")
    return json_path, md_path
