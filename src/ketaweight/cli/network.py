"""``ketaweight network``: run a study at one site into an aggregate-only bundle; synthesize bundles.

Thin wrappers over :func:`ketaweight.network.site.run_site`, :func:`ketaweight.network.synthesis.synthesize`
and :func:`ketaweight.network.validation.validate_network`.
"""

from __future__ import annotations

from pathlib import Path

import typer
from typing import TYPE_CHECKING

from rich.table import Table

from ketaweight.cli import app
from ketaweight.cli._common import console, make_table, progress_bar, run_cli
from ketaweight.core.privacy import mask_count

if TYPE_CHECKING:
    from ketaweight.network.calibration import CalibratedEstimate
    from ketaweight.network.synthesis import NetworkResult

network_app = typer.Typer(
    help="Network studies: the same study in several databases that never share patient rows. Each site writes "
         "an aggregate-only bundle; the coordinating centre calibrates with negative and positive controls and pools.",
    no_args_is_help=True,
)
app.add_typer(network_app, name="network")


def _ci(lo: float | None, hi: float | None) -> str:
    return "unbounded" if lo is None or hi is None else f"({lo:.2f}, {hi:.2f})"


def _est(est: float | None, lo: float | None, hi: float | None) -> str:
    return "—" if est is None else f"{est:.3f} {_ci(lo, hi)}"


def _calibration_rows(table: Table, label: str, n: int | str, c: CalibratedEstimate) -> None:
    table.add_row(label, mask_count(n) if isinstance(n, int) else str(n), _est(c.estimate, c.ci_low, c.ci_high),
                  _est(c.calibrated_estimate, c.calibrated_ci_low, c.calibrated_ci_high),
                  f"{c.null.mean:+.3f}, {c.null.sd:.3f}", f"{c.calibrated_p:.2g}")


def _calibration_table(title: str, unit: str) -> Table:
    return make_table("site", "n", "estimate (95% CI)", "calibrated (95% CI)", "null mean, SD", "cal. p", title=title,
                      caption=f"{unit}; null: the systematic error its controls show (mean, SD)",
                      right=("n", "estimate (95% CI)", "calibrated (95% CI)", "null mean, SD", "cal. p"))


@network_app.command("site")
def site_command(
    study: str = typer.Option(..., "--study", help="Shipped study name (e.g. ketamine-weight) or a study TOML; every site runs the same file."),
    store: Path = typer.Option(..., "--store", help="This site's DuckDB store (opened read-only)."),
    site: str = typer.Option(..., "--site", help="This site's name in the network (letters, digits, '.', '_', '-')."),
    out: Path = typer.Option(..., "--out", "-o", help="Bundle to write (e.g. site-A.zip); written atomically."),
    replace: bool = typer.Option(False, "--replace", help="Replace an earlier bundle at --out."),
) -> None:
    """Run the study at one site and write an aggregate-only bundle (no patient row, no count under 11)."""
    from ketaweight.network.site import run_site

    res = run_cli(lambda: run_site(store, study, site, out, replace=replace,
                                   on_stage=lambda text: console.print(text, highlight=False)))
    doc = res.results
    t = _calibration_table(f"Site {site}: {doc['study_name']}, primary estimate ({doc['primary']['method']}) "
                           "calibrated with this site's controls", doc["outcome_unit"])
    _calibration_rows(t, site, doc["counts"]["n_analysed"], res.calibration)
    console.print(t)
    for w in res.calibration.warnings:
        console.print(f"[yellow]calibration:[/] {w}", highlight=False)
    n_neg = sum(1 for c in doc["controls"] if c["delta"] == 0)
    console.print(f"bundle: [bold]{res.path}[/] ({n_neg} negative controls, {len(doc['controls']) - n_neg} positive "
                  f"controls; study hash {doc['study_hash'][:12]}…)", highlight=False)


