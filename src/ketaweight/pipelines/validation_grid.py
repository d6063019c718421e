"""The validation grid: every estimator on every scenario of a grid of harder worlds, against exact truth.

A grid (``pipelines/data/validation-grid.toml``, or a file of the same form) lists entries of a label,
a simulator scenario and the patients simulated per replicate cohort.  For each entry: the truth is
the mean individual effect among the eligible patients of one large simulated cohort (every
patient simulated in both worlds with common random numbers, so it is exact up to that cohort's
sampling, 0.3–1.5 % of an SE here); then ``replicates`` independent cohorts are simulated, loaded into
an in-memory store, turned into the study's analysis table by the study's SQL, and analysed by every
estimator of :data:`GRID_ESTIMATORS` on the same prepared rows (weight change in kg).

Reported per entry and estimator (:class:`~ketaweight.pipelines.results.ValidationRow`): bias (with
its Monte-Carlo SE, empirical SD/√R), bias as a share of the mean SE, empirical SD against mean
estimated SE, CI coverage with its Monte-Carlo SE √(p(1−p)/R), and failed replicates (an estimator
raising on a cohort counts as failed, never as a number).
"""

from __future__ import annotations

import math
import os
import tomllib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from ketaweight.causal.aipw import AIPW
from ketaweight.causal.base import Estimator
from ketaweight.causal.crude import Crude
from ketaweight.causal.data import prepare
from ketaweight.causal.gestimation import GEstimation
from ketaweight.causal.ipw import IPW
from ketaweight.causal.standardization import Standardization
from ketaweight.causal.tmle import TMLE
from ketaweight.core.errors import InputError, KetaweightWarning, Location
from ketaweight.core.outputs import MARKDOWN_GENERATOR, json_and_markdown_targets
from ketaweight.core.tomlfile import read_toml
from ketaweight.core.provenance import Provenance
from ketaweight.core.results import write_result, write_text_atomic
from ketaweight.pipelines.emulation import analysis_spec
from ketaweight.pipelines.results import ValidationResults, ValidationRow
from ketaweight.core.replicates import run_replicates
from ketaweight.pipelines.validation import cohort_truth, replicate_checkpoint
from ketaweight.sources.simulator import load_scenario, simulate
from ketaweight.store.store import Store
from ketaweight.study.cohort import build_cohort
from ketaweight.study.spec import Study, load_study

GRID_ESTIMATORS: dict[str, Callable[[], Estimator]] = {
    "crude": Crude,
    "standardization": Standardization,
    "ipw": IPW,
    "g-estimation": GEstimation,
    "aipw (linear)": AIPW,
    "tmle (linear)": TMLE,
    "aipw (stacked)": lambda: AIPW(learner="stacked"),
    "tmle (stacked)": lambda: TMLE(learner="stacked"),
    "aipw (augmented)": lambda: AIPW(learner="augmented"),
    "tmle (augmented)": lambda: TMLE(learner="augmented"),
    "aipw (augmented+calibrated)": lambda: AIPW(learner="augmented", propensity_calibration="logistic"),
    "tmle (augmented+calibrated)": lambda: TMLE(learner="augmented", propensity_calibration="logistic"),
}
"""Estimators of the grid, by the label the table shows (default settings otherwise)."""

DEFAULT_GRID_ESTIMATORS: tuple[str, ...] = tuple(label for label in GRID_ESTIMATORS if "calibrated" not in label)
"""The estimators a grid runs unless told (the shipped checkpoints hold these); the recalibrated propensity's
pair is asked for by ``estimators`` (docs/validation.md, fifth search)."""

PRIMARY = "aipw (augmented)"
"""The estimator the grid's target is about (docs/validation.md: 93–97 % coverage, |bias| ≤ 10 % of its SE):
the doubly robust estimator with the learner the validation recommends where confounding may be nonlinear
(the tables of earlier runs, made before it existed, mark ``aipw (stacked)``)."""

OUTCOME = "outcome_change"
"""The grid's outcome column: weight change at 12 weeks in kg."""


@dataclass(frozen=True)
class GridEntry:
    """One row group of the grid: a label, a simulator scenario (name or TOML path), patients per cohort."""

    name: str
    scenario: str
    patients: int


