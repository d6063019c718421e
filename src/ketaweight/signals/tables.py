"""Count tables for disproportionality: from a ready contingency table or from report-level rows.

A :class:`CountTable` holds, in unique reports, every drug–event cell with ``n ≥ 1`` (the
cells the MGPS prior is fitted to), the drug and event margins, the total ``N``, and the
stratum margins when stratified, so that ``a, b, c, d`` and ``E`` can be given for any pair —
including pairs never reported together (``a = 0``).

Sources:

* :func:`from_contingency` — a matrix of counts, rows events and columns drugs, as the
  ``mddc`` package ships (``statin49`` …; "Other" column and last row "Other AE" hold the
  rest of the database).  Its counts are cell counts, so a term group is the *sum* of its
  rows (an upper bound on unique reports; flagged ``approximate``).
* :func:`from_long` — rows ``(report_id, drug, event[, stratum])`` as openEBGM's
  ``processRaw`` takes; counted in unique reports.
* :func:`from_relations` — the same from DuckDB relations (used for the FAERS store).

Expected counts: ``E = n_drug·n_event/N``, or stratified (DuMouchel 1999)
``E = Σ_s n_drug,s·n_event,s/N_s``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from ketaweight.core.errors import InputError, Location
from ketaweight.signals.mapping import TermGroup, clean_term

__all__ = ["CountTable", "PairCounts", "from_contingency", "read_contingency_csv", "from_long", "read_long_table",
           "from_relations"]

OTHER_LABELS = frozenset({"other", "other ae", "other aes", "other pt", "other event", "other events", "other drug",
                          "other drugs"})


@dataclass(frozen=True)
class PairCounts:
    drug: str
    event: str
    a: int
    b: int
    c: int
    d: int
    e: float

    @property
    def n(self) -> int:
        return self.a


@dataclass(frozen=True)
class CountTable:
    """Counts in unique reports for every observed drug–event cell, with margins."""

    cells: pd.DataFrame
    """columns: drug, event, kind ('term' or 'group'), n, e."""
    drug_reports: dict[str, int]
    event_reports: dict[str, int]
    n_reports: int
    source: str
    strata: str | None = None
    approximate_groups: bool = False
    drug_strata: pd.DataFrame | None = None
    event_strata: pd.DataFrame | None = None
    n_strata: pd.Series | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    groups: dict[str, TermGroup] = field(default_factory=dict)

    @property
    def prior_cells(self) -> pd.DataFrame:
        """The cells the prior is fitted to: single terms (not groups) with n ≥ 1."""
        c = self.cells
        return c[(c["kind"] == "term") & (c["n"] >= 1)]

    def expected(self, drug: str, event: str) -> float:
        if self.n_reports == 0:
            return float("nan")
        if self.drug_strata is None:
            return self.drug_reports.get(drug, 0) * self.event_reports.get(event, 0) / self.n_reports
        ds = self.drug_strata[self.drug_strata["drug"] == drug].set_index("s")["n"]
        es = self.event_strata[self.event_strata["event"] == event].set_index("s")["n"]
        common = ds.index.intersection(es.index)
        return float((ds[common] * es[common] / self.n_strata[common]).sum())

    def pair(self, drug: str, event: str) -> PairCounts:
        hit = self._index().get((drug, event))
        a = int(self.cells["n"].iat[hit]) if hit is not None else 0
        e = float(self.cells["e"].iat[hit]) if hit is not None else self.expected(drug, event)
        r = self.drug_reports.get(drug, 0)
        c_ = self.event_reports.get(event, 0)
        return PairCounts(drug, event, a, r - a, c_ - a, self.n_reports - r - c_ + a, e)

    def _index(self) -> dict:
        cache = self.__dict__.get("_idx")
        if cache is None:
            cache = {(d, e): i for i, (d, e) in enumerate(zip(self.cells["drug"], self.cells["event"], strict=True))}
            object.__setattr__(self, "_idx", cache)
        return cache

    def summary(self) -> dict:
        return {
            "source": self.source,
            "reports": self.n_reports,
            "drugs": len(self.drug_reports),
            "events": len([k for k in self.event_reports if k not in self.groups]),
            "cells_with_reports": int(len(self.prior_cells)),
            "stratified_by": self.strata,
            "approximate_groups": self.approximate_groups,
            "notes": list(self.notes),
        }


# --------------------------------------------------------------------------------------
# contingency (mddc) tables
# --------------------------------------------------------------------------------------


def from_contingency(table: pd.DataFrame, *, groups: dict[str, TermGroup] | None = None,
                     source: str = "contingency table") -> CountTable:
    """A count table from a matrix (rows events, columns drugs) of non-negative integers."""
    if table.shape[0] == 0 or table.shape[1] == 0:
        raise InputError([(Location(source), "the contingency table is empty")])
    values = table.to_numpy()
    if not np.issubdtype(values.dtype, np.number):
        raise InputError([(Location(source), "the contingency table must hold numbers")])
    if np.any(values < 0) or np.any(values != np.floor(values)):
        raise InputError([(Location(source), "counts must be whole numbers ≥ 0")])
    values = values.astype(np.int64)
    events = [clean_term(e) for e in table.index.astype(str)]
    drugs = [str(d).strip().lower() for d in table.columns]
    n_total = int(values.sum())
    drug_m = dict(zip(drugs, values.sum(axis=0).tolist(), strict=True))
    event_m = dict(zip(events, values.sum(axis=1).tolist(), strict=True))
    ii, jj = np.nonzero(values)
    cells = pd.DataFrame({"drug": np.array(drugs, dtype=object)[jj], "event": np.array(events, dtype=object)[ii],
                          "kind": "term", "n": values[ii, jj]})
    rows = []
    approx = False
    groups = groups or {}
    for key, g in groups.items():
        idx = [i for i, e in enumerate(events) if e in g.terms]
        if not idx:
            continue
        approx = True
        gsum = values[idx].sum(axis=0)
        event_m[key] = int(gsum.sum())
        for j in np.flatnonzero(gsum):
            rows.append({"drug": drugs[j], "event": key, "kind": "group", "n": int(gsum[j])})
    if rows:
        cells = pd.concat([cells, pd.DataFrame(rows)], ignore_index=True)
    cells["e"] = cells["drug"].map(drug_m).to_numpy(float) * cells["event"].map(event_m).to_numpy(float) / n_total
    notes = []
    if approx:
        notes.append("term groups on a contingency table are sums of cell counts (a report with two of the "
                     "group's terms counts twice): an upper bound on unique reports")
    return CountTable(cells=cells, drug_reports=drug_m, event_reports=event_m, n_reports=n_total, source=source,
                      approximate_groups=approx, notes=tuple(notes), groups=dict(groups))


def read_contingency_csv(path: str | Path, *, groups: dict[str, TermGroup] | None = None) -> CountTable:
    """Read an mddc-format CSV: first column event names, header row drug names (incl. "Other")."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    try:
        df = pd.read_csv(p, index_col=0)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise InputError([(Location(str(p)), f"cannot read as CSV: {exc}")]) from exc
    problems = []
    for j, col in enumerate(df.columns):
        num = pd.to_numeric(df[col], errors="coerce")
        bad = num.isna() | (num < 0) | (num != np.floor(num))
        for i in np.flatnonzero(bad.to_numpy())[:5]:
            problems.append((Location(str(p), int(i) + 2, str(col)),
                             f"count must be a whole number ≥ 0, found {df[col].iloc[i]!r}"))
        df[col] = num
    if problems:
        raise InputError(problems)
    return from_contingency(df.astype(np.int64), groups=groups, source=str(p))


