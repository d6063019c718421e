"""Estimators side by side on a ready analysis table (one row per person; ``ketaweight analyze
--table``): read the table, run the methods, re-run negative-control outcomes, write
``causal_results.json``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ketaweight.causal import AnalysisSpec, negative_control
from ketaweight.causal.io import causal_payload
from ketaweight.causal.result import CausalResult
from ketaweight.causal.runner import ESTIMATORS, default_estimators, run_estimators
from ketaweight.causal.sensitivity import NegativeControl
from ketaweight.core.results import write_results


def write_causal_results(
    path: str | Path,
    results: Sequence[CausalResult],
    *,
    provenance: dict[str, Any],
    negative_controls: Sequence[NegativeControl] = (),
    exact_counts: bool = False,
) -> Path:
    """Write ``results`` as a ``kind="causal"`` results file (atomic); returns its path."""
    payload = causal_payload(results, negative_controls=negative_controls, exact_counts=exact_counts)
    return write_results(path, "causal", payload, provenance)


@dataclass(frozen=True)
class Analysis:
    """What :func:`analyze_table` returns: the results, negative controls and file written."""

    results: list[CausalResult]
    negative_controls: list[NegativeControl]
    path: Path | None


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet analysis table (by extension)."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file; pass the analysis table with --table")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix in (".csv", ".txt"):
        return pd.read_csv(path)
    raise ValueError(f"{path}: unknown table format '{suffix}'; use .csv or .parquet")


def analyze_table(
    table: pd.DataFrame,
    spec: AnalysisSpec,
    *,
    methods: Sequence[str] = tuple(ESTIMATORS),
    bootstrap: int = 0,
    seed: int = 0,
    n_jobs: int = -1,
    on_failure: str = "warn",
    negative_controls: Sequence[str] = (),
    out: Path | None = None,
    provenance: dict[str, Any] | None = None,
) -> Analysis:
    """Run ``methods`` side by side on ``table`` and optionally write ``OUT/causal_results.json``.

    ``bootstrap`` > 0 switches every estimator to a bootstrap of that many replicates;
    each name in ``negative_controls`` is re-analysed with IPW as a negative-control outcome.
    """
    variance = "bootstrap" if bootstrap > 0 else "sandwich"
    estimators = default_estimators(
        methods=methods, variance=variance, n_bootstrap=bootstrap or 1000, seed=seed, n_jobs=n_jobs,
        on_failure=on_failure,  # type: ignore[arg-type]
    )
    results = run_estimators(table, spec, estimators)
    controls = [
        negative_control(default_estimators(methods=("ipw",), seed=seed, on_failure=on_failure)[0], table, spec, col)  # type: ignore[arg-type]
        for col in negative_controls
    ]
    path = None
    if out is not None:
        path = write_causal_results(
            out / "causal_results.json",
            results,
            provenance={"spec": spec.to_dict(), "seed": seed, **(provenance or {})},
            negative_controls=controls,
        )
    return Analysis(results, controls, path)
