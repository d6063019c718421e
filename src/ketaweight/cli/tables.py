"""Rich tables the commands print: estimates side by side, a store's contents, the simulator's truth.
Display only; every count goes through :func:`ketaweight.core.privacy.mask_count`."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from ketaweight.causal.result import CausalResult, summarise
from ketaweight.cli._common import make_table
from ketaweight.core.privacy import mask_count
from ketaweight.sources.simulator import SimulationResult
from ketaweight.store.summary import StoreSummary


def print_results(results: Sequence[CausalResult], console) -> None:  # noqa: ANN001 - a rich Console
    """The estimates side by side, then the numbered notes the table's caption points to."""
    console.print(results_table(results))
    for i, note in enumerate(summarise(list(results)).notes, 1):
        console.print(f"[dim][{i}][/] {note}", highlight=False)


def results_table(results: Sequence[CausalResult]) -> Table:
    """A rich table of the estimates side by side, with diagnostics columns."""
    summary = summarise(list(results))
    table = make_table(*summary.header, title=summary.title, right=summary.header[1:],
                       caption=f"notes [1]–[{len(summary.notes)}] below the table: variance methods and warnings")
    for r, row in zip(results, summary.rows):
        style = "yellow" if r.warnings else None
        table.add_row(*row, style=style)
    return table


def store_tables(summary: StoreSummary, name: str) -> list[Table]:
    """Rows and patients per table, then measurements per kind (counts under 11 masked)."""
    table = make_table("table", "rows", "patients", title=f"Store {name}", right=("rows", "patients"))
    for tname, rows, patients in summary.tables:
        table.add_row(tname, mask_count(rows), mask_count(patients))
    out = [table]
    if summary.kinds:
        t2 = make_table("kind", "unit", "rows", "patients", title="Measurements by kind", right=("rows", "patients"))
        for kind, unit, n, patients in summary.kinds:
            t2.add_row(kind, unit, mask_count(n), mask_count(patients))
        out.append(t2)
    return out


def truth_table(result: SimulationResult) -> Table | None:
    """The simulator's average truths (ATE and ATT), or None when the truth was not simulated."""
    t = result.truth
    if t is None:
        return None
    table = make_table("quantity", "ATE", "ATT", right=("ATE", "ATT"),
                       title=f"Ground truth at {t['horizon_days']} days (simulated, scenario '{result.scenario.name}')")
    rows = [("weight change, kg", t["weight_change_kg"]), ("weight change, %", t["weight_change_pct"])]
    rows += [(f"  via {k}, kg" if k != "interaction" else "  pathway interaction, kg", v)
             for k, v in t["pathways_kg"].items()]
    rows += [(f"MADRS change at {day.replace('_', ' ')}, points", v) for day, v in t["madrs_points"].items()]
    rows += [("resting HR (negative control), bpm", t["negative_control_resting_hr_bpm"])]
    for label, v in rows:
        table.add_row(label, f"{v['ate']:+.3f}", f"{v['att']:+.3f}")
    table.add_row("crude difference of true change, kg", f"{t['crude_difference_true_weight_change_kg']:+.3f}", "")
    return table
