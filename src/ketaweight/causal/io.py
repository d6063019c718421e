"""Causal results as JSON (the ``causal`` kind of the results envelope) and as a terminal table.

The payload schema is documented in ``docs/results-schema.md`` (causal part).  Counts from 1
to 10 are masked as ``"<11"`` unless ``exact_counts=True`` (``ketaweight.privacy``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.table import Table

from ketaweight.causal.result import CausalResult, Summary
from ketaweight.causal.sensitivity import NegativeControl
from ketaweight.privacy import mask_counts
from ketaweight.results_io import write_results

def causal_payload(
    results: Sequence[CausalResult], *, negative_controls: Sequence[NegativeControl] = (), exact_counts: bool = False
) -> dict[str, Any]:
    """The ``results`` member of a causal results file."""
    payload = {
        "question": (
            f"effect of {results[0].treatment} on {results[0].outcome} ({results[0].estimand})" if results else None
        ),
        "estimates": [r.to_dict() for r in results],
        "negative_controls": [nc.to_dict() for nc in negative_controls],
        "counts": "exact" if exact_counts else "masked below 11",
    }
    return payload if exact_counts else mask_counts(payload)


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


def results_table(results: Sequence[CausalResult]) -> Table:
    """A rich table of the estimates side by side, with diagnostics columns."""
    summary = Summary.of(list(results))
    table = Table(title=summary.title, caption=f"variance methods and warnings: see notes ({len(summary.notes)})")
    for i, h in enumerate(summary.header):
        table.add_column(h, justify="left" if i == 0 else "right")
    for r, row in zip(results, summary.rows):
        style = "yellow" if r.warnings else None
        table.add_row(*row, style=style)
    return table
