"""Ingest FDA FAERS quarterly ASCII zips into ``faers_*`` tables of a DuckDB store.

``ingest_faers(["faers_ascii_2023q1.zip", ...], store="study.duckdb")`` reads every zip
(file- and folder-name variants, the deleted-cases list), repairs or quarantines bad rows
(:mod:`ketaweight.signals.faers_parse`), loads the tables, and rebuilds the deduplicated
report list ``faers_reports`` over *all* quarters in the store:

1. a ``primaryid`` present in more than one quarter is kept once (the latest quarter);
2. cases on any deleted-cases list are dropped;
3. per ``caseid`` only the latest ``caseversion`` is kept (ties: latest ``fda_dt``, then
   highest ``primaryid``).

Each step's removed-row count is stored in ``faers_dedup_log``.  The whole ingest runs in
one DuckDB transaction: if anything fails, nothing is written (a store file that did not
exist before is removed again).

Tables written (``quarter`` is ``'2023Q1'``): ``faers_demo``, ``faers_drug``, ``faers_reac``,
``faers_outc``, ``faers_rpsr``, ``faers_ther``, ``faers_indi`` (canonical FAERS columns; ids,
versions, sequence numbers and ``fda_dt`` as integers, everything else as text, plus
``line``), ``faers_deleted``, ``faers_quarantine``, ``faers_files`` (per-file accounting),
``faers_reports`` and ``faers_dedup_log``.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar
from pathlib import Path, PurePosixPath

import duckdb
import pyarrow as pa

from ketaweight.core.attrition import AttritionStep
from ketaweight.core.errors import InputError, Location
from ketaweight.core.protocol import Result
from ketaweight.core.summary import Summary
from ketaweight.signals.faers_format import MEMBER_RE, REQUIRED_TABLES, TABLES, ZIP_RE
from ketaweight.signals.faers_parse import ParsedFile, parse_deleted_bytes, parse_table_bytes

__all__ = ["QuarterZip", "IngestReport", "FileReport", "discover_zip", "ingest_faers", "STORE_TABLES"]

STORE_TABLES = ("faers_demo", "faers_drug", "faers_reac", "faers_outc", "faers_rpsr", "faers_ther", "faers_indi",
                "faers_deleted", "faers_quarantine", "faers_files", "faers_reports", "faers_dedup_log")


@dataclass(frozen=True)
class QuarterZip:
    """What a quarterly zip holds: its quarter and the member chosen for each table."""

    path: Path
    quarter: str
    members: dict[str, str]
    deleted: tuple[str, ...]
    ignored: tuple[str, ...]
    notes: tuple[str, ...]


def discover_zip(path: str | Path) -> QuarterZip:
    """Identify the quarter and the table files in a FAERS ASCII zip.

    Accepts ``ascii/`` or ``ASCII/`` folders (or none), upper/lower-case file names and the
    ``_new`` re-issues (preferred over the original when both exist)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    try:
        zf = zipfile.ZipFile(p)
    except zipfile.BadZipFile as exc:
        raise InputError([(Location(str(p)), f"not a zip file ({exc})")]) from exc
    with zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
    found: dict[str, list[tuple[str, str, bool]]] = {}
    deleted, ignored, notes = [], [], []
    for n in names:
        base = PurePosixPath(n).name
        parts = [x.lower() for x in PurePosixPath(n).parts[:-1]]
        if any("delete" in x for x in parts) or base.lower().startswith("delete"):
            if base.lower().endswith(".txt"):
                deleted.append(n)
            continue
        m = MEMBER_RE.match(base)
        if not m:
            ignored.append(n)
            continue
        qtag = f"20{m.group('yy')}Q{m.group('q')}"
        found.setdefault(m.group("table").upper(), []).append((n, qtag, bool(m.group("new"))))
    zq = ZIP_RE.search(p.name)
    quarter = f"{zq.group('yyyy')}Q{zq.group('q')}" if zq else None
    qtags = {q for v in found.values() for _, q, _ in v}
    if quarter is None:
        if len(qtags) != 1:
            raise InputError([(Location(str(p)), "cannot tell the quarter: the zip name has no YYYYqN and the "
                               f"table files name {sorted(qtags) or 'no quarter'}")])
        quarter = qtags.pop()
    elif qtags and qtags != {quarter}:
        notes.append(f"table files are named for {', '.join(sorted(qtags))} but the zip is {quarter}; using {quarter}")
    members = {}
    for t, lst in found.items():
        lst = sorted(lst, key=lambda x: (x[2], x[0]))  # _new last
        members[t] = lst[-1][0]
        if len(lst) > 1:
            notes.append(f"{t}: using {lst[-1][0]} (also present: {', '.join(x[0] for x in lst[:-1])})")
    missing = [t for t in REQUIRED_TABLES if t not in members]
    if missing:
        raise InputError([(Location(str(p)), f"no {', '.join(missing)} file found (expected names like "
                           f"ascii/{missing[0]}{quarter[2:4]}Q{quarter[-1]}.txt); the zip holds: "
                           f"{', '.join(names[:12]) or 'nothing'}")])
    for t in TABLES:
        if t not in members:
            notes.append(f"no {t} file in this zip")
    return QuarterZip(path=p, quarter=quarter, members=members, deleted=tuple(deleted), ignored=tuple(ignored),
                      notes=tuple(notes))


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


