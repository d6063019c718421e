"""CLI: ketaweight mechanisms — mediation, dose-response and heterogeneity of a study.

A thin wrapper over :func:`ketaweight.pipelines.mechanisms.run_mechanisms`; settings come from
the study's [mechanisms] sections.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ketaweight.cli import app
from ketaweight.cli._common import console, make_table, run_cli
from ketaweight.core.privacy import mask_count

if TYPE_CHECKING:
    from ketaweight.pipelines.results import MechanismsResults


@app.command("mechanisms")
def mechanisms_command(
    store: Path = typer.Option(..., "--store", help="DuckDB store file (e.g. from 'ketaweight simulate')."),
    study: str = typer.Option("ketamine-weight", "--study", help="Shipped study name or a study TOML."),
    out: Path = typer.Option(Path("out"), "--out", "-o", help="Folder for <study>-mechanisms.json."),
    bootstrap: int | None = typer.Option(None, "--bootstrap", min=2, help="Mediation bootstrap replicates (default: the study's [mechanisms.mediation] n_bootstrap)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed (default: the study's analysis seed)."),
    replace: bool = typer.Option(False, "--replace", help="Replace an earlier <study>-mechanisms.json in --out."),
) -> None:
    """How, how much and for whom: mediation by pathway, dose-response curves, subgroup and per-patient effects."""
    from ketaweight.pipelines.mechanisms import run_mechanisms

    res = run_cli(lambda: run_mechanisms(store, study, out, n_bootstrap=bootstrap, seed=seed, replace=replace))
    _print(res)
    console.print(f"written: {res.path}")


def _print(res: MechanismsResults) -> None:
    unit = res.outcome_units
    if res.mediation is not None:
        med = make_table("effect", "estimate", "95% CI", title=f"Mediation (interventional effects, {unit})",
                         right=("estimate", "95% CI"))
        for r in res.mediation.effects:
            med.add_row(r.estimand, f"{r.estimate:+.3f}", f"({r.ci_low:+.3f}, {r.ci_high:+.3f})")
        d = res.mediation.diagnostics
        steps = {s["step"]: s for s in d["attrition"]}
        restricted = (f"; {mask_count(steps['restriction']['n_excluded'])} left out by the restriction to steady-state "
                      "baseline weeks" if "restriction" in steps else "")
        med.caption = (f"{mask_count(d['n_analysed'])} patients, {mask_count(d['n_complete'])} with every mediator and the "
                       f"outcome{restricted}; assumptions in the results file")
        console.print(med)
    for name, why in res.not_estimable.items():
        console.print(f"{name}: not estimable — {why}")
    sub = make_table("modifier", "level", "n", "effect", "95% CI", "p (Holm)", title=f"Effect modification ({unit})",
                     right=("n", "effect", "95% CI", "p (Holm)"))
    for m in res.heterogeneity.subgroups:
        for lev, r in zip(m.levels, m.subgroups):
            sub.add_row(m.modifier, lev, mask_count(r.n), f"{r.estimate:+.3f}", f"({r.ci_low:+.3f}, {r.ci_high:+.3f})",
                        f"{m.p_value:.3f} ({m.p_holm:.3f})")
    console.print(sub)
    s = res.heterogeneity.individual.distribution
    console.print(f"Per-patient effects (DR-learner): SD {s['predicted']['sd']:.3f} {unit}; share predicted below "
                  f"{s['threshold']:g} {unit} {100 * s['share_predicted_below_threshold']:.1f}%; calibration slope "
                  f"{s['calibration']['blp_slope']:.2f} (95% CI {s['calibration']['blp_slope_ci'][0]:.2f}, "
                  f"{s['calibration']['blp_slope_ci'][1]:.2f})")
    for c in res.dose_response:
        if c.method == "msm":
            lo, hi = c.curve[0], c.curve[-1]
            console.print(f"Dose-response {c.exposure}{' by ' + str(c.by) if c.by else ''}: "
                          f"{lo.estimate:+.2f} {unit} at {lo.exposure:.2f} → {hi.estimate:+.2f} {unit} at {hi.exposure:.2f} (MSM)")
