"""``ketaweight signals``: FAERS ingestion and disproportionality scans (thin wrappers)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from ketaweight.cli import app
from ketaweight.cli._common import console, make_table, progress_bar, run_cli
from ketaweight.core.errors import InputError, Location
from ketaweight.core.privacy import mask_count

signals_app = typer.Typer(
    help="Signals from spontaneous reports: ingest FDA FAERS quarterly files and run disproportionality "
    "analysis (PRR, ROR, IC, EBGM) for drug–event pairs, with positive and negative controls.",
    no_args_is_help=True,
)
app.add_typer(signals_app, name="signals")


COUNT_COLUMNS = ("lines", "records", "loaded", "quarantined")


class Truncation(str, Enum):
    mixture = "mixture"
    component = "component"


@signals_app.command("ingest")
def ingest_cmd(
    zips: list[Path] = typer.Argument(..., metavar="QUARTER", help="FAERS quarterly ASCII zips (faers_ascii_YYYYqN.zip), unzipped "
                                      "quarter folders, or folders of zips; one or more."),
    store: Path = typer.Option(..., "--store", help="DuckDB store file to load into (created if missing)."),
    replace: bool = typer.Option(False, "--replace", help="Load a quarter again, replacing its earlier rows."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the ingest accounting as JSON here."),
) -> None:
    """Load FAERS quarters into the store: repair or quarantine bad rows, deduplicate cases.

    All quarters load in one streaming pass and one transaction: on any error the store is left as
    it was. Quarters already in the store are deduplicated together with the new ones.
    """
    from ketaweight.pipelines.signals import write_ingest
    from ketaweight.signals.faers import ingest_faers, plan_ingest

    def action():
        plan = plan_ingest(zips)
        total = sum(q.size(m) for q in plan for m in (*q.members.values(), *q.deleted))
        with progress_bar("Reading FAERS files (bytes)", total=total) as advance:
            return ingest_faers([q.path for q in plan], store, replace=replace, progress=advance)

    report = run_cli(action)
    t = make_table("quarter", "table", "lines", "records", "loaded", "quarantined", "repairs",
                   title=f"FAERS ingest into {store}", right=COUNT_COLUMNS)
    for f in report.files:
        repairs = [f"{label} {k:,}" for label, k in (("encoding", f.encoding_repairs), ("joined", f.lines_joined),
                                                     ("split", f.records_split), ("'$'", f.dollar_repairs)) if k]
        t.add_row(f.quarter, f.table, f"{f.data_lines:,}", f"{f.records:,}", f"{f.loaded:,}", f"{f.quarantined:,}",
                  ", ".join(repairs))
    console.print(t)
    for f in report.files:
        for note in f.notes:
            console.print(f"note: {f.quarter} {f.member}: {note}", highlight=False)
    d = make_table("step", "before", "removed", "after", title="Deduplication (DEMO rows → unique current reports)",
                   right=("before", "removed", "after"))
    for s in report.dedup:
        d.add_row(s.reason, f"{s.n_before:,}", f"{s.n_excluded:,}", f"{s.n_after:,}")
    console.print(d)
    for note in report.notes:
        console.print(f"note: {note}", highlight=False)
    console.print(f"{report.reports:,} unique reports in {store}; quarantined rows are in table faers_quarantine.")
    if json_out:
        write_ingest(json_out, report, zips, store)


def _split(values: list[str]) -> list[str]:
    out = []
    for v in values:
        out.extend(x.strip() for x in v.split(",") if x.strip())
    return out


@signals_app.command("scan")
def scan_cmd(
    drug: list[str] = typer.Option(["ketamine", "esketamine"], "--drug", metavar="<names>", help="Drug ingredient(s) to score; repeat "
                                   "or comma-separate. Brand and salt names are mapped (see --drug-map)."),
    events: list[str] = typer.Option(["weight-loss"], "--events", metavar="<groups or terms>", help="Event term-group keys (weight-loss, "
                                     "weight-gain, or your own from --groups) or single MedDRA terms; repeatable."),
    store: Path | None = typer.Option(None, "--store", help="FAERS store (DuckDB) written by `signals ingest`."),
    table: Path | None = typer.Option(None, "--table", help="A contingency table CSV in the mddc format: rows "
                                      "events, columns drugs (with 'Other')."),
    long: Path | None = typer.Option(None, "--long", help="A long table (CSV or Parquet) of report_id, drug, event "
                                     "and optionally stratum rows, as openEBGM's processRaw takes."),
    roles: str = typer.Option("PS,SS,C,I", "--roles", help="FAERS drug roles counted (store only): PS primary "
                              "suspect, SS secondary suspect, C concomitant, I interacting."),
    stratify: str = typer.Option("", "--stratify", help="Stratify expected counts by sex, age, year (store only; "
                                 "comma-separated)."),
    truncation: Truncation = typer.Option(Truncation.mixture, "--truncation", help="Zero-truncated likelihood for "
                                          "the EBGM prior: 'mixture' (exact conditional likelihood) or 'component' "
                                          "(openEBGM)."),
    squash: bool = typer.Option(False, "--squash", help="Fit the prior on squashed data (DuMouchel & Pregibon 2001)."),
    prior: str | None = typer.Option(None, "--prior", help="Use this prior instead of fitting one: "
                                     "'alpha1,beta1,alpha2,beta2,P'."),
    drug_map: list[Path] = typer.Option([], "--drug-map", metavar="<path>", help="Extra name,ingredient CSV(s) extending the shipped "
                                        "drug-name map."),
    groups: list[Path] = typer.Option([], "--groups", metavar="<path>", help="Extra term-group TOML file(s) extending the shipped "
                                      "groups."),
    controls: list[Path] = typer.Option([], "--controls", metavar="<path>", help="Extra control-pair TOML file(s)."),
    no_controls: bool = typer.Option(False, "--no-controls", help="Leave the shipped positive/negative controls out."),
    ci_level: float = typer.Option(0.95, "--ci-level", min=0.5, max=0.999, help="Confidence level of the PRR, ROR and IC "
                                   "intervals (EBGM always reports EB05–EB95)."),
    haldane: bool = typer.Option(False, "--haldane", help="Add 0.5 to all cells of 2×2 tables with a zero "
                                 "(otherwise such ratios are reported as undefined)."),
    strict: bool = typer.Option(False, "--strict", help="Fail (exit 2) if the EBGM prior fit does not converge."),
    exact_counts: bool = typer.Option(False, "--exact-counts", help="Write exact counts (also 1–10) to the JSON "
                                      "file; the terminal always masks them."),
    out: Path | None = typer.Option(None, "--out", help="Directory for signals.json (the common results envelope)."),
    all_pairs_out: Path | None = typer.Option(None, "--all-pairs", help="Also score every drug–event pair of the "
                                              "data and write them to this Parquet file (pairs with a cell of 1–10 "
                                              "reports have their counts and ratios withheld unless --exact-counts)."),
) -> None:
    """Score drug–event pairs (default: ketamine and esketamine × weight loss) with PRR, ROR, IC and EBGM."""
    from ketaweight.core.provenance import Provenance
    from ketaweight.pipelines.signals import scan_source, write_all_pairs, write_signals

    def action():
        prior_values = None
        if prior:
            try:
                prior_values = [float(v) for v in prior.split(",")]
            except ValueError as exc:
                raise InputError([(Location("--prior"), f"not five numbers 'alpha1,beta1,alpha2,beta2,P': {prior}")]) from exc
        return scan_source(store=store, table=table, long=long, drugs=_split(drug), events=_split(events),
                           roles=_split([roles]), stratify=_split([stratify]), drug_map=drug_map, groups=groups,
                           controls=controls, no_controls=no_controls, prior=prior_values, squash=squash,
                           truncation=truncation.value, ci_level=ci_level, haldane=haldane, strict=strict)

    ct, res = run_cli(action)
    console.print(res.to_rich_table())
    fit = res.prior_fit
    if fit is not None:
        p = fit.prior
        console.print(
            f"EBGM prior ({fit.truncation} truncation, {fit.n_cells:,} cells): α1={p.alpha1:.4g} β1={p.beta1:.4g} "
            f"α2={p.alpha2:.4g} β2={p.beta2:.4g} P={p.p:.4g}; log-likelihood {fit.loglik:.3f}; "
            f"converged: {'yes' if fit.converged else 'NO'} (Newton decrement "
            f"{fit.newton_decrement if fit.newton_decrement is not None else float('nan'):.2g} ≤ {fit.tolerance:g})"
            + ("; at the edge of the parameter space" if fit.boundary else ""), highlight=False)
    console.print(f"Reports: {mask_count(ct.n_reports)}; source: {ct.source}", highlight=False)
    for v in res.control_verdicts():
        ok = [m for m, good in v.as_expected.items() if good]
        console.print(f"control {v.drug} × {v.event} (expected {v.expected}): as expected under "
                      f"{', '.join(ok) or 'no method'}", highlight=False)
    for note in res.notes:
        console.print(f"note: {note}", highlight=False)
    if out is not None:
        path = write_signals(Path(out) / "signals.json", res, ct, Provenance("real", ct.source), data=str(store or table or long),
                             drugs=_split(drug), events=_split(events), exact_counts=exact_counts)
        console.print(f"wrote {path}")
    if all_pairs_out is not None:
        n = run_cli(lambda: write_all_pairs(all_pairs_out, ct, res, exact_counts=exact_counts))
        console.print(f"wrote {all_pairs_out}: {n:,} drug–event pairs")


@signals_app.command("synth")
def synth_cmd(
    out_dir: Path = typer.Argument(..., help="Folder to write faers_ascii_YYYYqN.zip into."),
    reports: int = typer.Option(400_000, "--reports", help="Number of reports (a real quarter has about 400,000)."),
    quarter: str = typer.Option("2023Q1", "--quarter", help="Quarter label, e.g. 2023Q1."),
    seed: int = typer.Option(20230101, "--seed", help="Random seed (same seed, same files)."),
    defects: bool = typer.Option(True, "--defects/--clean", help="Include the real files' defects (stray '$', "
                                 "broken and collapsed lines, Windows-1252 bytes, bad rows)."),
) -> None:
    """Write a synthetic FAERS quarter in the real format with a known truth (not real data)."""
    from ketaweight.signals.synthetic import SyntheticQuarter, write_synthetic_quarter

    def action():
        if reports < 100:
            raise InputError([(Location("--reports"), f"need at least 100 reports, got {reports}")])
        return write_synthetic_quarter(out_dir, SyntheticQuarter(n_reports=reports, quarter=quarter.upper(),
                                                                 seed=seed, defects=defects))

    path, truth = run_cli(action)
    console.print(f"wrote {path}: {truth['reports']:,} reports, {truth['drug_rows']:,} drug rows, "
                  f"{truth['reac_rows']:,} reaction rows (synthetic; planted: {', '.join(truth['signals'])})")


@signals_app.command("status")
def status_cmd(
    store: Path = typer.Option(..., "--store", help="FAERS store (DuckDB) written by `signals ingest`."),
    quarantine: int = typer.Option(20, "--quarantine", help="Show up to this many quarantined rows (0: none)."),
) -> None:
    """Show what a store holds: quarters and per-file accounting, deduplication steps, quarantined rows."""
    from ketaweight.signals.status import faers_status

    status = run_cli(lambda: faers_status(store, quarantine_limit=quarantine))
    files, dedup, bad, n_bad = status.files, status.dedup, status.quarantined, status.n_quarantined
    # the member's folder (ascii/, deleted/) and the table name are in its file name: left out so the
    # table reads at 80 columns
    t = make_table("quarter", "file", "lines", "records", "loaded", "quarantined", "notes",
                   title=f"FAERS files in {store}", right=COUNT_COLUMNS)
    for q, m, _tn, dl, rc, ld, qu, nt in files:
        t.add_row(q, m.rsplit("/", 1)[-1], f"{dl:,}", f"{rc:,}", f"{ld:,}", f"{qu:,}", nt or "")
    console.print(t)
    d = make_table("step", "before", "removed", "after", title="Deduplication", right=("before", "removed", "after"))
    for step, b, r, a in dedup:
        d.add_row(step, f"{b:,}", f"{r:,}", f"{a:,}")
    console.print(d)
    if bad:
        qt = make_table("quarter", "file", "line", "column", "reason", right=("line",),
                        title=f"Quarantined rows ({len(bad)} of {n_bad:,} shown; table faers_quarantine)")
        for q, f, ln, c, r in bad:
            qt.add_row(q, f.rsplit("/", 1)[-1], f"{ln:,}", c or "", r)
        console.print(qt)
    else:
        console.print(f"{n_bad:,} quarantined rows.")