def _ddl() -> list[str]:
    stmts = []
    for t, spec in TABLES.items():
        cols = ["quarter VARCHAR"]
        for c in spec.columns:
            cols.append(f"{c} {'BIGINT' if c in spec.integer else 'VARCHAR'}")
        cols.append("line BIGINT")
        stmts.append(f"CREATE TABLE IF NOT EXISTS faers_{t.lower()} ({', '.join(cols)})")
    stmts += [
        "CREATE TABLE IF NOT EXISTS faers_deleted (quarter VARCHAR, caseid BIGINT)",
        "CREATE TABLE IF NOT EXISTS faers_quarantine (quarter VARCHAR, file VARCHAR, line BIGINT, "
        "column_name VARCHAR, reason VARCHAR, raw VARCHAR)",
        "CREATE TABLE IF NOT EXISTS faers_files (quarter VARCHAR, zip VARCHAR, member VARCHAR, table_name VARCHAR, "
        "data_lines BIGINT, records BIGINT, loaded BIGINT, quarantined BIGINT, encoding_repairs BIGINT, "
        "lines_joined BIGINT, records_split BIGINT, dollar_repairs BIGINT, notes VARCHAR)",
    ]
    return stmts


def _insert_table(con: duckdb.DuckDBPyConnection, table: str, quarter: str, pt: pa.Table, spec) -> None:
    con.register("_kw_faers_in", pt)
    sel = [f"'{quarter}'"]
    for c in spec.columns:
        if c in spec.integer:
            sel.append(f"TRY_CAST(NULLIF(trim({c}), '') AS BIGINT)")
        else:
            sel.append(f"NULLIF({c}, '')")
    sel.append("_line")
    con.execute(f"INSERT INTO {table} SELECT {', '.join(sel)} FROM _kw_faers_in")
    con.unregister("_kw_faers_in")


_AGE_YEARS = """CASE upper(d.age_cod)
    WHEN 'YR' THEN 1.0 WHEN 'DEC' THEN 10.0 WHEN 'MON' THEN 1.0/12 WHEN 'WK' THEN 7.0/365.25
    WHEN 'DY' THEN 1.0/365.25 WHEN 'HR' THEN 1.0/8766 ELSE NULL END * TRY_CAST(d.age AS DOUBLE)"""


