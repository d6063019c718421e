"""Counts in unique reports from report-level rows, in DuckDB SQL: the FAERS store and long tables.

``from_relations(con, drugs, events, strata=…)`` takes DuckDB relations ``drugs(rid, name, ai)``,
``events(rid, event)`` and optionally ``strata(rid, s)``.  The *distinct* names are mapped in Python
— drug names through the drug key (brand and salt names → ingredient, see
:func:`~ketaweight.signals.tables.drug_key_function`), event terms through
:func:`~ketaweight.signals.mapping.clean_term`, terms into term groups — and numbered; every count
over rows then runs in SQL on those integer codes: distinct (report, drug) and (report, event)
pairs, the reports with at least one of each (the only ones that count), the cells
``GROUP BY drug, event`` and the margins.  Results come back sorted by code, so the table is the
same, cell for cell and in order, whatever the number of threads (an unordered multithreaded
``GROUP BY`` would feed the prior fit its cells in a different order each run and change EBGM in
the ninth digit).  Stratified expected counts are summed in numpy in a fixed order.

``from_long(df)`` / ``read_long_table(path)`` count a long table of ``report_id, drug, event[,
stratum]`` rows (as openEBGM's ``processRaw`` takes) the same way.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from ketaweight.core.errors import InputError, Location
from ketaweight.signals.mapping import DrugMap, TermGroup, clean_term
from ketaweight.signals.tables import CountTable, drug_key_function, expected_counts, read_csv_text

__all__ = ["from_relations", "from_long", "read_long_table"]


def _codes(keys: list[str]) -> tuple[list[str], np.ndarray]:
    """Sorted distinct non-empty keys and, per input key, its code (−1 for an empty key)."""
    names = sorted({k for k in keys if k})
    index = {k: i for i, k in enumerate(names)}
    return names, np.array([index.get(k, -1) for k in keys], np.int32)


def _counts(con: duckdb.DuckDBPyConnection, sql: str, size: int) -> np.ndarray:
    """A dense count vector from ``SELECT code, count`` rows."""
    rows = con.execute(sql).fetchnumpy()
    out = np.zeros(size, np.int64)
    out[rows["code"].astype(np.int64)] = rows["n"]
    return out


def from_relations(con: duckdb.DuckDBPyConnection, drugs: str, events: str, *, strata: str | None = None,
                   groups: dict[str, TermGroup] | None = None, source: str = "reports",
                   strata_label: str | None = None, notes: tuple[str, ...] = (),
                   drug_map: DrugMap | None = None, drug_names_sql: str | None = None,
                   event_names_sql: str | None = None) -> CountTable:
    """Count unique reports from relations ``drugs(rid, name, ai)``, ``events(rid, event)`` and optional
    ``strata(rid, s)`` (names of tables or views in ``con``; ``ai`` is FAERS' ``prod_ai`` or NULL).
    A report counts only if it has at least one drug and one event.

    ``drug_names_sql`` / ``event_names_sql`` may give cheaper queries for the distinct ``(name, ai)``
    and ``event`` values (a superset is fine: names that count no report are dropped)."""
    groups = groups or {}
    key = drug_key_function(drug_map)
    dn = con.execute(drug_names_sql or f"SELECT DISTINCT name, ai FROM {drugs}").to_arrow_table().to_pylist()
    names = [r["name"] for r in dn]
    ais = [r["ai"] for r in dn]
    dkeys = [key(n) for n in names] if drug_map is None else [drug_map.key(n, a)[0] for n, a in zip(names, ais,
                                                                                                   strict=True)]
    drug_names, dcodes = _codes(dkeys)
    raw_events = [r[0] for r in con.execute(event_names_sql or f"SELECT DISTINCT event FROM {events}").fetchall()]
    raw_events = [str(t) for t in raw_events if t is not None]
    term_names, ecodes = _codes([clean_term(t) for t in raw_events])
    clash = sorted(set(groups) & set(term_names))
    if clash:
        raise InputError([(Location(source), f"term group key(s) {clash} are also event terms; rename the group")])
    group_keys = sorted(k for k, g in groups.items() if g.terms & set(term_names))
    pairs = [(i, len(term_names) + j) for j, k in enumerate(group_keys) for i, t in enumerate(term_names)
             if t in groups[k].terms]
    dk, ek = dcodes >= 0, ecodes >= 0
    con.register("_kw_dn", pa.table({"name": pa.array(names, pa.string()).filter(pa.array(dk)),
                                     "ai": pa.array(ais, pa.string()).filter(pa.array(dk)),
                                     "dcode": pa.array(dcodes[dk])}))
    con.register("_kw_en", pa.table({"event": pa.array(raw_events, pa.string()).filter(pa.array(ek)),
                                     "ecode": pa.array(ecodes[ek])}))
    con.register("_kw_gm", pa.table({"ecode": pa.array([a for a, _ in pairs], pa.int32()),
                                     "gcode": pa.array([b for _, b in pairs], pa.int32())}))
    n_events = len(term_names) + len(group_keys)
    try:
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _kw_d0 AS
            SELECT DISTINCT d.rid, n.dcode FROM {drugs} d
            JOIN _kw_dn n ON d.name IS NOT DISTINCT FROM n.name AND d.ai IS NOT DISTINCT FROM n.ai""")
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _kw_e0 AS
            SELECT DISTINCT e.rid, n.ecode FROM {events} e JOIN _kw_en n ON e.event = n.event""")
        con.execute("""CREATE OR REPLACE TEMP TABLE _kw_r AS
            SELECT rid FROM _kw_d0 INTERSECT SELECT rid FROM _kw_e0""")
        con.execute("CREATE OR REPLACE TEMP TABLE _kw_d AS SELECT * FROM _kw_d0 SEMI JOIN _kw_r USING (rid)")
        con.execute("""CREATE OR REPLACE TEMP TABLE _kw_e AS
            WITH t AS (SELECT * FROM _kw_e0 SEMI JOIN _kw_r USING (rid))
            SELECT rid, ecode FROM t
            UNION ALL SELECT DISTINCT t.rid, g.gcode AS ecode FROM t JOIN _kw_gm g USING (ecode)""")
        con.execute("DROP TABLE _kw_d0")
        con.execute("DROP TABLE _kw_e0")
        n_total = int(con.execute("SELECT count(*) FROM _kw_r").fetchall()[0][0])
        drug_n = _counts(con, "SELECT dcode AS code, count(*) AS n FROM _kw_d GROUP BY dcode", len(drug_names))
        event_n = _counts(con, "SELECT ecode AS code, count(*) AS n FROM _kw_e GROUP BY ecode", n_events)
        cells = con.execute("""SELECT dcode, ecode, count(*) AS n FROM _kw_d JOIN _kw_e USING (rid)
            GROUP BY dcode, ecode ORDER BY dcode, ecode""").fetchnumpy()
        cd, ce = cells["dcode"].astype(np.int32), cells["ecode"].astype(np.int32)
        cn = cells["n"].astype(np.int64)
        labels = ds = es = ns = None
        if strata is not None:
            ds, es, ns, labels = _strata(con, strata, source, len(drug_names), n_events)
            ce_ = expected_counts(ds, es, ns, cd, ce)
        else:
            ce_ = drug_n[cd].astype(float) * event_n[ce].astype(float) / max(n_total, 1)
    finally:
        for t in ("_kw_r", "_kw_d", "_kw_e", "_kw_s"):
            con.execute(f"DROP TABLE IF EXISTS {t}")
        for v in ("_kw_dn", "_kw_en", "_kw_gm"):
            con.unregister(v)
    # names that count no report (only in superseded reports, or a superset query) are dropped
    all_events = [*term_names, *group_keys]
    dkeep, ekeep = drug_n > 0, event_n > 0
    dmap_, emap_ = np.cumsum(dkeep) - 1, np.cumsum(ekeep) - 1
    return CountTable(drugs=tuple(np.array(drug_names, dtype=object)[dkeep].tolist()),
                      events=tuple(np.array(all_events, dtype=object)[ekeep].tolist()),
                      n_terms=int(ekeep[: len(term_names)].sum()),
                      cell_drug=dmap_[cd].astype(np.int32), cell_event=emap_[ce].astype(np.int32), cell_n=cn,
                      cell_e=ce_, drug_n=drug_n[dkeep], event_n=event_n[ekeep],
                      n_reports=n_total, source=source, strata=strata_label if strata is not None else None,
                      strata_labels=labels, drug_by_stratum=None if ds is None else ds[dkeep],
                      event_by_stratum=None if es is None else es[ekeep], n_by_stratum=ns,
                      notes=tuple(notes), groups=dict(groups), drug_map=drug_map)


def _strata(con: duckdb.DuckDBPyConnection, strata: str, source: str, n_drugs: int, n_events: int):
    """(drugs × strata, events × strata, reports per stratum, stratum labels); a report without a
    stratum is in 'unknown'."""
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _kw_s AS
        SELECT r.rid, coalesce(CAST(s.s AS VARCHAR), 'unknown') AS s
        FROM _kw_r r LEFT JOIN (SELECT DISTINCT rid, s FROM {strata}) s USING (rid)""")
    dup = con.execute("SELECT count(*) FROM (SELECT rid FROM _kw_s GROUP BY rid HAVING count(*) > 1)").fetchall()[0][0]
    if dup:
        raise InputError([(Location(source, column="stratum"), f"{dup} report(s) have more than one stratum")])
    labels = tuple(s for (s,) in con.execute("SELECT DISTINCT s FROM _kw_s ORDER BY s").fetchall())
    code = {s: i for i, s in enumerate(labels)}

    def matrix(sql: str, size: int) -> np.ndarray:
        r = con.execute(sql).fetchnumpy()
        m = np.zeros((size, len(labels)), np.int64)
        m[r["code"].astype(np.int64), [code[s] for s in r["s"]]] = r["n"]
        return m

    ds = matrix("SELECT dcode AS code, s, count(*) AS n FROM _kw_d JOIN _kw_s USING (rid) GROUP BY ALL", n_drugs)
    es = matrix("SELECT ecode AS code, s, count(*) AS n FROM _kw_e JOIN _kw_s USING (rid) GROUP BY ALL", n_events)
    ns = np.zeros(len(labels), np.int64)
    for s, n in con.execute("SELECT s, count(*) FROM _kw_s GROUP BY s").fetchall():
        ns[code[s]] = n
    return ds, es, ns, labels