# --------------------------------------------------------------------------------------
# report-level rows
# --------------------------------------------------------------------------------------

_NORM_EVENT = "lower(trim(regexp_replace(CAST({c} AS VARCHAR), '\\s+', ' ', 'g')))"


def from_relations(con: duckdb.DuckDBPyConnection, drugs: str, events: str, *, strata: str | None = None,
                   groups: dict[str, TermGroup] | None = None, source: str = "reports",
                   strata_label: str | None = None, notes: tuple[str, ...] = ()) -> CountTable:
    """Count unique reports from relations ``drugs(rid, drug)``, ``events(rid, event)`` and optional
    ``strata(rid, s)`` (names of tables or views in ``con``).  A report counts only if it has at
    least one drug and one event."""
    groups = groups or {}
    gmap = pd.DataFrame([(t, k) for k, g in groups.items() for t in g.terms], columns=["term", "gkey"])
    con.register("_kw_gmap", gmap if len(gmap) else pd.DataFrame({"term": pd.Series([], dtype=str),
                                                                   "gkey": pd.Series([], dtype=str)}))
    ev = _NORM_EVENT.format(c="event")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _kw_r AS
        SELECT rid FROM {drugs} WHERE drug IS NOT NULL AND drug <> ''
        INTERSECT SELECT rid FROM {events} WHERE event IS NOT NULL AND trim(event) <> ''""")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _kw_d AS
        SELECT DISTINCT rid, drug FROM {drugs} WHERE drug IS NOT NULL AND drug <> '' AND rid IN (SELECT rid FROM _kw_r)""")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _kw_e AS
        WITH t AS (SELECT DISTINCT rid, {ev} AS event FROM {events}
                   WHERE event IS NOT NULL AND trim(event) <> '' AND rid IN (SELECT rid FROM _kw_r))
        SELECT rid, event, 'term' AS kind FROM t
        UNION ALL
        SELECT DISTINCT t.rid, g.gkey AS event, 'group' AS kind FROM t JOIN _kw_gmap g ON t.event = g.term""")
    n_total = con.execute("SELECT count(*) FROM _kw_r").fetchall()[0][0]
    drug_m = dict(con.execute("SELECT drug, count(*) FROM _kw_d GROUP BY drug").fetchall())
    event_m = dict(con.execute("SELECT event, count(*) FROM _kw_e GROUP BY event").fetchall())
    clash = set(groups) & {e for e, in con.execute("SELECT DISTINCT event FROM _kw_e WHERE kind='term'").fetchall()}
    if clash:
        raise InputError([(Location(source), f"term group key(s) {sorted(clash)} are also event terms; rename the group")])
    cells = con.execute("""SELECT d.drug, e.event, e.kind, count(*) AS n
        FROM _kw_d d JOIN _kw_e e USING (rid) GROUP BY ALL""").df()
    ds = es = ns = None
    if strata is not None:
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _kw_s AS
            SELECT rid, coalesce(CAST(s AS VARCHAR), 'unknown') AS s FROM {strata} WHERE rid IN (SELECT rid FROM _kw_r)""")
        dup = con.execute("SELECT count(*) FROM (SELECT rid FROM _kw_s GROUP BY rid HAVING count(DISTINCT s) > 1)").fetchall()[0][0]
        if dup:
            raise InputError([(Location(source, column="stratum"), f"{dup} report(s) have more than one stratum")])
        con.execute("""CREATE OR REPLACE TEMP TABLE _kw_s2 AS
            SELECT r.rid, coalesce(s.s, 'unknown') AS s FROM _kw_r r LEFT JOIN (SELECT DISTINCT rid, s FROM _kw_s) s USING (rid)""")
        ds = con.execute("SELECT drug, s, count(*) AS n FROM _kw_d JOIN _kw_s2 USING (rid) GROUP BY ALL").df()
        es = con.execute("SELECT event, s, count(*) AS n FROM _kw_e JOIN _kw_s2 USING (rid) GROUP BY ALL").df()
        ns = con.execute("SELECT s, count(*) AS n FROM _kw_s2 GROUP BY s").df().set_index("s")["n"].astype(float)
        e_df = con.execute("""WITH ds AS (SELECT drug, s, count(*) AS n FROM _kw_d JOIN _kw_s2 USING (rid) GROUP BY ALL),
                 es AS (SELECT event, s, count(*) AS n FROM _kw_e JOIN _kw_s2 USING (rid) GROUP BY ALL),
                 ns AS (SELECT s, count(*) AS n FROM _kw_s2 GROUP BY s),
                 p AS (SELECT DISTINCT d.drug, e.event FROM _kw_d d JOIN _kw_e e USING (rid))
            SELECT p.drug, p.event, sum(CAST(ds.n AS DOUBLE) * es.n / ns.n) AS e
            FROM p JOIN ds ON p.drug = ds.drug JOIN es ON p.event = es.event AND es.s = ds.s
                   JOIN ns ON ns.s = ds.s GROUP BY p.drug, p.event""").df()
        cells = cells.merge(e_df, on=["drug", "event"], how="left")
    else:
        cells["e"] = (cells["drug"].map(drug_m).to_numpy(float) * cells["event"].map(event_m).to_numpy(float)
                      / max(n_total, 1))
    for t in ("_kw_r", "_kw_d", "_kw_e", "_kw_s", "_kw_s2"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    con.unregister("_kw_gmap")
    cells["n"] = cells["n"].astype(np.int64)
    return CountTable(cells=cells, drug_reports={k: int(v) for k, v in drug_m.items()},
                      event_reports={k: int(v) for k, v in event_m.items()}, n_reports=int(n_total), source=source,
                      strata=strata_label if strata is not None else None, drug_strata=ds, event_strata=es,
                      n_strata=ns, notes=notes, groups=dict(groups))


def from_long(df: pd.DataFrame, *, groups: dict[str, TermGroup] | None = None, source: str = "long table",
              stratum: bool | None = None) -> CountTable:
    """Count unique reports from a DataFrame with columns ``report_id, drug, event[, stratum]``."""
    cols = {c.lower(): c for c in df.columns}
    missing = [c for c in ("report_id", "drug", "event") if c not in cols]
    if missing:
        raise InputError([(Location(source, 1), f"missing column(s) {', '.join(missing)}; a long table needs "
                           "report_id, drug, event and optionally stratum")])
    use_s = ("stratum" in cols) if stratum is None else stratum
    problems = []
    for c in ("report_id", "drug", "event"):
        bad = df[cols[c]].isna() | (df[cols[c]].astype(str).str.strip() == "")
        for i in np.flatnonzero(bad.to_numpy())[:5]:
            problems.append((Location(source, int(i) + 2, c), "empty value"))
    if problems:
        raise InputError(problems)
    work = pd.DataFrame({"rid": df[cols["report_id"]].astype(str), "drug": df[cols["drug"]].astype(str).str.strip().str.lower(),
                         "event": df[cols["event"]].astype(str)})
    if use_s:
        work["s"] = df[cols["stratum"]].astype(str)
    con = duckdb.connect()
    try:
        con.register("_kw_long", work)
        con.execute("CREATE TEMP VIEW _kw_ld AS SELECT rid, drug FROM _kw_long")
        con.execute("CREATE TEMP VIEW _kw_le AS SELECT rid, event FROM _kw_long")
        if use_s:
            con.execute("CREATE TEMP VIEW _kw_ls AS SELECT DISTINCT rid, s FROM _kw_long")
        return from_relations(con, "_kw_ld", "_kw_le", strata="_kw_ls" if use_s else None, groups=groups,
                              source=source, strata_label="stratum" if use_s else None)
    finally:
        con.close()


def read_long_table(path: str | Path, *, groups: dict[str, TermGroup] | None = None) -> CountTable:
    """Read a long table (CSV or Parquet) of ``report_id, drug, event[, stratum]`` rows."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    try:
        df = pd.read_parquet(p) if p.suffix.lower() in (".parquet", ".pq") else pd.read_csv(p, dtype=str,
                                                                                             keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise InputError([(Location(str(p)), f"cannot read the table: {exc}")]) from exc
    return from_long(df, groups=groups, source=str(p))