def _rebuild_reports(con: duckdb.DuckDBPyConnection) -> list[dict]:
    con.execute("DROP TABLE IF EXISTS faers_reports")
    con.execute("DROP TABLE IF EXISTS faers_dedup_log")
    n0 = con.execute("SELECT count(*) FROM faers_demo").fetchall()[0][0]
    con.execute("""CREATE TEMP TABLE _kw_step1 AS
        SELECT * EXCLUDE (rn) FROM (
          SELECT *, row_number() OVER (PARTITION BY primaryid ORDER BY quarter DESC, line DESC) AS rn
          FROM faers_demo) WHERE rn = 1""")
    n1 = con.execute("SELECT count(*) FROM _kw_step1").fetchall()[0][0]
    con.execute("""CREATE TEMP TABLE _kw_step2 AS SELECT * FROM _kw_step1
        WHERE caseid NOT IN (SELECT caseid FROM faers_deleted WHERE caseid IS NOT NULL)""")
    n2 = con.execute("SELECT count(*) FROM _kw_step2").fetchall()[0][0]
    con.execute(f"""CREATE TABLE faers_reports AS
        SELECT d.primaryid, d.caseid, d.caseversion, d.fda_dt, d.quarter, upper(d.sex) AS sex,
               {_AGE_YEARS} AS age_years, d.age_grp,
               TRY_CAST(substr(CAST(d.fda_dt AS VARCHAR), 1, 4) AS INTEGER) AS fda_year,
               d.occr_country, d.reporter_country
        FROM (SELECT *, row_number() OVER (PARTITION BY caseid
                  ORDER BY caseversion DESC, fda_dt DESC NULLS LAST, primaryid DESC) AS rn
              FROM _kw_step2) AS d
        WHERE rn = 1""")
    n3 = con.execute("SELECT count(*) FROM faers_reports").fetchall()[0][0]
    con.execute("DROP TABLE _kw_step1")
    con.execute("DROP TABLE _kw_step2")
    log = [
        AttritionStep.between("DEMO rows", "DEMO rows in the store", n0, n0),
        AttritionStep.between("one quarter per primaryid", "same primaryid in more than one quarter: keep the latest "
                              "quarter", n0, n1),
        AttritionStep.between("deleted cases", "drop cases on a deleted-cases list", n1, n2),
        AttritionStep.between("latest case version", "keep the latest caseversion per caseid (ties: latest fda_dt, "
                              "then highest primaryid)", n2, n3),
    ]
    # storage keeps its column names (rows_before, removed, rows_after) so stores ingested earlier still read
    con.execute("CREATE TABLE faers_dedup_log (step_no INTEGER, step VARCHAR, rows_before BIGINT, removed BIGINT, "
                "rows_after BIGINT)")
    con.executemany("INSERT INTO faers_dedup_log VALUES (?, ?, ?, ?, ?)",
                    [(i, s.reason, s.n_before, s.n_excluded, s.n_after) for i, s in enumerate(log)])
    return log


def _members_total(zips: Sequence[QuarterZip]) -> int:
    return sum(len(z.members) + len(z.deleted) for z in zips)


