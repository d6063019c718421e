"""Read what the report and the evidence grade need out of results files, without copying them.

The causal results (``kind = "causal"``, see ``docs/results-schema.md``) have a fixed shape;
mechanism, dose-response and heterogeneity results follow the same estimate vocabulary
(``estimate``, ``ci_low``, ``ci_high``) but their nesting is their authors' choice, so
:func:`estimate_rows` finds every estimate in a document generically and labels it by the
path to it.  Nothing here invents a number: a missing value stays ``None``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

ESTIMATE_KEYS = ("estimate", "ci_low", "ci_high")
"""A dict holding these three keys is an estimate, whatever file it sits in."""

LABEL_KEYS = ("label", "pathway", "mediator", "subgroup", "level", "term", "name", "effect", "method", "dose", "x")
"""Keys whose value names an estimate (first found wins), in order of preference."""


@dataclass(frozen=True)
class EstimateRow:
    """One estimate with its interval, in the outcome's units."""

    label: str
    estimate: float
    ci_low: float
    ci_high: float
    n: int | str | None = None

    @property
    def excludes_zero(self) -> bool:
        """True when the interval lies entirely on one side of zero."""
        return self.ci_low > 0 or self.ci_high < 0


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _label(d: dict[str, Any], path: list[str]) -> str:
    parts = [str(d[k]) for k in LABEL_KEYS if k in d and isinstance(d[k], (str, int, float)) and not isinstance(d[k], bool)]
    return " · ".join(path + parts[:2]) if parts else " · ".join(path) or "estimate"


def estimate_rows(document: Any, *, path: list[str] | None = None) -> list[EstimateRow]:
    """Every finite estimate (a dict with ``estimate``, ``ci_low``, ``ci_high``) in ``document``, in order.

    Nested estimates under ``diagnostics``/``settings``/``sensitivity``/``negative_controls`` are
    skipped: they describe an estimate, they are not further answers.
    """
    path = path or []
    out: list[EstimateRow] = []
    if isinstance(document, dict):
        if all(k in document for k in ESTIMATE_KEYS) and all(_finite(document[k]) for k in ESTIMATE_KEYS):
            out.append(EstimateRow(_label(document, path), float(document["estimate"]), float(document["ci_low"]),
                                   float(document["ci_high"]), document.get("n")))
            return out
        for key, value in document.items():
            if key in ("diagnostics", "settings", "sensitivity", "negative_controls", "provenance"):
                continue
            out.extend(estimate_rows(value, path=path + [str(key)] if isinstance(value, dict) else path))
    elif isinstance(document, list):
        for item in document:
            out.extend(estimate_rows(item, path=path))
    return out


def primary_estimate(analysis: dict[str, Any], method: str) -> dict[str, Any] | None:
    """The estimate of ``method`` in one causal payload (``analyses[column]``), or None."""
    return next((e for e in analysis.get("estimates", []) if e.get("method") == method), None)


def horizon_phrase(days: int | float | None) -> str:
    """'12 weeks' for 84 days; '30 days' when not a whole number of weeks."""
    if days is None:
        return "the outcome horizon"
    d = int(days)
    return f"{d // 7} weeks" if d % 7 == 0 else f"{d} days"
