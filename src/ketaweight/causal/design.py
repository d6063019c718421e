"""Covariate design matrices from a table: formula-like, without a formula parser.

A covariate list becomes the columns of a model matrix the way R's
``y ~ age + I(age^2) + as.factor(education)`` does: numeric columns enter linearly,
categorical columns as 0/1 indicators of every level but the first (levels ordered by
value, numerically when every level parses as a number), and listed columns also as their
square.  Every non-intercept column is then centred and scaled by its mean and standard
deviation over the analysed rows.  Scaling is a fixed linear reparametrisation: fitted
values, propensity scores and every estimate are unchanged, but Newton fits stay well
conditioned when squares such as ``wt71²`` (≈10⁴ kg²) sit beside indicators.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from ketaweight.core.errors import InputError, Location

ColumnKind = Literal["intercept", "linear", "indicator", "squared"]


@dataclass(frozen=True)
class Design:
    """A model matrix with an intercept first and one record per column.

    ``matrix`` is float64, shape (n, p).  ``source[j]`` names the covariate column j came
    from and ``kind[j]`` says how (``"linear"``, ``"indicator"`` of level ``level[j]``,
    ``"squared"``).  ``center``/``scale`` undo the standardisation: raw = matrix·scale + center.
    """

    matrix: np.ndarray
    names: tuple[str, ...]
    source: tuple[str, ...]
    kind: tuple[ColumnKind, ...]
    level: tuple[str | None, ...]
    center: np.ndarray
    scale: np.ndarray

    @property
    def n(self) -> int:
        """Number of rows."""
        return int(self.matrix.shape[0])

    def columns_of(self, covariates: Sequence[str], kinds: Sequence[ColumnKind] = ("linear", "indicator")) -> np.ndarray:
        """Indices of the columns that come from ``covariates`` with one of ``kinds``."""
        wanted = set(covariates)
        return np.array(
            [j for j, (s, k) in enumerate(zip(self.source, self.kind)) if s in wanted and k in kinds], dtype=int
        )

    def balance_columns(self) -> np.ndarray:
        """Columns whose balance is reported: linear terms and indicators (not squares)."""
        return np.array([j for j, k in enumerate(self.kind) if k in ("linear", "indicator")], dtype=int)


def numeric_by_value(values: pd.Series, column: str, source: str = "table") -> np.ndarray:
    """Convert a column to float by its values (``'1'`` → 1.0), never by categorical codes.

    ``causaldata`` loads NHEFS binary columns such as ``sex`` as string categoricals; their
    codes happen to match here but not in general, so conversion always goes through the
    values.  Raises :class:`InputError` naming the column when a value is not a number.
    """
    if isinstance(values.dtype, pd.CategoricalDtype) or values.dtype == object or pd.api.types.is_string_dtype(values):
        plain = values.astype(object).where(values.notna(), None)
        converted = pd.to_numeric(pd.Series(plain, index=values.index), errors="coerce")
        bad = converted.isna() & values.notna()
        if bad.any():
            example = values[bad].iloc[0]
            raise InputError(
                [
                    (
                        Location(source, column=column),
                        f"value {example!r} is not a number; list the column as categorical "
                        "(--categorical) or recode it",
                    )
                ]
            )
        return converted.to_numpy(dtype=float)
    if pd.api.types.is_bool_dtype(values):
        return values.to_numpy(dtype=float)
    return pd.to_numeric(values).to_numpy(dtype=float)


def _as_text(values: pd.Series) -> np.ndarray:
    """``str`` of every value (as object), computed once per distinct value: a categorical covariate
    of 10⁶ rows has a handful, and ``str`` per row cost a second per column there."""
    plain = values.astype(object)
    codes, uniques = pd.factorize(plain, use_na_sentinel=False)
    text = np.array([str(u) for u in uniques], dtype=object)[codes]
    missing = plain.isna().to_numpy()
    if missing.any():  # factorize merges None and NaN, whose texts differ
        text[missing] = [str(v) for v in plain[missing]]
    return text


def category_levels(values: pd.Series) -> list[str]:
    """Distinct levels as strings: in the categories' own order for an ordered categorical (BMI classes
    normal < overweight < obese), numerically when all parse as numbers, else alphabetically."""
    if isinstance(values.dtype, pd.CategoricalDtype) and values.dtype.ordered:
        present = set(values.dropna().astype(object))
        return [str(c) for c in values.dtype.categories if c in present]
    levels = sorted(set(_as_text(values)))
    try:
        return sorted(levels, key=float)
    except ValueError:
        return levels


def build_design(
    frame: pd.DataFrame,
    covariates: Sequence[str],
    *,
    categorical: Sequence[str] = (),
    squared: Sequence[str] = (),
    source: str = "table",
) -> Design:
    """Build the standardised model matrix for ``covariates`` of ``frame`` (no missing values).

    Parameters
    ----------
    frame:
        Rows to model; every listed column present and complete.
    covariates:
        Column names, in order.  Categorical ones must also appear in ``categorical``.
    categorical:
        Columns entered as indicators of each level except the first (R's treatment contrasts).
    squared:
        Numeric columns that also enter as their square, as ``I(x^2)`` in R.
    """
    problems: list[tuple[Location, str]] = []
    for name in list(categorical) + list(squared):
        if name not in covariates:
            problems.append((Location(source, column=name), "listed as categorical/squared but not a covariate"))
    for name in squared:
        if name in categorical:
            problems.append((Location(source, column=name), "cannot be both categorical and squared"))
    if problems:
        raise InputError(problems)

    cols: list[np.ndarray] = [np.ones(len(frame))]
    names: list[str] = ["(intercept)"]
    sources: list[str] = [""]
    kinds: list[ColumnKind] = ["intercept"]
    levels: list[str | None] = [None]
    for name in covariates:
        if name in categorical:
            as_text = _as_text(frame[name])
            for lev in category_levels(frame[name])[1:]:
                cols.append((as_text == lev).astype(float))
                names.append(f"{name}[{lev}]")
                sources.append(name)
                kinds.append("indicator")
                levels.append(lev)
            continue
        x = numeric_by_value(frame[name], name, source)
        cols.append(x)
        names.append(name)
        sources.append(name)
        kinds.append("linear")
        levels.append(None)
        if name in squared:
            cols.append(x * x)
            names.append(f"{name}^2")
            sources.append(name)
            kinds.append("squared")
            levels.append(None)

    raw = np.column_stack(cols) if cols else np.ones((len(frame), 1))
    center = raw.mean(axis=0) if len(frame) else np.zeros(raw.shape[1])
    scale = raw.std(axis=0) if len(frame) else np.ones(raw.shape[1])
    center[0], scale[0] = 0.0, 1.0
    constant = [names[j] for j in range(1, raw.shape[1]) if not scale[j] > 0]
    if constant and len(frame) > 1:
        raise InputError(
            [(Location(source, column=c), "is constant over the analysed rows; drop it from the covariates") for c in constant]
        )
    scale[scale == 0] = 1.0
    matrix = np.ascontiguousarray((raw - center) / scale)
    _check_collinear(matrix, names, source)
    return Design(matrix, tuple(names), tuple(sources), tuple(kinds), tuple(levels), center, scale)


COLLINEAR_TOLERANCE = 1e-9
"""Smallest eigenvalue of the covariates' correlation matrix (relative to the largest) below which one
column is a linear combination of others."""


def _check_collinear(matrix: np.ndarray, names: list[str], source: str) -> None:
    """InputError naming the first covariate column that is a linear combination of the ones before it
    (a column listed twice, or indicators that add up to another column): no model can separate them,
    and a solver would fail later with a bare 'Singular matrix'.  Cost: one p × p Gram matrix."""
    n, p = matrix.shape
    if p < 3 or n < 2:
        return
    corr = matrix[:, 1:].T @ matrix[:, 1:] / n  # columns are standardised: this is their correlation matrix
    eig = np.linalg.eigvalsh(corr)
    if eig[0] > COLLINEAR_TOLERANCE * max(eig[-1], 1.0):
        return
    for k in range(2, p):  # the first column whose leading block is singular
        sub = np.linalg.eigvalsh(corr[:k, :k])
        if sub[0] <= COLLINEAR_TOLERANCE * max(sub[-1], 1.0):
            culprit, earlier = names[k], [names[j + 1] for j in range(k - 1) if abs(corr[k - 1, j]) > 0.999]
            why = (f"is the same as {', '.join(earlier)} up to scale" if earlier
                   else "is a linear combination of the covariates before it")
            raise InputError([(Location(source, column=culprit), f"{why}: the models cannot tell them apart; list "
                               "each covariate once and drop one of the dependent columns")])


def interaction_columns(design: Design, interactions: Sequence[str] | Literal["all"]) -> np.ndarray:
    """Design columns multiplied by the treatment in the outcome model.

    ``interactions`` names covariates whose linear and indicator columns interact with the
    treatment, as ``I(qsmk*smokeintensity)`` in Hernán & Robins (2020, Program 13.2);
    ``"all"`` takes every non-intercept column, which equals separate models by arm.
    """
    if interactions == "all":
        return np.arange(1, design.matrix.shape[1])
    return design.columns_of(interactions)
