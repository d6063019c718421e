"""Counts in unique reports from report-level rows, in DuckDB SQL: the FAERS store and long tables.

``from_relations(con, parts, drug_names=…, event_names=…)`` takes, per :class:`Part` (a set of
reports disjoint from the others — a FAERS quarter after deduplication), DuckDB relations
``drugs(rid, nid)`` and ``events(rid, tid)`` of integer name ids and optionally ``strata(rid, s)``,
and the name dictionaries.  The *distinct* names are mapped in Python — drug names through the
drug key (brand and salt names → ingredient, see :func:`~ketaweight.signals.tables.drug_key_function`),
event terms through
:func:`~ketaweight.signals.mapping.clean_term`, terms into term groups — and numbered; every count
over rows then runs in SQL on those integer codes: distinct (report, drug) and (report, event)
pairs, the reports with at least one of each (the only ones that count), the cells
``GROUP BY drug, event`` and the margins, part by part (memory stays bounded by one quarter), then
summed over the parts.  Results come back sorted by code, so the table is the
same, cell for cell and in order, whatever the number of threads (an unordered multithreaded
``GROUP BY`` would feed the prior fit its cells in a different order each run and change EBGM in
the ninth digit).  Stratified expected counts are summed in numpy in a fixed order.

``from_long(df)`` / ``read_long_table(path)`` count a long table of ``report_id, drug, event[,
stratum]`` rows (as openEBGM's ``processRaw`` takes) the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from ketaweight.core.duckdb_connection import connect
from ketaweight.core.errors import InputError, Location
from ketaweight.signals.display import one_line
from ketaweight.signals.mapping import DrugMap, TermGroup, clean_term
from ketaweight.signals.tables import CountTable, drug_key_function, expected_counts, read_csv_text

__all__ = ["Part", "Codes", "Totals", "map_names", "count_parts", "build_table", "from_relations", "from_long",
           "read_long_table"]


@dataclass(frozen=True)
class Part:
    """One set of reports, disjoint from the other parts' (a FAERS quarter after deduplication): SQL
    relations ``drugs(rid, nid)`` and ``events(rid, tid)`` of name ids, and optionally ``strata(rid, s)``.
    ``sign`` −1 takes the part's reports away from totals counted before (reports superseded since:
    counts kept in the store are updated this way, :mod:`~ketaweight.signals.faers_count_totals`)."""

    drugs: str
    events: str
    strata: str | None = None
    sign: int = 1


@dataclass(frozen=True, eq=False)
class Codes:
    """How name ids become the integer codes the counting runs on: drug codes index ``drugs`` (sorted
    keys), event codes index ``terms`` (sorted cleaned terms) and then ``group_keys``; per name id its
    code (−1: the name maps to nothing); ``group_pairs`` (term code, group code) for every term of a group."""

    drugs: tuple[str, ...]
    terms: tuple[str, ...]
    group_keys: tuple[str, ...]
    drug_ids: np.ndarray
    drug_codes: np.ndarray
    term_ids: np.ndarray
    term_codes: np.ndarray
    group_pairs: np.ndarray

    @property
    def n_events(self) -> int:
        return len(self.terms) + len(self.group_keys)

    @property
    def width(self) -> int:
        """Cell key = drug code × width + event code."""
        return max(self.n_events, 1)

    def same_as(self, other: Codes) -> bool:
        """The same names, codes and groups (counts made with one can stand for the other's)."""
        return (self.drugs == other.drugs and self.terms == other.terms and self.group_keys == other.group_keys
                and all(np.array_equal(getattr(self, f), getattr(other, f))
                        for f in ("drug_ids", "drug_codes", "term_ids", "term_codes", "group_pairs")))


@dataclass
class Totals:
    """Counts in unique reports in the code space of a :class:`Codes`: reports with a drug and an
    event, reports per drug and per event code, and the cells (sorted keys, counts ≥ 1)."""

    n_reports: int
    drug_n: np.ndarray
    event_n: np.ndarray
    keys: np.ndarray
    counts: np.ndarray

    @classmethod
    def empty(cls, codes: Codes) -> Totals:
        return cls(0, np.zeros(len(codes.drugs), np.int64), np.zeros(codes.n_events, np.int64),
                   np.zeros(0, np.int64), np.zeros(0, np.int64))


def _codes(keys: list[str]) -> tuple[list[str], np.ndarray]:
    """Sorted distinct non-empty keys and, per input key, its code (−1 for an empty key)."""
    names = sorted({k for k in keys if k})
    index = {k: i for i, k in enumerate(names)}
    return names, np.array([index.get(k, -1) for k in keys], np.int32)


def _add(con: duckdb.DuckDBPyConnection, sql: str, out: np.ndarray, sign: int) -> None:
    """Add ``SELECT code, n`` rows (times ``sign``) into the dense vector ``out``."""
    rows = con.execute(sql).fetchnumpy()
    np.add.at(out, rows["code"].astype(np.int64), sign * rows["n"].astype(np.int64))


def _merge(k1: np.ndarray, n1: np.ndarray, k2: np.ndarray, n2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum two sorted, unique key → count tables (linear in their sizes: no re-sort); keys whose sum is
    0 (cells whose reports were all taken away) are dropped."""
    if k1.size == 0:
        return k2, n2
    pos = np.searchsorted(k1, k2)
    hit = k1[np.minimum(pos, k1.size - 1)] == k2
    n1 = n1.copy()
    n1[pos[hit]] += n2[hit]
    keys, counts = np.insert(k1, pos[~hit], k2[~hit]), np.insert(n1, pos[~hit], n2[~hit])
    if (n2 < 0).any():
        keep = counts != 0
        keys, counts = keys[keep], counts[keep]
    return keys, counts


def map_names(con: duckdb.DuckDBPyConnection, *, drug_names: str, event_names: str,
              groups: dict[str, TermGroup] | None = None, source: str = "reports",
              drug_map: DrugMap | None = None) -> Codes:
    """Map the distinct names to codes in Python (see the module docstring).  ``drug_names`` is SQL
    giving ``(nid, name, ai)`` (``ai``: FAERS' ``prod_ai`` or NULL), ``event_names`` gives ``(tid, event)``."""
    groups = groups or {}
    key = drug_key_function(drug_map)
    dn = con.sql(drug_names).to_arrow_table().to_pylist()
    dkeys = ([key(r["name"]) for r in dn] if drug_map is None else
             [drug_map.key(r["name"], r["ai"])[0] for r in dn])
    drug_list, dcodes = _codes(dkeys)
    en = con.sql(event_names).to_arrow_table().to_pylist()
    term_list, ecodes = _codes([clean_term(r["event"]) if r["event"] is not None else "" for r in en])
    clash = sorted(set(groups) & set(term_list))
    if clash:
        raise InputError([(Location(source), f"term group key(s) {clash} are also event terms; rename the group")])
    group_keys = sorted(k for k, g in groups.items() if g.terms & set(term_list))
    pairs = sorted((i, len(term_list) + j) for j, k in enumerate(group_keys) for i, t in enumerate(term_list)
                   if t in groups[k].terms)
    return Codes(drugs=tuple(drug_list), terms=tuple(term_list), group_keys=tuple(group_keys),
                 drug_ids=np.array([r["nid"] for r in dn], np.int64), drug_codes=dcodes,
                 term_ids=np.array([r["tid"] for r in en], np.int64), term_codes=ecodes,
                 group_pairs=np.array(pairs, np.int32).reshape(-1, 2))


def count_parts(con: duckdb.DuckDBPyConnection, codes: Codes, parts: list[Part], totals: Totals | None = None, *,
                source: str = "reports", strata_n: dict[str, list] | None = None) -> Totals:
    """Add the counts of ``parts`` (disjoint sets of reports) to ``totals`` (or to nothing), in SQL
    on the integer codes; stratum margins go into ``strata_n`` (label → [drug counts, event counts,
    reports]) when given.  A report counts only if it has at least one drug and one event that map
    to a key.  The parts' cells are summed among themselves first and added to ``totals``' cells once
    (an update of kept totals touches their millions of cells in one pass, not one per part)."""
    t = Totals.empty(codes) if totals is None else Totals(totals.n_reports, totals.drug_n.copy(),
                                                          totals.event_n.copy(), totals.keys, totals.counts)
    keys, counts = np.zeros(0, np.int64), np.zeros(0, np.int64)
    dk, ek = codes.drug_codes >= 0, codes.term_codes >= 0
    con.register("_kw_dm", pa.table({"nid": pa.array(codes.drug_ids[dk]), "dcode": pa.array(codes.drug_codes[dk])}))
    con.register("_kw_em", pa.table({"tid": pa.array(codes.term_ids[ek]), "ecode": pa.array(codes.term_codes[ek])}))
    con.register("_kw_gm", pa.table({"ecode": pa.array(codes.group_pairs[:, 0]),
                                     "gcode": pa.array(codes.group_pairs[:, 1])}))
    try:
        for part in parts:
            s = int(part.sign)
            con.execute(f"""CREATE OR REPLACE TEMP TABLE _kw_d AS
                SELECT DISTINCT d.rid, m.dcode FROM {part.drugs} d JOIN _kw_dm m USING (nid)""")
            con.execute(f"""CREATE OR REPLACE TEMP TABLE _kw_e AS
                WITH t AS (SELECT DISTINCT e.rid, m.ecode FROM {part.events} e JOIN _kw_em m USING (tid))
                SELECT rid, ecode FROM t
                UNION ALL SELECT DISTINCT t.rid, g.gcode AS ecode FROM t JOIN _kw_gm g USING (ecode)""")
            # the reports that count: at least one drug and one event
            con.execute("CREATE OR REPLACE TEMP TABLE _kw_r AS "
                        "SELECT DISTINCT rid FROM _kw_d SEMI JOIN _kw_e USING (rid)")
            t.n_reports += s * int(con.execute("SELECT count(*) FROM _kw_r").fetchall()[0][0])
            _add(con, "SELECT dcode AS code, count(*) AS n FROM _kw_d SEMI JOIN _kw_r USING (rid) GROUP BY dcode",
                 t.drug_n, s)
            _add(con, "SELECT ecode AS code, count(*) AS n FROM _kw_e SEMI JOIN _kw_r USING (rid) GROUP BY ecode",
                 t.event_n, s)
            # cells of this part, keyed dcode·width + ecode, sorted; summed with the other parts'
            part_cells = con.execute(f"""SELECT CAST(d.dcode AS BIGINT) * {codes.width} + e.ecode AS k,
                count(*) AS n FROM _kw_d d JOIN _kw_e e USING (rid) GROUP BY k ORDER BY k""").fetchnumpy()
            keys, counts = _merge(keys, counts, part_cells["k"].astype(np.int64), s * part_cells["n"].astype(np.int64))
            if strata_n is not None:
                _strata(con, part.strata, source, len(codes.drugs), codes.n_events, strata_n)
        t.keys, t.counts = _merge(t.keys, t.counts, keys, counts)
    finally:
        try:
            for tb in ("_kw_d", "_kw_e", "_kw_r", "_kw_s"):
                con.execute(f"DROP TABLE IF EXISTS {tb}")
            for v in ("_kw_dm", "_kw_em", "_kw_gm"):
                con.unregister(v)
        except duckdb.Error:
            pass  # the connection is unusable after an error or Ctrl-C inside a query: that exception goes on
    return t


def build_table(codes: Codes, totals: Totals, *, groups: dict[str, TermGroup] | None = None,
                source: str = "reports", strata_n: dict[str, list] | None = None,
                strata_label: str | None = None, notes: tuple[str, ...] = (),
                drug_map: DrugMap | None = None) -> CountTable:
    """The :class:`CountTable` of ``totals`` (E from the margins, or stratified from ``strata_n``);
    names that count no report (only in superseded reports or other roles) are dropped."""
    width = codes.width
    cd, ce = (totals.keys // width).astype(np.int32), (totals.keys % width).astype(np.int32)
    cn = totals.counts.astype(np.int64)
    drug_n, event_n, n_total = totals.drug_n, totals.event_n, totals.n_reports
    stratified = strata_n is not None
    labels = ds = es = ns = None
    if stratified:
        n_drugs, n_events = len(codes.drugs), codes.n_events
        labels = tuple(sorted(strata_n))
        ds = np.stack([strata_n[s][0] for s in labels], axis=1) if labels else np.zeros((n_drugs, 0), np.int64)
        es = np.stack([strata_n[s][1] for s in labels], axis=1) if labels else np.zeros((n_events, 0), np.int64)
        ns = np.array([strata_n[s][2] for s in labels], np.int64)
        e_cells = expected_counts(ds, es, ns, cd, ce)
    else:
        e_cells = drug_n[cd].astype(float) * event_n[ce].astype(float) / max(n_total, 1)
    all_events = [*codes.terms, *codes.group_keys]
    dkeep, ekeep = drug_n > 0, event_n > 0
    dnew, enew = np.cumsum(dkeep) - 1, np.cumsum(ekeep) - 1
    return CountTable(drugs=tuple(np.array(codes.drugs, dtype=object)[dkeep].tolist()),
                      events=tuple(np.array(all_events, dtype=object)[ekeep].tolist()),
                      n_terms=int(ekeep[: len(codes.terms)].sum()),
                      cell_drug=dnew[cd].astype(np.int32), cell_event=enew[ce].astype(np.int32), cell_n=cn,
                      cell_e=e_cells, drug_n=drug_n[dkeep], event_n=event_n[ekeep], n_reports=n_total, source=source,
                      strata=strata_label if stratified else None, strata_labels=labels,
                      drug_by_stratum=None if ds is None else ds[dkeep],
                      event_by_stratum=None if es is None else es[ekeep], n_by_stratum=ns,
                      notes=tuple(notes), groups=dict(groups or {}), drug_map=drug_map)


def from_relations(con: duckdb.DuckDBPyConnection, parts: list[Part], *, drug_names: str, event_names: str,
                   groups: dict[str, TermGroup] | None = None, source: str = "reports",
                   strata_label: str | None = None, notes: tuple[str, ...] = (),
                   drug_map: DrugMap | None = None) -> CountTable:
    """Count unique reports over ``parts`` (disjoint sets of reports; counts add up over them):
    :func:`map_names`, :func:`count_parts`, :func:`build_table`."""
    codes = map_names(con, drug_names=drug_names, event_names=event_names, groups=groups, source=source,
                      drug_map=drug_map)
    strata_n: dict[str, list] | None = {} if any(p.strata is not None for p in parts) else None
    totals = count_parts(con, codes, parts, source=source, strata_n=strata_n)
    return build_table(codes, totals, groups=groups, source=source, strata_n=strata_n, strata_label=strata_label,
                       notes=notes, drug_map=drug_map)


def _strata(con: duckdb.DuckDBPyConnection, strata: str | None, source: str, n_drugs: int, n_events: int,
            acc: dict[str, list]) -> None:
    """Add one part's stratum margins into ``acc`` (label → [drug counts, event counts, reports]); a
    report without a stratum is in 'unknown'."""
    rel = strata or "(SELECT NULL::BIGINT AS rid, NULL::VARCHAR AS s WHERE false)"
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _kw_s AS
        SELECT r.rid, coalesce(CAST(s.s AS VARCHAR), 'unknown') AS s
        FROM _kw_r r LEFT JOIN (SELECT DISTINCT rid, s FROM {rel}) s USING (rid)""")
    dup = con.execute("SELECT count(*) FROM (SELECT rid FROM _kw_s GROUP BY rid HAVING count(*) > 1)").fetchall()[0][0]
    if dup:
        raise InputError([(Location(source, column="stratum"), f"{dup} report(s) have more than one stratum")])
    for s, n in con.execute("SELECT s, count(*) FROM _kw_s GROUP BY s").fetchall():
        acc.setdefault(s, [np.zeros(n_drugs, np.int64), np.zeros(n_events, np.int64), 0])[2] += n
    for what, size, idx in (("dcode", n_drugs, 0), ("ecode", n_events, 1)):
        table = "_kw_d" if what == "dcode" else "_kw_e"
        r = con.execute(f"SELECT {what} AS code, s, count(*) AS n FROM {table} JOIN _kw_s USING (rid) "
                        "GROUP BY ALL").fetchnumpy()
        for s in set(r["s"].tolist()):
            sel = r["s"] == s
            np.add.at(acc[s][idx], r["code"][sel].astype(np.int64), r["n"][sel].astype(np.int64))


def from_long(df: pd.DataFrame, *, groups: dict[str, TermGroup] | None = None, source: str = "long table",
              stratum: bool | None = None, drug_map: DrugMap | None = None) -> CountTable:
    """Count unique reports from a DataFrame with columns ``report_id, drug, event[, stratum]``."""
    cols = {str(c).strip().lower(): c for c in df.columns}
    missing = [c for c in ("report_id", "drug", "event") if c not in cols]
    if missing:
        raise InputError([(Location(source, 1), f"missing column(s) {', '.join(missing)}; a long table needs "
                           "report_id, drug, event and optionally stratum (found "
                           f"{one_line(', '.join(map(str, df.columns)), 200) or 'no columns'})")])
    use_s = ("stratum" in cols) if stratum is None else stratum
    problems = []
    for c in ("report_id", "drug", "event"):
        bad = df[cols[c]].isna() | (df[cols[c]].astype(str).str.strip() == "")
        for i in np.flatnonzero(bad.to_numpy())[:5]:
            problems.append((Location(source, int(i) + 2, c), "empty value"))
    if problems:
        raise InputError(problems)
    work = pd.DataFrame({"rid": df[cols["report_id"]].astype(str), "name": df[cols["drug"]].astype(str),
                         "event": df[cols["event"]].astype(str)})
    if use_s:
        work["s"] = df[cols["stratum"]].astype(str)
    con = connect()
    try:
        con.execute("SET threads = 2")
        con.register("_kw_long", work)
        con.execute("""CREATE TEMP TABLE _kw_ln AS
            SELECT CAST(row_number() OVER (ORDER BY name) AS INTEGER) AS nid, name
            FROM (SELECT DISTINCT name FROM _kw_long)""")
        con.execute("""CREATE TEMP TABLE _kw_lt AS
            SELECT CAST(row_number() OVER (ORDER BY event) AS INTEGER) AS tid, event
            FROM (SELECT DISTINCT event FROM _kw_long)""")
        con.execute("CREATE TEMP VIEW _kw_ld AS SELECT rid, nid FROM _kw_long JOIN _kw_ln USING (name)")
        con.execute("CREATE TEMP VIEW _kw_le AS SELECT rid, tid FROM _kw_long JOIN _kw_lt USING (event)")
        if use_s:
            con.execute("CREATE TEMP VIEW _kw_ls AS SELECT DISTINCT rid, s FROM _kw_long")
        part = Part("_kw_ld", "_kw_le", "_kw_ls" if use_s else None)
        return from_relations(con, [part], drug_names="SELECT nid, name, NULL::VARCHAR AS ai FROM _kw_ln",
                              event_names="SELECT tid, event FROM _kw_lt", groups=groups, source=source,
                              strata_label="stratum" if use_s else None, drug_map=drug_map)
    finally:
        con.close()


def read_long_table(path: str | Path, *, groups: dict[str, TermGroup] | None = None,
                    drug_map: DrugMap | None = None) -> CountTable:
    """Read a long table (CSV or Parquet) of ``report_id, drug, event[, stratum]`` rows."""
    p = Path(path)
    if p.suffix.lower() not in (".parquet", ".pq"):
        return from_long(read_csv_text(p), groups=groups, source=str(p), drug_map=drug_map)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    import pyarrow.parquet as pq

    try:
        df = pq.read_table(p).to_pandas()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InputError([(Location(str(p)), f"cannot read as Parquet: {one_line(exc, 200)}")]) from exc
    return from_long(df, groups=groups, source=str(p), drug_map=drug_map)
