"""Signals as the CLI and the demo run them: score drug–event pairs from a FAERS store, a
contingency table or a long table, and write ``kind = "signals"`` results files; the demo's two
scans (a synthetic FAERS-format quarter and the real FAERS-derived ``mddc`` table)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ketaweight.core.errors import InputError, Location
from ketaweight.core.provenance import Provenance
from ketaweight.core.results import write_result
from ketaweight.core.vocabulary import SYNTHETIC_FAERS_REPORTS
from ketaweight.signals import mapping
from ketaweight.signals.faers import IngestReport, ingest_faers
from ketaweight.signals.faers_counts import counts_from_store
from ketaweight.signals.counting import read_long_table
from ketaweight.signals.mgps import GammaMixturePrior
from ketaweight.signals.scan import ScanResult, all_pairs_parts, scan
from ketaweight.signals.synthetic import SyntheticQuarter, write_synthetic_quarter
from ketaweight.signals.tables import CountTable, from_contingency, read_contingency_csv

MDDC_TABLE = ("sedative1000", "load_sedative1000_data", "2021Q1–2023Q4")
"""The real FAERS-derived table used: mddc name, loader, FAERS period (from the mddc documentation)."""
MDDC_DRUGS = ["midazolam", "dexmedetomidine", "diazepam", "lorazepam"]
"""Sedatives and anaesthetics in the mddc table scored for weight loss (ketamine itself is not in any mddc table)."""


def write_signals(path: Path, result: ScanResult, table: CountTable, provenance: Provenance, *, data: str,
                  drugs: Sequence[str], events: Sequence[str], exact_counts: bool = False) -> Path:
    """A ``kind = "signals"`` results file for one scan."""
    return write_result(path, result.report(exact_counts=exact_counts), provenance, exact_counts=exact_counts,
                        data=data, spec={"drugs": list(drugs), "events": list(events)}, seed=None)


def write_ingest(path: Path, report: IngestReport, zips: Sequence[Path], store: Path) -> Path:
    """The ingest accounting of ``signals ingest --json`` (``kind = "faers_ingest"``)."""
    return write_result(path, report, {"data": [str(z) for z in zips], "store": str(store)}, exact_counts=True)


def scan_source(*, store: Path | None = None, table: Path | None = None, long: Path | None = None,
                drugs: Sequence[str], events: Sequence[str], roles: Sequence[str] = ("PS", "SS", "C", "I"),
                stratify: Sequence[str] = (), drug_map: Sequence[Path] = (), groups: Sequence[Path] = (),
                controls: Sequence[Path] = (), no_controls: bool = False, prior: Sequence[float] | None = None,
                **scan_options: Any) -> tuple[CountTable, ScanResult]:
    """Count and score ``drugs`` × ``events`` from exactly one of a FAERS store, an mddc-format
    contingency CSV or a long table; ``scan_options`` go to :func:`ketaweight.signals.scan.scan`."""
    sources = [s for s in (store, table, long) if s is not None]
    if len(sources) != 1:
        raise InputError([(Location("command line"), "give exactly one of --store, --table or --long")])
    grp = mapping.load_term_groups(list(groups))
    ctl = [] if no_controls else mapping.load_controls(list(controls))
    if no_controls and controls:
        ctl = mapping.load_controls(list(controls), include_default=False)
    given = None
    if prior is not None:
        given = GammaMixturePrior.from_array(list(prior))
        given.validate()
    dmap = mapping.load_drug_map(list(drug_map))  # every source's names and the requested ones go through it
    if store is not None:
        ct = counts_from_store(store, drug_map=dmap, groups=grp, roles=list(roles), stratify=list(stratify))
    elif table is not None:
        ct = read_contingency_csv(table, groups=grp, drug_map=dmap)
    else:
        ct = read_long_table(long, groups=grp, drug_map=dmap)
    return ct, scan(ct, drugs=list(drugs), events=list(events), groups=grp, controls=ctl, prior=given,
                    **scan_options)


def write_all_pairs(path: Path, table: CountTable, result: ScanResult, *, exact_counts: bool = False) -> int:
    """Every drug–event pair of ``table`` scored with the scan's prior, as a Parquet file (one row per
    pair; suppressed pairs' counts and ratios null unless ``exact_counts``).  Returns the rows written.
    Scored and written part by part (one Parquet row group each), so memory does not grow with the
    number of pairs; written to a temporary name and renamed, so an interrupted run leaves no partial file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fit = result.prior_fit
    parts = all_pairs_parts(table, result.prior, converged=fit.converged if fit else True,
                            boundary=fit.boundary if fit else False, ci_level=float(result.settings["ci_level"]),
                            haldane=bool(result.settings["haldane_correction"]), exact_counts=exact_counts)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    rows, writer = 0, None
    try:
        for frame in parts:
            part = pa.Table.from_pandas(frame, preserve_index=False)
            writer = writer or pq.ParquetWriter(tmp, part.schema, compression="zstd")
            writer.write_table(part, row_group_size=len(frame) or None)
            rows += len(frame)
        writer.close()
        tmp.replace(path)
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
    return rows


def _scan_and_write(table: CountTable, drugs: list[str], out: Path, provenance: Provenance, data: str) -> ScanResult:
    """Score ``drugs`` × weight loss with the shipped controls that the table can show; write ``out``."""
    groups = mapping.load_term_groups()
    controls = [c for c in mapping.load_controls() if c.drug in table.drug_reports]
    res = scan(table, drugs=drugs, events=["weight-loss"], groups=groups, controls=controls)
    write_signals(out, res, table, provenance, data=data, drugs=drugs, events=["weight-loss"])
    return res


def synthetic_faers_signals(work: Path, out: Path, n_reports: int = SYNTHETIC_FAERS_REPORTS) -> ScanResult:
    """Generate a synthetic FAERS quarter (real format, known truth) of ``n_reports``, ingest it, scan it."""
    spec = SyntheticQuarter(n_reports=n_reports)
    zip_path, _ = write_synthetic_quarter(work, spec)
    ingest_faers([zip_path], work / "faers.duckdb")
    table = counts_from_store(work / "faers.duckdb", drug_map=mapping.load_drug_map(),
                                 groups=mapping.load_term_groups())
    provenance = Provenance("synthetic", f"ketaweight FAERS-format generator, quarter {spec.quarter}, seed {spec.seed}")
    return _scan_and_write(table, ["ketamine", "esketamine"], out, provenance, zip_path.name)


def mddc_signals(out: Path) -> ScanResult:
    """Scan the real FAERS-derived mddc table (sedatives) for weight loss, with the mirtazapine control."""
    import MDDC.datasets  # heavy (loads every shipped table); only this scan needs it

    name, loader, period = MDDC_TABLE
    frame = getattr(MDDC.datasets, loader)()
    table = from_contingency(frame, groups=mapping.load_term_groups(), source=f"mddc {name}")
    provenance = Provenance("real", f"FAERS data as tabulated in the mddc package's {name} table", period)
    return _scan_and_write(table, MDDC_DRUGS, out, provenance, f"mddc:{name}")
