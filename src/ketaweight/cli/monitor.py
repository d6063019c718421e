"""CLI: ``ketaweight monitor`` — per-patient monitoring alerts from the store (a thin wrapper over
:func:`ketaweight.pipelines.monitoring.monitor`)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from typing import TYPE_CHECKING

import typer
from rich.table import Table  # noqa: TC002 - return type

from ketaweight.cli import app
from ketaweight.cli._common import console, make_table, run_cli

if TYPE_CHECKING:
    from ketaweight.pipelines.monitoring import MonitoringResult


def summary_table(result: MonitoringResult) -> Table:
    """Alerts and patients per rule (counts under 11 masked; no identifiers)."""
    table = make_table("rule", "alerts", "patients", right=("alerts", "patients"),
                       title=f"Monitoring alerts per rule (as of {result.as_of}; {result.patients_checked:,} treated "
                             "patients checked)")
    for row in result.summary():
        table.add_row(row["title"], str(row["alerts"]), str(row["patients"]))
    return table


def alerts_table(result: MonitoringResult, limit: int) -> Table:
    """One row per alert: patient, rule, when, what and the first cited rows."""
    table = make_table("patient", "rule", "last", "what", title="Alerts (patient-level: keep inside the clinic)")
    for a in result.alerts[:limit]:
        table.add_row(a.patient_id, a.title, a.last_time[:10], a.message)
    return table


@app.command("monitor")
def monitor_command(
    store: Path = typer.Option(..., "--store", help="DuckDB store file."),
    rules: Path = typer.Option(None, "--rules", help="Rules file (TOML); default: the shipped one (print it with "
                               "--show-rules, copy it and edit)."),
    out: Path = typer.Option(None, "--out", "-o", help="Write every alert with its cited rows as JSON here "
                             "(names patients: keep it inside the clinic)."),
    as_of: dt.datetime = typer.Option(None, "--as-of", help="Monitoring date (YYYY-MM-DD); default: the latest record."),
    summary_only: bool = typer.Option(False, "--summary", help="Print only the counts per rule (no identifiers; "
                                      "counts under 11 shown as <11) — safe to share."),
    limit: int = typer.Option(50, "--limit", min=0, help="Alerts printed in the terminal table (all go to --out)."),
    show_rules: bool = typer.Option(False, "--show-rules", help="Print the shipped rules file and exit."),
) -> None:
    """Per-patient alerts: rapid weight loss, low BMI, dose or frequency beyond protocol, dose escalation,
    blood pressure after dosing, adverse events not followed up, missed weighings."""
    from ketaweight.pipelines.monitoring import monitor
    from ketaweight.pipelines.monitoring_rules import shipped_rules_path

    if show_rules:
        console.print(shipped_rules_path().read_text(encoding="utf-8"), highlight=False, markup=False)
        raise typer.Exit()
    result = run_cli(lambda: monitor(store, rules, as_of=as_of, out_path=out))
    console.print(summary_table(result))
    if not summary_only and result.alerts:
        console.print(alerts_table(result, limit))
        if len(result.alerts) > limit:
            console.print(f"... {len(result.alerts) - limit:,} more alert(s); all are in --out", highlight=False)
    if out is not None:
        console.print(f"Alerts: [bold]{out}[/] ({len(result.alerts):,} alerts with the rows that triggered them)")