def from_long(df: pd.DataFrame, *, groups: dict[str, TermGroup] | None = None, source: str = "long table",
              stratum: bool | None = None, drug_map: DrugMap | None = None) -> CountTable:
    """Count unique reports from a DataFrame with columns ``report_id, drug, event[, stratum]``."""
    cols = {str(c).strip().lower(): c for c in df.columns}
    missing = [c for c in ("report_id", "drug", "event") if c not in cols]
    if missing:
        raise InputError([(Location(source, 1), f"missing column(s) {', '.join(missing)}; a long table needs "
                           "report_id, drug, event and optionally stratum (found "
                           f"{', '.join(map(str, df.columns))[:200] or 'no columns'})")])
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
    con = duckdb.connect()
    try:
        con.execute("SET threads = 2")
        con.register("_kw_long", work)
        con.execute("CREATE TEMP VIEW _kw_ld AS SELECT rid, name, NULL::VARCHAR AS ai FROM _kw_long")
        con.execute("CREATE TEMP VIEW _kw_le AS SELECT rid, event FROM _kw_long")
        if use_s:
            con.execute("CREATE TEMP VIEW _kw_ls AS SELECT DISTINCT rid, s FROM _kw_long")
        return from_relations(con, "_kw_ld", "_kw_le", strata="_kw_ls" if use_s else None, groups=groups,
                              source=source, strata_label="stratum" if use_s else None, drug_map=drug_map)
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
        raise InputError([(Location(str(p)), f"cannot read as Parquet: {str(exc).splitlines()[0][:200]}")]) from exc
    return from_long(df, groups=groups, source=str(p), drug_map=drug_map)