def print_network(r: NetworkResult) -> None:
    """The synthesis as tables: sites, pooled methods, the calibrated answer."""
    unit = r.outcome_unit
    t = _calibration_table(f"{r.study_name}: sites, each calibrated with its own controls", unit)
    for s in r.sites:
        _calibration_rows(t, s.site, s.n, s.calibration)
    console.print(t)
    p = make_table("method", "estimate (95% CI)", "τ", "I²", "Q (p)", "95% prediction",
                   title=f"Pooled over {len(r.sites)} sites (uncalibrated), {unit}",
                   right=("estimate (95% CI)", "τ", "I²", "Q (p)", "95% prediction"))
    for key, m in r.pooled.items():
        q = f"{m.q:.1f} ({m.q_p:.2g})" if m.q_p is not None else "—"
        pred = _ci(m.prediction_low, m.prediction_high) if m.prediction_low is not None else "—"
        p.add_row(key, _est(m.estimate, m.ci_low, m.ci_high), f"{m.tau:.3f}", f"{m.i2:.0f}%", q, pred)
    b = r.bayesian
    p.add_row("bayesian", _est(b.mu, b.mu_ci_low, b.mu_ci_high), f"{b.tau:.3f}", "—", "—", "—")
    console.print(p)
    lg, tp, c = r.pool_then_calibrate, r.calibrate_then_pool, r.calibrated
    console.print(f"pool, then calibrate (LEGEND): {_est(lg.calibrated_estimate, lg.calibrated_ci_low, lg.calibrated_ci_high)} "
                  f"{unit}; pooled controls' null {lg.null.mean:+.3f} (SD {lg.null.sd:.3f}), EASE {lg.ease:.3f} {unit}",
                  highlight=False)
    console.print(f"calibrate each site, then pool: {_est(tp.estimate, tp.ci_low, tp.ci_high)} {unit}", highlight=False)
    console.print(f"[bold]Calibrated network estimate[/] (then with the pooled calibrated controls, {r.primary_pooling}): "
                  f"{_est(c.calibrated_estimate, c.calibrated_ci_low, c.calibrated_ci_high)} {unit}; calibrated p "
                  f"{c.calibrated_p:.2g}; shared error: null {c.null.mean:+.3f} (SD {c.null.sd:.3f})", highlight=False)
    rep = r.replication
    console.print(f"replication: {rep.sites_excluding_zero_calibrated} of {rep.k} sites' calibrated CIs exclude 0 "
                  f"in the direction of a {rep.direction}", highlight=False)
    for w in r.warnings:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)


@network_app.command("synthesize")
def synthesize_command(
    bundles: list[Path] = typer.Argument(..., metavar="BUNDLE", help="Site bundles (site-*.zip), two or more, all from the same study."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for network.json (kind 'network'; 'ketaweight report' shows it)."),
    replace: bool = typer.Option(False, "--replace", help="Replace an earlier network.json in --out."),
) -> None:
    """Check that every bundle ran the same study, calibrate, pool and write network.json."""
    from ketaweight.core.outputs import check_file_target
    from ketaweight.network.synthesis import synthesize, write_network

    run_cli(lambda: check_file_target(out / "network.json", replace=replace))  # before the work, not after
    result = run_cli(lambda: synthesize(bundles))
    path = run_cli(lambda: write_network(result, out, replace=replace))
    print_network(result)
    console.print(f"written: [bold]{path}[/]")


@network_app.command("validate")
def validate_command(
    networks: int = typer.Option(100, "--networks", "-r", min=2, help="Simulated networks per scenario."),
    sites: int = typer.Option(5, "--sites", min=2, help="Sites per network (the last one has an unmeasured confounder)."),
    patients: int = typer.Option(5000, "--patients", "-n", min=500, help="Patients per site, on average."),
    scenarios: str = typer.Option("null,article", "--scenarios", help="Comma-separated simulator scenarios."),
    seed: int = typer.Option(2015, "--seed", help="Master seed (network seeds are spawned from it)."),
    out: Path = typer.Option(Path("validation-output"), "--out", "-o", help="Folder for network-validation.json and .md."),
    replace: bool = typer.Option(False, "--replace", help="Replace earlier network-validation files in --out."),
    scheduler: str | None = typer.Option(None, "--scheduler", help="Run the networks on Dask: 'local:N' (a local "
                                         "cluster of N processes) or a scheduler address (tcp://host:8786); "
                                         "same results as without (docs/scale.md)."),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Keep finished networks in this file "
                                           "(one per scenario beside it); a rerun resumes from them."),
) -> None:
    """Coverage of uncalibrated and calibrated pooled CIs, and calibrated type-I error, over simulated networks (slow)."""
    from ketaweight.core.outputs import check_file_target
    from ketaweight.core.replicates import validate_scheduler
    from ketaweight.network.validation import validate_network, write_network_validation

    run_cli(lambda: validate_scheduler(scheduler))
    names = tuple(s.strip() for s in scenarios.split(",") if s.strip())
    for name in ("network-validation.json", "network-validation.md"):  # refuse before the work, not after
        run_cli(lambda: check_file_target(out / name, replace=replace))

    def action():
        with progress_bar(f"{networks} networks × {len(names)} scenarios × {sites} sites", networks * len(names)) as advance:
            return validate_network(names, networks=networks, sites=sites, patients=patients, seed=seed, on_network=advance,
                                    scheduler=scheduler, checkpoint=checkpoint)

    rows = run_cli(action)
    json_path, md_path = run_cli(lambda: write_network_validation(rows, out, networks=networks, sites=sites,
                                                                  patients=patients, seed=seed, replace=replace))
    t = make_table("scenario", "interval", "coverage", "type-I (p<0.05)", "mean width",
                   title=f"Network validation: {networks} networks × {sites} sites × {patients:,} patients",
                   right=("coverage", "type-I (p<0.05)", "mean width"))
    for r in rows:
        t.add_row(r.scenario, r.interval, f"{100 * r.coverage:.1f}%",
                  "—" if r.type_i is None else f"{100 * r.type_i:.1f}%", f"{r.mean_width:.3f}")
    console.print(t)
    console.print(f"written: {json_path}, {md_path}")
