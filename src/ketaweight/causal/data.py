"""From a table and a spec to the arrays every estimator uses, with counted attrition.

Missing data is handled on purpose (OHDSI CohortMethod style): each exclusion is a step
with a reason and counts before/after, stored with the results.  Rows with a missing
treatment or covariate are excluded; a missing outcome is either an exclusion or a
censoring event, as the spec says.  Nothing is dropped silently.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from ketaweight.causal.design import Design, build_design, numeric_by_value
from ketaweight.causal.spec import AnalysisSpec
from ketaweight.core.attrition import AttritionStep
from ketaweight.core.errors import InputError, Location


@dataclass(frozen=True)
class AnalysisData:
    """The analysed rows as arrays.

    ``a`` treatment (0/1 float), ``y`` outcome (NaN where censored), ``observed`` True where
    the outcome is observed (not censored), ``x`` the covariate design, ``z`` the censoring
    design (None without censoring), ``attrition`` the counted exclusion steps, ``trimming`` the
    record of a common-support trimming (:func:`ketaweight.causal.positivity.trim`; None when the
    population was not trimmed), and ``outcome_sd`` the standard deviation of the observed outcome
    (outcome units), used by the E-value's standardized-difference approximation.
    """

    spec: AnalysisSpec
    a: np.ndarray
    y: np.ndarray
    observed: np.ndarray
    x: Design
    z: Design | None
    attrition: tuple[AttritionStep, ...]
    trimming: dict | None = None

    @property
    def n(self) -> int:
        """Rows analysed (censored rows included)."""
        return int(self.a.shape[0])

    @property
    def n_observed(self) -> int:
        """Rows with an observed outcome."""
        return int(self.observed.sum())

    @property
    def censored(self) -> bool:
        """Whether any analysed row is censored."""
        return bool(self.n_observed < self.n)

    @property
    def outcome_sd(self) -> float:
        """Sample standard deviation of the observed outcome (outcome units)."""
        yo = self.y[self.observed]
        return float(np.std(yo, ddof=1)) if yo.size > 1 else float("nan")

    def subset(self, rows: np.ndarray) -> AnalysisData:
        """The same analysis on a subset (or resample, with repeats) of rows; designs keep
        their original scaling so coefficients stay comparable."""
        x = _take(self.x, rows)
        z = None if self.z is None else _take(self.z, rows)
        return AnalysisData(self.spec, self.a[rows], self.y[rows], self.observed[rows], x, z, self.attrition,
                            self.trimming)


T = TypeVar("T")

_MEMO: dict[int, dict[Hashable, Any]] = {}
_MEMO_LOCK = threading.Lock()


def memoised(data: AnalysisData, key: Hashable, compute: Callable[[], T]) -> T:
    """``compute()`` once per (``data`` object, ``key``), remembered while ``data`` lives.

    The estimators run side by side on one :class:`AnalysisData` fit the same nuisance models
    (crude, standardization and IPW the same propensity model; IPW and g-estimation the same
    censoring model): each is a pure function of the data object, so it is fitted once.  The
    entries go when ``data`` is collected (a bootstrap resample's with it)."""
    with _MEMO_LOCK:
        entry = _MEMO.get(id(data))
        if entry is not None and key in entry:
            return entry[key]
    value = compute()
    with _MEMO_LOCK:
        entry = _MEMO.get(id(data))
        if entry is None:
            entry = _MEMO[id(data)] = {}
            weakref.finalize(data, _MEMO.pop, id(data), None)
        return entry.setdefault(key, value)


def _take(design: Design, rows: np.ndarray) -> Design:
    return Design(
        design.matrix[rows], design.names, design.source, design.kind, design.level, design.center, design.scale
    )


def _binary(values: np.ndarray, column: str, what: str) -> None:
    """Raise InputError unless every value is 0 or 1."""
    bad = ~np.isin(values, (0.0, 1.0))
    if bad.any():
        raise InputError(
            [(Location("table", column=column), f"{what} must be 0/1; found {sorted(set(values[bad].tolist()))[:5]}")]
        )


def as_analysis_data(table: pd.DataFrame | AnalysisData, spec: AnalysisSpec | None, caller: str) -> AnalysisData:
    """``table`` itself when already prepared (``spec`` then ignored), else :func:`prepare` of it;
    ``caller`` names the function in the error when a DataFrame comes without a spec."""
    if isinstance(table, AnalysisData):
        return table
    if spec is None:
        raise TypeError(f"{caller}(table, spec): a spec is required with a DataFrame")
    return prepare(table, spec)


def prepare(table: pd.DataFrame, spec: AnalysisSpec) -> AnalysisData:
    """Validate ``table`` against ``spec`` and return the analysed rows as :class:`AnalysisData`.

    Steps (each recorded in ``attrition``): input rows; exclude missing treatment; exclude
    missing covariates (per-column counts in the reason); exclude, or mark censored, rows
    whose outcome is missing.  Raises :class:`InputError` listing every missing column and
    every non-0/1 treatment or censor value.
    """
    needed = [spec.treatment, spec.outcome, *spec.covariates, *spec.censoring_covariates]
    if spec.censor:
        needed.append(spec.censor)
    missing_cols = sorted({c for c in needed if c not in table.columns})
    if missing_cols:
        raise InputError(
            [(Location("table", column=c), "column not found; check the spelling or the table") for c in missing_cols]
        )
    steps: list[AttritionStep] = []
    frame = table
    n0 = len(frame)
    steps.append(AttritionStep("input", "rows in the analysis table", n0, 0, n0))

    def exclude(mask: pd.Series, step: str, reason: str) -> None:
        nonlocal frame
        before = len(frame)
        frame = frame.loc[~mask]
        steps.append(AttritionStep(step, reason, before, before - len(frame), len(frame)))

    exclude(frame[spec.treatment].isna(), "missing treatment", f"'{spec.treatment}' is missing")
    covs = list(dict.fromkeys([*spec.covariates, *spec.censoring_covariates]))
    na = frame[covs].isna()
    per_col = {c: int(k) for c, k in na.sum().items() if k}
    reason = "missing " + ", ".join(f"'{c}' ({k})" for c, k in per_col.items()) if per_col else "no covariate missing"
    exclude(na.any(axis=1), "missing covariates", reason)

    a = numeric_by_value(frame[spec.treatment], spec.treatment)
    _binary(a, spec.treatment, "the treatment")
    y = numeric_by_value(frame[spec.outcome], spec.outcome)
    if spec.censor:
        c = numeric_by_value(frame[spec.censor].fillna(0), spec.censor)
        _binary(c, spec.censor, "the censoring indicator")
        censored = c == 1
        unexplained = np.isnan(y) & ~censored
        if spec.missing_outcome == "censor":
            censored = censored | unexplained
        else:
            exclude(
                pd.Series(unexplained, index=frame.index),
                "missing outcome",
                f"'{spec.outcome}' missing but '{spec.censor}' is 0",
            )
            keep = ~unexplained
            a, y, censored = a[keep], y[keep], censored[keep]
    elif spec.missing_outcome == "exclude":
        miss = np.isnan(y)
        exclude(pd.Series(miss, index=frame.index), "missing outcome", f"'{spec.outcome}' is missing (excluded, not censored)")
        a, y = a[~miss], y[~miss]
        censored = np.zeros(len(y), dtype=bool)
    else:
        censored = np.isnan(y)
    observed = ~censored
    if censored.any():
        steps.append(
            AttritionStep(
                "censored",
                "outcome unobserved (lost to follow-up): kept, handled by censoring weights or standardisation",
                len(frame),
                0,
                len(frame),
            )
        )
    y = np.where(observed, y, np.nan)
    x = build_design(frame, spec.covariates, categorical=spec.categorical, squared=spec.squared)
    z = None
    if censored.any():
        z = build_design(
            frame,
            spec.censoring_covariates,
            categorical=[c for c in spec.categorical if c in spec.censoring_covariates],
            squared=[c for c in spec.squared if c in spec.censoring_covariates],
        )
    return AnalysisData(spec, a, y, observed, x, z, tuple(steps))
