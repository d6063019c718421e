"""Import real records into a store (OMOP CDM, FHIR R4) and export a store in those formats.

The source is read completely, and its rows shaped and counted, before the store is opened; the shaped
canonical tables wait as Parquet files in a temporary folder beside the store (removed afterwards, whatever
happens), which the store scans in batches: memory stays bounded however large the source.  The store's
load is all-or-nothing, so a failed import leaves the store as it was (a new store file is not even created).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from ketaweight.core.errors import InputError, Location
from ketaweight.core.provenance import Provenance
from ketaweight.core.spark import DEFAULT_MASTER
from ketaweight.sources.fhir import read_fhir, write_fhir
from ketaweight.sources.fhir.reader import Validation
from ketaweight.sources.import_report import ImportReport
from ketaweight.sources.omop import load_mapping, open_cdm, read_omop, write_omop
from ketaweight.sources.omop.cdm import CdmConnection
from ketaweight.store import LoadReport, Store

ExportFormat = Literal["omop", "fhir"]


@dataclass(frozen=True)
class ImportResult:
    """The import report, what the store loaded, and the provenance recorded with the load."""

    report: ImportReport
    load: LoadReport
    provenance: Provenance
    store: Path


@contextmanager
def _staging_folder(store: Path) -> Iterator[Path]:
    """A temporary folder beside the store (same disk, which has room for the store anyway) for the
    shaped tables; removed on leaving, also after an error or Ctrl-C."""
    parent = store.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{store.name}.import-", dir=parent) as folder:
        yield Path(folder)


def _load(store_path: Path, tables: dict, provenance: Provenance, label: str, report: ImportReport,
          report_path: Path | None, exact_counts: bool) -> ImportResult:
    with Store(store_path) as store:
        load = store.load_frames(tables, label=label, provenance=provenance)
    if report_path is not None:
        report.write(report_path, exact=exact_counts)
    return ImportResult(report, load, provenance, store_path)


def import_omop(store: str | Path, source: str | Path, *, cdm_schema: str | None = None,
                vocabulary_schema: str | None = None, mapping_file: str | Path | None = None,
                all_persons: bool = False, report_path: str | Path | None = None,
                exact_counts: bool = False, on_stage: Callable[[str], None] | None = None,
                engine: str = "duckdb", spark_master: str | None = None) -> ImportResult:
    """Read the CDM at ``source`` (DuckDB file, CSV folder or ``postgresql://`` URL; with ``engine="spark"``
    a folder of CDM Parquet tables or ``catalog:SCHEMA``, selected on Spark at ``spark_master``) into ``store``.

    ``all_persons`` imports every person instead of the mapping's population; ``report_path`` writes the
    import report as JSON (counts under 11 masked unless ``exact_counts``: the data owner's receipt)."""
    mapping = load_mapping(mapping_file)
    if all_persons:
        mapping = replace(mapping, population=())
    if engine == "spark":
        from ketaweight.sources.omop.spark_cdm import open_spark_cdm  # Spark users only: it starts a JVM

        if cdm_schema is not None:
            raise InputError([(Location(str(source)), "with --engine spark the CDM schema is the source: catalog:SCHEMA")])
        cdm: CdmConnection = open_spark_cdm(source, spark_master or DEFAULT_MASTER, vocabulary_schema=vocabulary_schema)
    else:
        cdm = open_cdm(source, cdm_schema=cdm_schema, vocabulary_schema=vocabulary_schema)
    with _staging_folder(Path(store)) as folder:
        try:
            if on_stage:
                on_stage(f"reading the CDM at {cdm.label}")
            result = read_omop(cdm, mapping, folder)
        finally:
            cdm.close()
        if on_stage:
            on_stage("loading the store")
        return _load(Path(store), result.tables, result.provenance, f"OMOP CDM {cdm.label}", result.report,
                     Path(report_path) if report_path else None, exact_counts)


def import_fhir(store: str | Path, source: str | Path, *, mapping_file: str | Path | None = None, validate: Validation = "read",
                report_path: str | Path | None = None, exact_counts: bool = False,
                on_stage: Callable[[str], None] | None = None) -> ImportResult:
    """Read FHIR R4 NDJSON files / Bundles at ``source`` into ``store``; ``validate`` is ``read`` (every element
    read, against its R4 type), ``full`` (fhir.resources' complete R4B models) or ``none``."""
    if validate not in ("read", "full", "none"):
        raise ValueError(f"--validate must be read, full or none, got {validate!r}")
    mapping = load_mapping(mapping_file)
    if on_stage:
        on_stage(f"reading FHIR resources at {source}")
    with _staging_folder(Path(store)) as folder:
        result = read_fhir(source, mapping, folder, validate=validate)
        if on_stage:
            on_stage("loading the store")
        return _load(Path(store), result.tables, result.provenance, f"FHIR {source}", result.report,
                     Path(report_path) if report_path else None, exact_counts)


def export_store(store: str | Path, out: str | Path, fmt: ExportFormat, *, layout: str | None = None,
                 mapping_file: str | Path | None = None) -> dict[str, Path]:
    """Write the store's canonical tables as an OMOP CDM 5.4 (``layout`` csv | duckdb) or FHIR R4
    (``layout`` ndjson | bundle) under ``out``, with the data's provenance."""
    layouts = {"omop": ("csv", "duckdb"), "fhir": ("ndjson", "bundle")}
    if fmt not in layouts:
        raise ValueError(f"export format must be 'omop' or 'fhir', got {fmt!r}")
    if layout is not None and layout not in layouts[fmt]:
        raise ValueError(f"--layout for {fmt} must be {' or '.join(layouts[fmt])}, got {layout!r}")
    mapping = load_mapping(mapping_file)
    with Store(store, read_only=True) as st:
        if fmt == "omop":
            return write_omop(st.con, Path(out), st.provenance(), layout=(layout or "csv"), mapping=mapping)  # type: ignore[arg-type]
        return write_fhir(st.con, Path(out), st.provenance(), layout=(layout or "ndjson"), mapping=mapping)  # type: ignore[arg-type]