def load_grid(path: str | Path | None = None) -> tuple[GridEntry, ...]:
    """Read a grid file (default: the shipped grid); every problem is named with file, line and entry."""
    if path is None:
        text, label = (resources.files("ketaweight.pipelines") / "data" / "validation-grid.toml").read_text("utf-8"), "validation-grid.toml"
        raw = tomllib.loads(text)
    else:
        p = Path(path)
        if not p.exists():
            raise InputError([(Location(str(p)), "grid file not found")])
        raw, text = read_toml(p)
        label = str(p)
    starts = [i + 1 for i, line in enumerate(text.splitlines()) if line.strip().startswith("[[entry]]")]
    entries, problems = [], []
    for i, e in enumerate(raw.get("entry", [])):
        where = Location(label, starts[i] if i < len(starts) else None, f"entry[{i}]", column_label="key")
        unknown = sorted(set(e) - {"name", "scenario", "patients"})
        if unknown:
            problems.append((where, f"unknown key(s) {unknown}; an entry has name, scenario and patients"))
        if not isinstance(e.get("name"), str) or not isinstance(e.get("scenario"), str):
            problems.append((where, "name and scenario must be strings"))
            continue
        patients = e.get("patients", 5000)
        if not (isinstance(patients, int) and patients >= 200):
            problems.append((where, f"patients = {patients!r} must be an integer of at least 200"))
            continue
        entries.append(GridEntry(e["name"], e["scenario"], patients))
    if not entries and not problems:
        problems.append((Location(label), "no [[entry]] tables: the grid is empty"))
    names = [e.name for e in entries]
    problems += [(Location(label), f"entry name {n!r} is used twice") for n in sorted({n for n in names if names.count(n) > 1})]
    for i, e in enumerate(raw.get("entry", [])):  # refuse an unknown scenario before minutes of work
        if not isinstance(e.get("scenario"), str):
            continue
        try:
            load_scenario(e["scenario"])
        except InputError as exc:
            where = Location(label, starts[i] if i < len(starts) else None, f"entry[{i}].scenario", column_label="key")
            problems += [(where, f"scenario {e['scenario']!r}: {m}") for _, m in exc.problems]
    if problems:
        raise InputError(problems)
    return tuple(entries)


def _truth(shared: tuple[str, Study, int], r: int, seed: int) -> float:
    """The entry's truth (kg) from its large cohort (:func:`~ketaweight.pipelines.validation.cohort_truth`)."""
    scenario, study, n_patients = shared
    return cohort_truth(scenario, study, n_patients, int(seed))[OUTCOME]


def _replicate(shared: tuple[str, Study, int, tuple[str, ...]], r: int, seed: int) -> dict[str, list[float]]:
    """Replicate cohort ``r``: [estimate, SE, CI low, CI high] per estimator label (NaNs where it failed);
    the signature of :func:`~ketaweight.core.replicates.run_replicates`, JSON values for its checkpoint."""
    scenario, study, n_patients, labels = shared
    nan = [math.nan] * 4
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", KetaweightWarning)
        res = simulate(load_scenario(scenario), n_patients, int(seed), truth=False)
        with Store(":memory:") as store:
            store.load_frames(res.tables, label="simulated", provenance=res.provenance)
            table = build_cohort(store, study).table
        data = prepare(table, analysis_spec(study, OUTCOME))
        out = {}
        for label in labels:
            try:
                fit = GRID_ESTIMATORS[label]().fit(data)
                out[label] = [fit.estimate, fit.se, fit.ci_low, fit.ci_high]
            except (InputError, ValueError, ArithmeticError, np.linalg.LinAlgError):
                out[label] = nan
    return out


