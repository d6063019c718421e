"""Estimators side by side on a ready analysis table (one row per person; ``ketaweight analyze
--table``): read the table, run the methods, re-run negative-control outcomes, write
``causal_results.json``."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ketaweight.causal import AnalysisSpec, negative_control
from ketaweight.causal.analysis import CausalAnalysis
from ketaweight.causal.result import CausalResult
from ketaweight.causal.positivity import Trimming
from ketaweight.causal.runner import default_estimators, run_estimators
from ketaweight.core.vocabulary import DEFAULT_METHODS
from ketaweight.causal.sensitivity import NegativeControl
from ketaweight.core.attrition import AttritionStep
from ketaweight.core.errors import InputError, Location
from ketaweight.core.outputs import check_file_target
from ketaweight.core.provenance import Provenance
from ketaweight.core.results import write_result
from ketaweight.core.tomlfile import decode_text
from ketaweight.pipelines.results import CausalStudy


def table_document(results: Sequence[CausalResult], negative_controls: Sequence[NegativeControl] = ()) -> CausalStudy:
    """A plain table's analysis as a ``kind = "causal"`` payload (no study; the attrition of the table's rows)."""
    if not results:
        raise ValueError("no results to write; fit at least one estimator")
    first = results[0]
    attrition = tuple(AttritionStep(**s) for s in first.diagnostics.get("attrition", []))
    return CausalStudy(study=None, outcome_units={first.outcome: "outcome units"}, cohort_attrition=attrition,
                       covariates={c: "" for c in first.settings.get("spec", {}).get("covariates", ())},
                       analyses={first.outcome: CausalAnalysis.of(results, negative_controls)})


def write_causal_results(
    path: str | Path,
    results: Sequence[CausalResult],
    *,
    provenance: Provenance | dict[str, Any],
    negative_controls: Sequence[NegativeControl] = (),
    exact_counts: bool = False,
    replace: bool = True,
) -> Path:
    """Write ``results`` as a ``kind="causal"`` results file (atomic; counts under 11 masked unless
    ``exact_counts``); returns its path."""
    return write_result(path, table_document(results, negative_controls), provenance, exact_counts=exact_counts,
                        replace=replace)


@dataclass(frozen=True)
class Analysis:
    """What :func:`analyze_table` returns: the results, negative controls and file written."""

    results: list[CausalResult]
    negative_controls: list[NegativeControl]
    path: Path | None


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV (UTF-8) or Parquet analysis table (by extension); every failure names the file and,
    where the parser knows it, the line."""
    label = str(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file; pass the analysis table with --table")
    if path.is_dir():
        raise InputError([(Location(label), "is a folder; --table takes one .csv or .parquet file")])
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            return pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise InputError([(Location(label), f"cannot read Parquet file: {exc}")]) from exc
    if suffix not in (".csv", ".txt"):
        raise InputError([(Location(label), f"unknown table format '{suffix}'; use .csv or .parquet")])
    raw = path.read_bytes()
    if not raw.lstrip(b"\xef\xbb\xbf").strip():
        raise InputError([(Location(label, 1), "file is empty (expected a header line with column names)")])
    text = decode_text(raw, label)
    try:
        return pd.read_csv(io.StringIO(text))
    except pd.errors.ParserError as exc:  # "Error tokenizing data. C error: Expected 5 fields in line 7, saw 6"
        msg = str(exc)
        line = int(msg.split(" in line ")[1].split(",")[0]) if " in line " in msg else None
        raise InputError([(Location(label, line), f"malformed CSV line: {msg.split('C error: ')[-1]}")]) from exc
    except pd.errors.EmptyDataError as exc:
        raise InputError([(Location(label, 1), "no columns to read (expected a header line)")]) from exc


def analyze_table(
    table: pd.DataFrame,
    spec: AnalysisSpec,
    *,
    methods: Sequence[str] = DEFAULT_METHODS,
    n_bootstrap: int = 0,
    seed: int = 0,
    n_jobs: int = -1,
    on_failure: str = "warn",
    negative_controls: Sequence[str] = (),
    learner: str = "linear",
    n_repeats: int = 1,
    propensity_calibration: str = "none",
    trimming: Trimming | None = None,
    truncate_by_arm: float | None = None,
    out: Path | None = None,
    provenance: dict[str, Any] | None = None,
    replace: bool = True,
    scheduler: str | None = None,
) -> Analysis:
    """Run ``methods`` side by side on ``table`` and optionally write ``OUT/causal_results.json``.

    ``n_bootstrap`` > 0 switches every estimator to a bootstrap of that many replicates;
    each name in ``negative_controls`` is re-analysed with IPW as a negative-control outcome.
    ``learner``/``n_repeats``/``propensity_calibration`` set the doubly robust estimators' nuisance models,
    repeated cross-fitting and propensity recalibration, ``trimming`` restricts every analysis to a common support first, and
    ``truncate_by_arm`` caps IPW's weights within each weighted arm (:mod:`ketaweight.causal.positivity`).
    """
    if out is not None:  # before any work
        check_file_target(out / "causal_results.json", replace=replace)
    variance = "bootstrap" if n_bootstrap > 0 else "sandwich"
    estimators = default_estimators(
        methods=methods, variance=variance, n_bootstrap=n_bootstrap or 1000, seed=seed, n_jobs=n_jobs,
        on_failure=on_failure, learner=learner, n_repeats=n_repeats, truncate_by_arm=truncate_by_arm,  # type: ignore[arg-type]
        propensity_calibration=propensity_calibration,  # type: ignore[arg-type]
        scheduler=scheduler,
    )
    results = run_estimators(table, spec, estimators, trimming=trimming)
    controls = [
        negative_control(default_estimators(methods=("ipw",), seed=seed, on_failure=on_failure,  # type: ignore[arg-type]
                                            truncate_by_arm=truncate_by_arm)[0], table, spec, col, trimming=trimming)
        for col in negative_controls
    ]
    path = None
    if out is not None:
        path = write_causal_results(
            out / "causal_results.json",
            results,
            provenance={**Provenance("real", "a table given to `analyze --table`").to_dict(), "spec": spec.to_dict(),
                        "seed": seed, **(provenance or {})},
            negative_controls=controls,
            replace=replace,
        )
    return Analysis(results, controls, path)