def ingest_faers(
    zips: Iterable[str | Path],
    store: str | Path,
    *,
    replace: bool = False,
    progress: Callable[[int], None] | None = None,
    on_plan: Callable[[int], None] | None = None,
    memory_limit: str = "1GB",
    threads: int = 2,
) -> IngestReport:
    """Load FAERS quarterly zips into ``store`` (a DuckDB file) in one transaction.

    Parameters
    ----------
    zips
        Paths of ``faers_ascii_YYYYqN.zip`` files (several quarters at once).
    store
        The DuckDB file (created if missing; other tables in it are not touched).
    replace
        Replace quarters already in the store (otherwise loading one again is an error).
    progress
        Called with the number of files finished, for a progress bar; ``on_plan`` is
        called first with the total number of files.
    """
    plan = [discover_zip(z) for z in zips]
    if not plan:
        raise InputError([(Location("<command line>"), "no FAERS zip given")])
    seen: dict[str, Path] = {}
    for z in plan:
        if z.quarter in seen:
            raise InputError([(Location(str(z.path)), f"quarter {z.quarter} given twice (also {seen[z.quarter]})")])
        seen[z.quarter] = z.path
    if on_plan:
        on_plan(_members_total(plan))
    store = Path(store)
    existed = store.exists()
    report = IngestReport(store=store, quarters=[z.quarter for z in plan])
    try:
        con = duckdb.connect(str(store))
    except duckdb.Error as exc:
        raise InputError([(Location(str(store)), f"cannot open the store ({exc}); is another process using it?")]) from exc
    ok = False
    try:
        con.execute(f"SET memory_limit = '{memory_limit}'")
        con.execute(f"SET threads = {int(threads)}")
        con.execute("SET preserve_insertion_order = false")
        con.begin()
        for stmt in _ddl():
            con.execute(stmt)
        for z in plan:
            present = con.execute("SELECT count(*) FROM faers_files WHERE quarter = ?", [z.quarter]).fetchall()[0][0]
            if present:
                if not replace:
                    raise InputError([(Location(str(z.path)), f"quarter {z.quarter} is already in {store}; "
                                       "pass --replace to load it again")])
                for t in [f"faers_{k.lower()}" for k in TABLES] + ["faers_deleted", "faers_quarantine", "faers_files"]:
                    con.execute(f"DELETE FROM {t} WHERE quarter = ?", [z.quarter])
                report.notes.append(f"{z.quarter}: replaced the rows loaded before")
            report.notes.extend(f"{z.quarter}: {n}" for n in z.notes)
            with zipfile.ZipFile(z.path) as zf:
                for t, member in z.members.items():
                    label = f"{z.path.name}:{member}"
                    try:
                        data = zf.read(member)
                    except (zipfile.BadZipFile, OSError, EOFError) as exc:
                        raise InputError([(Location(label), f"cannot read from the zip ({exc})")]) from exc
                    pf: ParsedFile = parse_table_bytes(data, TABLES[t], label)
                    del data
                    _insert_table(con, f"faers_{t.lower()}", z.quarter, pf.table, TABLES[t])
                    if pf.quarantined:
                        con.executemany(
                            "INSERT INTO faers_quarantine VALUES (?, ?, ?, ?, ?, ?)",
                            [(z.quarter, member, q.line, q.column, q.reason, q.raw) for q in pf.quarantined])
                    fr = FileReport(quarter=z.quarter, member=member, table=t, data_lines=pf.data_lines,
                                    records=pf.records, loaded=pf.loaded, quarantined=len(pf.quarantined),
                                    encoding_repairs=pf.encoding_repairs, lines_joined=pf.lines_joined,
                                    records_split=pf.records_split, dollar_repairs=pf.dollar_repairs,
                                    notes=tuple(pf.notes))
                    report.files.append(fr)
                    con.execute("INSERT INTO faers_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                [z.quarter, z.path.name, member, t, fr.data_lines, fr.records, fr.loaded,
                                 fr.quarantined, fr.encoding_repairs, fr.lines_joined, fr.records_split,
                                 fr.dollar_repairs, "; ".join(fr.notes)])
                    del pf
                    if progress:
                        progress(1)
                for member in z.deleted:
                    ids, bad, read = parse_deleted_bytes(zf.read(member), f"{z.path.name}:{member}")
                    con.executemany("INSERT INTO faers_deleted VALUES (?, ?)", [(z.quarter, i) for i in ids])
                    if bad:
                        con.executemany("INSERT INTO faers_quarantine VALUES (?, ?, ?, ?, ?, ?)",
                                        [(z.quarter, member, q.line, q.column, q.reason, q.raw) for q in bad])
                    report.files.append(FileReport(z.quarter, member, "DELETED", read, read, len(ids), len(bad),
                                                   0, 0, 0, 0, ()))
                    con.execute("INSERT INTO faers_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                [z.quarter, z.path.name, member, "DELETED", read, read, len(ids), len(bad),
                                 0, 0, 0, 0, ""])
                    if progress:
                        progress(1)
        report.dedup = _rebuild_reports(con)
        report.reports = int(report.dedup[-1].n_after)
        con.commit()
        ok = True
    except BaseException:
        try:
            con.rollback()
        except duckdb.Error:
            pass
        raise
    finally:
        con.close()
        if not ok and not existed:
            for suffix in ("", ".wal"):
                try:
                    os.remove(str(store) + suffix)
                except FileNotFoundError:
                    pass
    return report