def summarise_entry(entry: GridEntry, truth: float, reps: Sequence[dict[str, Sequence[float]]],
                    labels: Sequence[str]) -> list[ValidationRow]:
    """The table rows of one entry from its replicates (failed replicates counted, left out of the means)."""
    rows = []
    for label in labels:
        values = np.array([r[label] for r in reps], dtype=float)
        ok = np.all(np.isfinite(values), axis=1)
        est, se, lo, hi = values[ok].T
        k = int(ok.sum())
        cover = float(np.mean((lo <= truth) & (truth <= hi))) if k else math.nan
        mean_se = float(np.mean(se)) if k else math.nan
        sd = float(est.std(ddof=1)) if k > 1 else math.nan
        bias = float(est.mean() - truth) if k else math.nan
        rows.append(ValidationRow(
            scenario=entry.name, outcome=OUTCOME, method=label, truth=truth, mean_estimate=float(est.mean()) if k else math.nan,
            bias=bias, bias_over_se=bias / mean_se if k else math.nan, bias_mcse=sd / math.sqrt(k) if k > 1 else math.nan,
            empirical_sd=sd, mean_se=mean_se, coverage=cover,
            coverage_mcse=math.sqrt(cover * (1 - cover) / k) if k else math.nan, replicates=k,
            patients=entry.patients, failed=len(reps) - k))
    return rows


GRID_STUDY_SECTIONS = frozenset({"study", "eligibility", "time_zero", "treatment", "outcome", "covariates", "censoring",
                                  "analysis"})
"""The study's sections the grid's results depend on (the cohort and the analysis; not mechanisms or network)."""


def grid_study_key(study: Study) -> dict[str, Any]:
    """The study as a checkpoint records it: the sections of :data:`GRID_STUDY_SECTIONS`, so a change to the
    study's mechanisms or network settings does not throw away finished replicates they cannot have affected.
    ``[analysis] propensity_calibration`` is left out too: the grid's estimators carry their own settings
    (:data:`GRID_ESTIMATORS`), and the checkpoints made before the key existed stay readable."""
    return study.model_dump(mode="json", include=set(GRID_STUDY_SECTIONS), exclude={"analysis": {"propensity_calibration"}})


def check_selection(grid: Sequence[GridEntry], entries: Sequence[str] | None, estimators: Sequence[str]) -> None:
    """Refuse entry names the grid lacks and estimator labels :data:`GRID_ESTIMATORS` lacks (ValueError)."""
    unknown = [e for e in estimators if e not in GRID_ESTIMATORS]
    if unknown:
        raise ValueError(f"unknown grid estimator(s) {unknown}; choose from {list(GRID_ESTIMATORS)}")
    names = [e.name for e in grid]
    missing = [n for n in (entries or ()) if n not in names]
    if missing:
        raise ValueError(f"unknown grid entr{'y' if len(missing) == 1 else 'ies'} {missing}; the grid has {names}")


def validate_grid(
    study: Study | str = "ketamine-weight",
    grid: Sequence[GridEntry] | str | Path | None = None,
    *,
    replicates: int = 200,
    truth_patients: int = 200_000,
    seed: int = 2026,
    workers: int | None = None,
    estimators: Sequence[str] = DEFAULT_GRID_ESTIMATORS,
    entries: Sequence[str] | None = None,
    scheduler: Any = None,
    checkpoint: Path | None = None,
    on_replicate: Callable[[int], None] | None = None,
    on_entry: Callable[[list[ValidationRow]], None] | None = None,
) -> list[ValidationRow]:
    """Bias, SE and coverage of ``estimators`` on every entry of ``grid`` over ``replicates`` cohorts.

    Entry k of the grid draws its truth cohort and replicate cohorts from the k-th child of
    ``SeedSequence(seed)`` (replicate r from its (r+1)-th word), so ``entries`` (names: run only those)
    and ``replicates`` change which cohorts run, never what a cohort is: replicate r of an entry is the
    same cohort in every run.  Replicates run where ``scheduler`` says
    (:func:`ketaweight.core.replicates.run_replicates`; ``None``: ``workers`` local processes, default one
    per core), each single-threaded.  With ``checkpoint``, each entry's finished replicates are kept in
    ``<stem>-<entry><suffix>`` beside it; a rerun resumes from them, and a rerun with more replicates
    extends them.  ``on_entry(rows)`` is called as each entry completes (the CLI writes partial results
    there, so an interrupted run keeps what it finished)."""
    study = study if isinstance(study, Study) else load_study(study)
    grid_entries = tuple(grid) if isinstance(grid, (list, tuple)) else load_grid(grid)
    check_selection(grid_entries, entries, estimators)
    labels = tuple(estimators)
    streams = np.random.SeedSequence(seed).spawn(len(grid_entries))
    rows: list[ValidationRow] = []
    for entry, stream in zip(grid_entries, streams):
        if entries is not None and entry.name not in entries:
            continue
        seeds = [int(s) for s in stream.generate_state(replicates + 1)]
        run = dict(simulator_scenario=entry.scenario, seed=seed, study=grid_study_key(study))
        # The truth cohort (a minute at 200,000 patients) is a one-replicate run of its own, so a resumed
        # grid reads it from its checkpoint instead of simulating it again.
        (truth,) = run_replicates(
            _truth, seeds[:1], shared=(entry.scenario, study, truth_patients), scheduler=scheduler,
            name=f"grid-{entry.name}-truth",
            checkpoint=replicate_checkpoint(checkpoint, "validation-grid-truth", f"{entry.name}-truth",
                                            truth_patients=truth_patients, **run))
        reps = run_replicates(
            _replicate, seeds[1:], shared=(entry.scenario, study, entry.patients, labels), scheduler=scheduler,
            workers=workers or os.cpu_count() or 1, on_replicate=on_replicate, name=f"grid-{entry.name}",
            checkpoint=replicate_checkpoint(checkpoint, "validation-grid", entry.name, patients=entry.patients,
                                            estimators=list(labels), **run))
        rows.extend(summarise_entry(entry, truth, reps, labels))
        if on_entry is not None:
            on_entry(rows)
    return rows


