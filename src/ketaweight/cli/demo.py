"""CLI: ``ketaweight demo`` — the main job end to end: from nothing to the graded answer and its report.

1. simulate a ketamine-clinic cohort (scenario ``article`` by default) into the DuckDB store;
2. emulate both shipped target trials (weight; depression as the therapeutic context);
3. the weight study's mechanisms: mediation by pathway, dose-response, heterogeneity;
4. responsible-use views from the store (adverse events per session, monitoring flags);
5. FAERS signals on a small synthetic quarter in the real FAERS file format (generated here,
   labelled synthetic) and on a real FAERS-derived table shipped by ``mddc``;
6. the evidence grade and the report (HTML, Markdown, JSON); print its path and the answer.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import typer

from ketaweight.causal.io import results_table
from ketaweight.causal.mechanisms import run_mechanisms
from ketaweight.cli import app
from ketaweight.cli._common import console, run_cli
from ketaweight.cli.simulate import ExportFormat, print_truth, run_simulation
from ketaweight.cli.store import print_store_summary
from ketaweight.emulation import data_source, run_study
from ketaweight.report.render import write_report
from ketaweight.report.safety import responsible_use
from ketaweight.results_io import write_results
from ketaweight.signals import mapping
from ketaweight.signals.scan import ScanResult, scan
from ketaweight.signals.tables import CountTable
from ketaweight.store import Store

DEMO_STUDIES = ("ketamine-weight", "ketamine-depression")
SYNTHETIC_FAERS_REPORTS = 60_000
"""Size of the demo's synthetic FAERS quarter (a real quarter has about 400,000 reports)."""
MDDC_TABLE = ("sedative1000", "load_sedative1000_data", "2021Q1–2023Q4")
"""The real FAERS-derived table used: mddc name, loader, FAERS period (from the mddc documentation)."""
MDDC_DRUGS = ["midazolam", "dexmedetomidine", "diazepam", "lorazepam"]
"""Sedatives and anaesthetics in the mddc table scored for weight loss (ketamine itself is not in any mddc table)."""


def _scan_and_write(table: CountTable, drugs: list[str], out: Path, label: str, data: str) -> ScanResult:
    """Score ``drugs`` × weight loss with the shipped controls that the table can show; write ``out``."""
    groups = mapping.load_term_groups()
    controls = [c for c in mapping.load_controls() if c.drug in table.drug_reports]
    res = scan(table, drugs=drugs, events=["weight-loss"], groups=groups, controls=controls)
    write_results(out, kind="signals", results=res.to_dict(),
                  provenance={"data": data, "source": table.source, "label": label, "synthetic": "synthetic" in label,
                              "spec": {"drugs": drugs, "events": ["weight-loss"]}, "seed": None})
    return res


def synthetic_faers_signals(work: Path, out: Path, n_reports: int = SYNTHETIC_FAERS_REPORTS) -> ScanResult:
    """Generate a small synthetic FAERS quarter (real format, known truth) of ``n_reports``, ingest it, scan it."""
    from ketaweight.signals.faers import ingest_faers
    from ketaweight.signals.faers_counts import counts_from_store
    from ketaweight.signals.synthetic import SyntheticQuarter, write_synthetic_quarter

    spec = SyntheticQuarter(n_reports=n_reports)
    zip_path, _ = write_synthetic_quarter(work, spec)
    ingest_faers([zip_path], work / "faers.duckdb")
    table, _ = counts_from_store(work / "faers.duckdb", drug_map=mapping.load_drug_map(),
                                 groups=mapping.load_term_groups())
    label = (f"synthetic FAERS-format reports (ketaweight generator, quarter {spec.quarter}, seed {spec.seed}; "
             f"not real reports)")
    return _scan_and_write(table, ["ketamine", "esketamine"], out, label, zip_path.name)


