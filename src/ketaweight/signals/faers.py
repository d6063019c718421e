"""Ingest FDA FAERS quarters into ``faers_*`` tables of a DuckDB store, streaming.

``ingest_faers(["faers_ascii_2023q1.zip", ...], store="study.duckdb")`` reads every quarter (a zip
as FDA publishes it, the zip unzipped into a folder, or a folder of zips;
:mod:`~ketaweight.signals.faers_members`), parses each member in bounded chunks — repairing or
quarantining bad rows (:mod:`~ketaweight.signals.faers_parse`) — and appends each parsed block to
the store as it comes, so memory stays bounded however many quarters are given and no quarter is
ever held whole in Python objects.  Then it updates the deduplicated report list over *all*
quarters in the store (:mod:`~ketaweight.signals.faers_dedup`): a quarter added later is
deduplicated against the ones loaded before without re-reading them, and only the cases it touches
are deduplicated again, so its cost does not grow with the store.

The whole ingest runs in one DuckDB transaction: if anything fails — bad input, Ctrl-C, a full
disk, another process holding the store — nothing is written (a store file that did not exist
before is removed again) and the error is one line naming the file, line, column and reason.

Tables written (``quarter`` is ``'2023Q1'``): ``faers_demo``, ``faers_drug``, ``faers_reac``,
``faers_outc``, ``faers_rpsr``, ``faers_ther``, ``faers_indi`` (canonical FAERS columns; ids,
versions, sequence numbers and ``fda_dt`` as integers, everything else as text, plus
``line``), ``faers_deleted``, ``faers_quarantine``, ``faers_files`` (per-file accounting),
``faers_reports``, ``faers_dedup_cases`` and ``faers_dedup_log``; the counts kept for scans
(:mod:`~ketaweight.signals.faers_count_totals`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import duckdb
import pyarrow as pa

from ketaweight.core.attrition import AttritionStep
from ketaweight.core.errors import InputError, Location
from ketaweight.core.protocol import Result
from ketaweight.core.summary import Summary
from ketaweight.signals.faers_count_totals import COUNT_TABLES, update_totals
from ketaweight.signals.faers_dedup import DEDUP_TABLES, update_reports
from ketaweight.signals.faers_format import TABLES
from ketaweight.signals.faers_keys import KEY_TABLES, NAME_TABLES, add_quarter_keys, create_key_tables, has_keys
from ketaweight.signals.faers_members import QuarterFiles, ReadLimits, discover_quarter, expand_inputs, read_member
from ketaweight.signals.faers_parse import DeletedParser, FileAccount, Quarantined, TableParser
from ketaweight.signals.faers_store import ACCOUNT_TABLES, FAERS_TABLES, append, create_tables, open_store, store_errors

__all__ = ["IngestReport", "FileReport", "ingest_faers", "plan_ingest", "STORE_TABLES"]

STORE_TABLES = (*FAERS_TABLES, *ACCOUNT_TABLES, *KEY_TABLES, *NAME_TABLES, *DEDUP_TABLES, *COUNT_TABLES)


@dataclass(frozen=True)
class FileReport(Result):
    """Accounting for one file: ``records = loaded + quarantined``."""

    quarter: str
    member: str
    table: str
    data_lines: int
    records: int
    loaded: int
    quarantined: int
    encoding_repairs: int
    lines_joined: int
    records_split: int
    dollar_repairs: int
    notes: tuple[str, ...]


@dataclass
class IngestReport(Result):
    """What an ingest did (a ``kind = "faers_ingest"`` file): per-file accounting, the deduplication
    steps from DEMO rows to unique current reports, notes."""

    kind: ClassVar[str] = "faers_ingest"

    store: Path
    quarters: list[str] = field(default_factory=list)
    files: list[FileReport] = field(default_factory=list)
    dedup: list[AttritionStep] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reports: int = 0
    """Unique current reports after deduplication."""

    def summary(self) -> Summary:
        return AttritionStep.table(self.dedup, f"FAERS ingest into {self.store.name}: deduplication")


def plan_ingest(paths: Iterable[str | Path]) -> list[QuarterFiles]:
    """The quarters to load, each once: zips, unzipped quarter folders, folders of zips."""
    plan = [discover_quarter(p) for p in expand_inputs(list(paths))]
    if not plan:
        raise InputError([(Location("<command line>"), "no FAERS quarter given")])
    seen: dict[str, Path] = {}
    for q in plan:
        if q.quarter in seen:
            raise InputError([(Location(str(q.path)), f"quarter {q.quarter} given twice (also {seen[q.quarter]})")])
        seen[q.quarter] = q.path
    return plan


def _quarantine_block(quarter: str, member: str, rows: list[Quarantined]) -> pa.Table:
    return pa.table({"file": pa.array([member] * len(rows), pa.string()),
                     "line": pa.array([q.line for q in rows], pa.int64()),
                     "column_name": pa.array([q.column for q in rows], pa.string()),
                     "reason": pa.array([q.reason for q in rows], pa.string()),
                     "raw": pa.array([q.raw for q in rows], pa.string())})


def _file_row(q: QuarterFiles, member: str, table: str, acc: FileAccount) -> pa.Table:
    values = [q.path.name, member, table, acc.data_lines, acc.records, acc.loaded, acc.quarantined,
              acc.encoding_repairs, acc.lines_joined, acc.records_split, acc.dollar_repairs, "; ".join(acc.notes)]
    names = ["zip", "member", "table_name", "data_lines", "records", "loaded", "quarantined", "encoding_repairs",
             "lines_joined", "records_split", "dollar_repairs", "notes"]
    return pa.table({n: [v] for n, v in zip(names, values, strict=True)})


def _load_table(con: duckdb.DuckDBPyConnection, q: QuarterFiles, t: str, member: str, limits: ReadLimits,
                progress: Callable[[int], None] | None) -> FileAccount:
    spec = TABLES[t]
    parser = TableParser(spec, q.label(member))
    text = frozenset(c for c in spec.columns if c not in spec.integer)
    for block in parser.blocks(_counted(read_member(q, member, limits), progress)):
        append(con, f"faers_{t.lower()}", q.quarter, block.table.rename_columns([*spec.columns, "line"]), text)
        if block.quarantined:
            append(con, "faers_quarantine", q.quarter, _quarantine_block(q.quarter, member, block.quarantined))
    return parser.account


def _load_deleted(con: duckdb.DuckDBPyConnection, q: QuarterFiles, member: str, limits: ReadLimits,
                  progress: Callable[[int], None] | None) -> FileAccount:
    parser = DeletedParser(q.label(member))
    for ids, bad in parser.blocks(_counted(read_member(q, member, limits), progress)):
        append(con, "faers_deleted", q.quarter, pa.table({"caseid": pa.array(ids, pa.int64())}))
        if bad:
            append(con, "faers_quarantine", q.quarter, _quarantine_block(q.quarter, member, bad))
    return FileAccount(data_lines=parser.read, records=parser.read, loaded=parser.loaded,
                       quarantined=parser.quarantined)


def _counted(chunks: Iterable[bytes], progress: Callable[[int], None] | None) -> Iterable[bytes]:
    for chunk in chunks:
        yield chunk
        if progress:
            progress(len(chunk))


def ingest_faers(
    zips: Iterable[str | Path],
    store: str | Path,
    *,
    replace: bool = False,
    progress: Callable[[int], None] | None = None,
    on_plan: Callable[[int], None] | None = None,
    memory_limit: str = "1GB",
    threads: int = 2,
    limits: ReadLimits = ReadLimits(),
) -> IngestReport:
    """Load FAERS quarters into ``store`` (a DuckDB file) in one streaming pass; the store changes in one
    transaction.

    Each quarter is parsed in chunks and committed in its own transaction (so memory is bounded by
    one quarter: a DuckDB transaction keeps part of every row appended from Python in memory until it
    commits) — into ``STORE.new`` when the store does not exist yet (linked into place when done), else
    into a staging file ``STORE.staging`` that is then copied into the store, keyed and deduplicated in
    one transaction.  Disk needed beside an existing store: about the new quarters' size while it runs.

    Parameters
    ----------
    zips
        ``faers_ascii_YYYYqN.zip`` files, unzipped quarter folders, or folders of such zips.
    store
        The DuckDB file (created if missing; other tables in it are not touched).
    replace
        Replace quarters already in the store (otherwise loading one again is an error).
    progress
        Called with the number of uncompressed bytes read, for a progress bar; ``on_plan`` is
        called first with the total (bytes, as the zips state them).
    memory_limit, threads
        DuckDB's memory limit (e.g. ``"1GB"``) and threads for the load.
    limits
        How large a member may expand (bytes and ratio); see :class:`ReadLimits`.
    """
    plan = plan_ingest(zips)
    if on_plan:
        on_plan(sum(q.size(m) for q in plan for m in (*q.members.values(), *q.deleted)))
    store = Path(store)
    new = not store.exists()
    # a new store is built under a temporary name and linked into place at the end; an existing one gets
    # the new quarters through a staging file attached beside it
    work = Path(str(store) + (".new" if new else ".staging"))
    report = IngestReport(store=store, quarters=[q.quarter for q in plan])
    if new:
        _remove(work)  # left by an ingest that was killed
    con: duckdb.DuckDBPyConnection | None = None
    attached = False
    main = ""
    try:
        # opened inside the try: a Ctrl-C while DuckDB creates a new store's file still removes that file
        con = open_store(work if new else store, read_only=False, memory_limit=memory_limit, threads=threads)
        with store_errors(store, doing="load the FAERS quarters (nothing was loaded; the store's contents are as "
                                       "before)"):
            main = con.execute("SELECT current_database()").fetchall()[0][0]
            loaded = _quarters_in(con)
            for q in plan:
                if q.quarter in loaded and not replace:
                    raise InputError([(Location(str(q.path)), f"quarter {q.quarter} is already in {store}; "
                                       "pass --replace to load it again")])
            if not new:
                _remove(work)  # left by an ingest that was killed (we hold the store's lock: nobody else uses it)
                con.execute("ATTACH ? AS kw_stage", [str(work)])
                attached = True
                con.execute("USE kw_stage")
            create_tables(con)
            for q in plan:  # one transaction per quarter: memory bounded by one quarter
                con.begin()
                report.notes.extend(f"{q.quarter}: {n}" for n in q.notes)
                for t, member in q.members.items():
                    _record_file(con, report, q, member, t, _load_table(con, q, t, member, limits, progress))
                for member in q.deleted:
                    _record_file(con, report, q, member, "DELETED", _load_deleted(con, q, member, limits, progress))
                con.commit()
            con.execute(f"USE {_ident(main)}")
            con.begin()  # an existing store changes in this one transaction only: all or nothing
            backfill = not new and not has_keys(con)  # a store written before the key tables existed
            create_tables(con)
            create_key_tables(con)
            if backfill:
                for old in sorted(loaded):
                    add_quarter_keys(con, old)
            if attached:
                for q in plan:
                    if q.quarter in loaded:
                        for t in (*FAERS_TABLES, *ACCOUNT_TABLES, *KEY_TABLES):
                            con.execute(f"DELETE FROM {t} WHERE quarter = ?", [q.quarter])
                        report.notes.append(f"{q.quarter}: replaced the rows loaded before")
                for t in (*FAERS_TABLES, *ACCOUNT_TABLES):
                    con.execute(f"INSERT INTO {t} SELECT * FROM kw_stage.{t}")
            for q in plan:
                add_quarter_keys(con, q.quarter)
            # only the cases the new quarters touch are deduplicated again; a replaced quarter (its old rows
            # gone) or a new store is deduplicated whole
            replaced = any(q.quarter in loaded for q in plan)
            report.dedup = update_reports(con, None if new or replaced else [q.quarter for q in plan])
            report.reports = int(report.dedup[-1].n_after)
            update_totals(con)
            con.commit()
            if attached:
                con.execute("DETACH kw_stage")
                attached = False
            con.close()
            if new:
                _publish_new(work, store)
    except BaseException:
        if con is not None:
            try:
                con.rollback()
            except duckdb.Error:
                pass
        raise
    finally:
        if con is not None:
            try:
                if attached:
                    con.execute(f"USE {_ident(main)}")
                    con.execute("DETACH kw_stage")
            except duckdb.Error:
                pass
            con.close()
        if con is not None or new:  # an existing store's staging file is ours only once we hold its lock
            _remove(work)  # a new store is only ever linked into place complete, so nothing else to undo
    return report


def _publish_new(work: Path, store: Path) -> None:
    """Put a finished new store in place without overwriting a file that appeared meanwhile."""
    try:
        os.link(work, store)
    except FileExistsError as exc:
        raise InputError([(Location(str(store)), "another process created this store during the ingest; "
                           "nothing was loaded into it")]) from exc
    if os.path.exists(str(work) + ".wal"):  # DuckDB checkpoints on close; a WAL left over goes along
        os.link(str(work) + ".wal", str(store) + ".wal")


def _quarters_in(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The quarters the connection's current database already holds."""
    names = {t for (t,) in con.execute("SELECT table_name FROM information_schema.tables "
                                       "WHERE table_catalog = current_database()").fetchall()}
    if "faers_files" not in names:
        return set()
    return {q for (q,) in con.execute("SELECT DISTINCT quarter FROM faers_files").fetchall()}


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _remove(path: Path) -> None:
    """A work file of ours, its WAL and DuckDB's spill folder beside it (left if a run was killed)."""
    for suffix in ("", ".wal"):
        try:
            os.remove(str(path) + suffix)
        except FileNotFoundError:
            pass
    shutil.rmtree(str(path) + ".tmp", ignore_errors=True)


def _record_file(con: duckdb.DuckDBPyConnection, report: IngestReport, q: QuarterFiles, member: str, table: str,
                 acc: FileAccount) -> None:
    report.files.append(FileReport(q.quarter, member, table, acc.data_lines, acc.records, acc.loaded, acc.quarantined,
                                   acc.encoding_repairs, acc.lines_joined, acc.records_split, acc.dollar_repairs,
                                   tuple(acc.notes)))
    append(con, "faers_files", q.quarter, _file_row(q, member, table, acc))
