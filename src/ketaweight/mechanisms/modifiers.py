"""Effect modifiers searched over a whole covariate catalogue, not only the prespecified ones.

For each candidate baseline column V, the cross-fitted AIPW pseudo-outcome φ (whose conditional mean
given the covariates is the conditional effect τ(L); :mod:`ketaweight.causal.aipw`) is regressed on V:
on level indicators for a categorical or binary V (a Wald χ² test of "no difference between levels",
K − 1 df), on V standardised for a numeric one (the change in effect per SD of V, 1 df).  This is
the best linear projection of τ(L) on V, with valid inference from cross-fitted pseudo-outcomes
(Semenova & Chernozhukov 2021), HC0 sandwich SEs.  Every candidate's p-value is adjusted by Holm's
step-down rule over all candidates searched (family-wise error), so a modifier is *found* when its
Holm-adjusted p-value is below ``alpha``.  The found modifiers' subgroup effects are then estimated
by the marginal structural model of :func:`ketaweight.mechanisms.heterogeneity.modifier_effects` —
numeric modifiers cut at their tertiles.

A search is a screen: a found modifier is a hypothesis for the next study, and a modifier can look
strong because it stands in for a correlated unmeasured one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ketaweight.causal.design import category_levels, numeric_by_value
from ketaweight.causal.glm import fit_linear, linear_sandwich
from ketaweight.core.protocol import Real, Result
from ketaweight.core.summary import Summary
from ketaweight.mechanisms.effects import holm

MAX_LEVELS = 6
"""A numeric column with at most this many distinct values is searched as categorical."""


@dataclass(frozen=True)
class ModifierTest(Result):
    """One candidate modifier: its ``scale`` (``categorical`` or ``numeric``), the test statistic, df, p-value
    and Holm-adjusted p-value, and ``per_unit`` — for a numeric modifier the change in effect per SD of
    it (outcome units, with the SD), for a categorical one the difference of each level from the first."""

    column: str
    scale: str
    chi2: Real
    df: int
    p_value: Real
    p_holm: Real
    per_unit: dict[str, Any]


@dataclass(frozen=True)
class ModifierSearch(Result):
    """Every candidate tested, strongest first; ``found`` the columns whose Holm-adjusted p-value is below
    ``alpha``; ``skipped`` candidates left out with the reason (constant, missing, not in the table)."""

    tests: tuple[ModifierTest, ...]
    found: tuple[str, ...]
    alpha: float
    skipped: dict[str, str]
    method: str = ("cross-fitted AIPW pseudo-outcome regressed on each candidate (best linear projection of the "
                   "conditional effect; HC0 sandwich), Holm step-down over every candidate")

    def summary(self) -> Summary:
        rows = tuple((t.column, t.scale, f"{t.chi2:.2f} ({t.df})", f"{t.p_value:.3g}", f"{t.p_holm:.3g}",
                      "found" if t.column in self.found else "") for t in self.tests)
        return Summary("Effect-modifier search over the covariate catalogue",
                       ("candidate", "scale", "chi2 (df)", "p", "p (Holm)", ""), rows,
                       (self.method, f"found: Holm-adjusted p < {self.alpha:g}",
                        *(f"{k}: not searched — {v}" for k, v in self.skipped.items())))


def _is_categorical(values: pd.Series) -> bool:
    if isinstance(values.dtype, pd.CategoricalDtype) or values.dtype == object or pd.api.types.is_string_dtype(values):
        return True
    return values.dropna().nunique() <= MAX_LEVELS


def projection_test(phi: np.ndarray, values: pd.Series, column: str) -> ModifierTest | str:
    """The projection test of one candidate on the rows where it is recorded (a reason string when it
    cannot be tested)."""
    ok = values.notna().to_numpy()
    if ok.sum() < 30:
        return "recorded for fewer than 30 analysed patients"
    v, p = values[ok], phi[ok]
    if _is_categorical(v):
        text = v.astype(object).map(str)
        levels = category_levels(v)
        if len(levels) < 2:
            return "constant over the analysed patients"
        design = np.column_stack([np.ones(ok.sum())] + [(text == lev).to_numpy(float) for lev in levels[1:]])
        scale = "categorical"
    else:
        x = numeric_by_value(v, column)
        sd = float(x.std())
        if not sd > 0:
            return "constant over the analysed patients"
        design = np.column_stack([np.ones(ok.sum()), (x - x.mean()) / sd])
        scale = "numeric"
    fit = fit_linear(design, p)
    cov = linear_sandwich(fit, design)
    b, vb = fit.coef[1:], cov[1:, 1:]
    try:
        chi2 = float(b @ np.linalg.solve(vb, b))
    except np.linalg.LinAlgError:
        return "singular design (a level with no patients)"
    df = len(b)
    if scale == "numeric":
        per_unit = {"per_sd": float(b[0]), "se": float(np.sqrt(vb[0, 0])), "sd": sd}
    else:
        per_unit = {f"{lev} vs {levels[0]}": float(bj) for lev, bj in zip(levels[1:], b)}
    return ModifierTest(column, scale, chi2, df, float(stats.chi2.sf(chi2, df)), float("nan"), per_unit)


def search_modifiers(phi: np.ndarray, table: pd.DataFrame, candidates: Sequence[str], *, alpha: float = 0.05
                     ) -> ModifierSearch:
    """Test every candidate column of ``table`` (rows aligned with ``phi``) and Holm-adjust (module docstring)."""
    tests: list[ModifierTest] = []
    skipped: dict[str, str] = {}
    for column in candidates:
        if column not in table.columns:
            skipped[column] = "not in the analysis table"
            continue
        out = projection_test(phi, table[column].reset_index(drop=True), column)
        if isinstance(out, str):
            skipped[column] = out
        else:
            tests.append(out)
    adjusted = holm([t.p_value for t in tests]) if tests else []
    tests = [ModifierTest(t.column, t.scale, t.chi2, t.df, t.p_value, p, t.per_unit) for t, p in zip(tests, adjusted)]
    tests.sort(key=lambda t: (t.p_value, -t.chi2))
    found = tuple(t.column for t in tests if t.p_holm < alpha)
    return ModifierSearch(tuple(tests), found, alpha, skipped)


def subgroup_column(table: pd.DataFrame, column: str) -> tuple[pd.DataFrame, str]:
    """``table`` with a column to estimate subgroup effects of ``column`` on: itself when categorical, its
    tertile groups (labelled with their ranges) when numeric."""
    values = table[column]
    if _is_categorical(values.dropna()):
        return table, column
    cuts = np.unique(np.nanquantile(values.to_numpy(float), [1 / 3, 2 / 3]))
    edges = np.concatenate([[-np.inf], cuts, [np.inf]])
    labels = [f"{column} < {cuts[0]:.4g}"] + [f"{lo:.4g}–{hi:.4g}" for lo, hi in zip(cuts[:-1], cuts[1:])] + \
             [f"{column} >= {cuts[-1]:.4g}"]
    name = f"{column} (tertiles)"
    out = table.copy()
    out[name] = pd.cut(values, edges, right=False, labels=labels, ordered=True)
    return out, name
