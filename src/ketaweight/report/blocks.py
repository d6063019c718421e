"""Shared building blocks of the report's sections: data labels, tables, CI text, counts.

Every table is ``{"caption", "columns", "rows"}`` with text cells (the templates print them
as they are); every caption names where its numbers come from (:func:`data_label`).
"""

from __future__ import annotations

from typing import Any

from ketaweight.core.privacy import mask_count
from ketaweight.core.results import ResultsFile
from ketaweight.evidence.extract import EstimateRow
from ketaweight.evidence.grade import fmt_num
from ketaweight.core import figures as fg

NOT_ANALYSED = "Not yet analysed in this run: no results file for this analysis was found, so no number is shown."


def data_label(doc: ResultsFile) -> str:
    """How to label numbers from a results file: simulated, synthetic reports, or the named real source."""
    return doc.label


def table(caption: str, columns: list[str], rows: list[list[Any]]) -> dict[str, Any]:
    """A captioned table; cells become text."""
    return {"caption": caption, "columns": columns, "rows": [[str(c) for c in r] for r in rows]}


def ci_text(lo: float | None, hi: float | None) -> str:
    """'lo to hi' with true minus signs, or an em dash when a limit is missing."""
    return "—" if lo is None or hi is None else f"{fmt_num(lo)} to {fmt_num(hi)}"


def rows_table(rows: list[EstimateRow], unit: str, label: str, title: str, digits: int = 2) -> dict[str, Any]:
    """A table of labelled estimates with their CIs and (masked) counts."""
    return table(f"{title} — {label}", ["estimate", f"value ({unit})", "95% CI", "n"],
                  [[r.label, fmt_num(r.estimate, digits), f"{fmt_num(r.ci_low, digits)} to {fmt_num(r.ci_high, digits)}",
                    mask_count(r.n)] for r in rows])


def rows_forest(rows: list[EstimateRow], unit: str, label: str, title: str) -> fg.Figure:
    """A forest plot of labelled estimates."""
    return fg.forest_plot([r.label for r in rows], [r.estimate for r in rows], [r.ci_low for r in rows],
                          [r.ci_high for r in rows], unit=unit,
                          alt=f"{title}: estimates with 95% confidence intervals ({label})")