def meets_target(row: ValidationRow) -> bool:
    """The grid's target for the primary estimator: coverage 93–97 % and |bias| ≤ 10 % of its mean SE."""
    return 0.93 <= row.coverage <= 0.97 and abs(row.bias_over_se) <= 0.10


def grid_markdown(rows: Sequence[ValidationRow], *, primary: str = PRIMARY) -> str:
    """The grid table for docs/validation.md (the primary estimator's rows marked with whether they meet the target)."""
    lines = ["| scenario | n | estimator | truth (kg) | bias (MCSE) | bias / SE | empirical SD / mean SE | coverage (MCSE) | target |",
             "|---|---:|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        target = ("met" if meets_target(r) else "**not met**") if r.method == primary else ""
        failed = f", {r.failed} failed" if r.failed else ""
        lines.append(
            f"| {r.scenario} | {r.patients:,} | {r.method} | {r.truth:+.4f} | {r.bias:+.4f} ({r.bias_mcse:.4f}) | "
            f"{100 * r.bias_over_se:+.1f}% | {r.empirical_sd:.4f} / {r.mean_se:.4f} | "
            f"{100 * r.coverage:.1f}% ({100 * r.coverage_mcse:.1f}{failed}) | {target} |")
    reps = sorted({r.replicates + r.failed for r in rows})
    lines += ["", f"{'/'.join(str(k) for k in reps)} replicate cohorts per scenario; n = patients simulated per cohort "
                  f"(the eligible cohort is about 98 % of them); target (primary estimator, {primary}): coverage "
                  "93–97 % and |bias| ≤ 10 % of its mean SE."]
    return "\n".join(lines)


def grid_paths(out: Path, *, replace: bool) -> tuple[Path, Path]:
    """``out/validation-grid.json`` and ``out/validation-grid.md``, checked writable (call before a long run)."""
    return json_and_markdown_targets(out, "validation-grid", replace=replace)


def write_grid(rows: list[ValidationRow], out: Path, *, partial: bool, **settings: object) -> tuple[Path, Path]:
    """The grid's results file (``kind = "validation"``, ``grid`` and ``partial`` in its provenance) and its
    Markdown table; called after each entry (``partial=True``) and once at the end."""
    json_target, md_target = grid_paths(out, replace=True)
    out.mkdir(parents=True, exist_ok=True)
    json_path = write_result(json_target, ValidationResults(tuple(rows)),
                             Provenance("simulated", "ketaweight simulator, replicate cohorts of the validation grid"),
                             exact_counts=True, replace=True, grid=True, partial=partial, **settings)
    note = "\n\n(partial: the run was still going when this was written)" if partial else ""
    md_path = write_text_atomic(md_target, MARKDOWN_GENERATOR + grid_markdown(rows) + note + "\n")
    return json_path, md_path
