"""Rich tables the commands print: estimates side by side, a store's contents, the simulator's truth.
Display only; every count goes through :func:`ketaweight.core.privacy.mask_count`."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from ketaweight.causal.result import CausalResult, summarise
from ketaweight.core.privacy import mask_count
from ketaweight.sources.simulator import SimulationResult
from ketaweight.store.summary import StoreSummary


def results_table(results: Sequence[CausalResult]) -> Table:
    """A rich table of the estimates side by side, with diagnostics columns."""
    summary = summarise(list(results))
    table = Table(title=summary.title, caption=f"variance methods and warnings: see notes ({len(summary.notes)})")
    for i, h in enumerate(summary.header):
        table.add_column(h, justify="left" if i == 0 else "right")
    for r, row in zip(results, summary.rows):
        style = "yellow" if r.warnings else None
        table.add_row(*row, style=style)
    return table


def store_tables(summary: StoreSummary, name: str) -> list[Table]:
    """Rows and patients per table, then measurements per kind (counts under 11 masked)."""
    table = Table(title=f"Store {name}")
    table.add_column("table")
    table.add_column("rows", justify="right")
    table.add_column("patients", justify="right")
    for tname, rows, patients in summary.tables:
        table.add_row(tname, mask_count(rows), mask_count(patients))
    out = [table]
    if summary.kinds:
        t2 = Table(title="Measurements by kind")
        for col in ("kind", "unit", "rows", "patients"):
            t2.add_column(col, justify="right" if col in ("rows", "patients") else "left")
        for kind, unit, n, patients in summary.kinds:
            t2.add_row(kind, unit, mask_count(n), mask_count(patients))
        out.append(t2)
    return out


def truth_table(result: SimulationResult) -> Table | None:
    """The simulator's average truths (ATE and ATT), or None when the truth was not simulated."""
    t = result.truth
    if t is None:
        return None
    table = Table(title=f"Ground truth at {t['horizon_days']} days (simulated, scenario '{result.scenario.name}')")
    for col in ("quantity", "ATE", "ATT"):
        table.add_column(col, justify="right" if col != "quantity" else "left")
    rows = [("weight change, kg", t["weight_change_kg"]), ("weight change, %", t["weight_change_pct"])]
    rows += [(f"  via {k}, kg" if k != "interaction" else "  pathway interaction, kg", v)
             for k, v in t["pathways_kg"].items()]
    rows += [(f"MADRS change at {day.replace('_', ' ')}, points", v) for day, v in t["madrs_points"].items()]
    rows += [("resting HR (negative control), bpm", t["negative_control_resting_hr_bpm"])]
    for label, v in rows:
        table.add_row(label, f"{v['ate']:+.3f}", f"{v['att']:+.3f}")
    table.add_row("crude difference of true change, kg", f"{t['crude_difference_true_weight_change_kg']:+.3f}", "")
    return table