def mddc_signals(out: Path) -> ScanResult:
    """Scan the real FAERS-derived mddc table (sedatives) for weight loss, with the mirtazapine control."""
    import MDDC.datasets

    from ketaweight.signals.tables import from_contingency

    name, loader, period = MDDC_TABLE
    frame = getattr(MDDC.datasets, loader)()
    table = from_contingency(frame, groups=mapping.load_term_groups(), source=f"mddc {name}")
    label = f"real FAERS data, {period}, as tabulated in the mddc package's {name} table"
    return _scan_and_write(table, MDDC_DRUGS, out, label, f"mddc:{name}")


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path("demo-output"), "--out", "-o", help="Output folder (an earlier demo there is replaced)."),
    scenario: str = typer.Option("article", "--scenario", "-s", help="Simulator scenario (e.g. article, null)."),
    patients: int = typer.Option(20000, "--patients", "-n", min=500, help="Number of virtual patients."),
    seed: int = typer.Option(7, "--seed", help="Random seed: the same seed gives the same files and numbers."),
    faers_reports: int = typer.Option(SYNTHETIC_FAERS_REPORTS, "--faers-reports", min=5000,
                                      help="Reports in the synthetic FAERS quarter (a real quarter has about 400,000)."),
) -> None:
    """End to end: simulate a clinic, emulate both target trials, scan FAERS, grade the evidence, write the report."""
    started = time.monotonic()
    if (out / "store.duckdb").exists():
        shutil.rmtree(out)
    results = out / "results"
    console.rule("1/7 simulate a ketamine-clinic cohort (synthetic data)")
    result, store_path = run_cli(lambda: run_simulation(scenario, patients, seed, out, ExportFormat.duckdb, True))
    with Store(store_path, read_only=True) as store:
        print_store_summary(store)
    for i, study in enumerate(DEMO_STUDIES, start=2):
        console.rule(f"{i}/7 target-trial emulation: {study}")
        with console.status(f"running {study}"):
            res = run_cli(lambda: run_study(store_path, study, results))
        for rs in res.results.values():
            console.print(results_table(rs))
        if res.negative_control is not None:
            console.print(f"negative control: {res.negative_control.interpretation}")
    console.rule("4/7 mechanisms: mediation, dose-response, heterogeneity (ketamine-weight)")
    with console.status("fitting mediation, dose-response curves, subgroup and per-patient effects"):
        mech = run_cli(lambda: run_mechanisms(store_path, DEMO_STUDIES[0], results))
    console.print(mech.mediation.as_text(), highlight=False)
    console.rule("5/7 responsible use: adverse events and monitoring flags")
    with console.status("querying the store"):
        safety = run_cli(lambda: responsible_use(store_path))
        write_results(results / "responsible_use.json", "responsible_use", safety, data_source(store_path))
    for f in safety["flags"]:
        console.print(f"{f['flag']}: {f['count']} {f['unit']}", highlight=False)
    console.rule("6/7 signals from spontaneous reports (FAERS format)")
    with console.status(f"synthetic FAERS quarter ({faers_reports:,} reports): generate, ingest, scan"):
        syn = run_cli(lambda: synthetic_faers_signals(out / "faers", results / "signals-synthetic-faers.json",
                                                      faers_reports))
    console.print(syn.to_rich_table())
    with console.status(f"real FAERS table mddc {MDDC_TABLE[0]}: scan"):
        real = run_cli(lambda: mddc_signals(results / "signals-mddc.json"))
    console.print(real.to_rich_table())
    console.rule("7/7 evidence grade and report")
    with console.status("grading and writing the report"):
        paths = run_cli(lambda: write_report(results, out / "report.html"))
    console.rule("the simulator's ground truth (what a perfect analysis would find)")
    print_truth(result)
    console.print(f"\nReport: [bold]{paths.html}[/] (also {paths.markdown.name}, {paths.json.name})")
    console.print(f"Answer: [bold]{paths.sentence}[/]", highlight=False)
    console.print(f"All patient numbers come from simulated data. Demo took {time.monotonic() - started:.0f} s.")
