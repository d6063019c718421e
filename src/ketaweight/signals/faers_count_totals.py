"""Counts kept in the FAERS store at ingest, so a scan of all pairs does not count every quarter again.

Counting unique reports over the whole history (:mod:`~ketaweight.signals.counting`, quarter by
quarter) costs about two CPU seconds per quarter: most of a scan of all pairs.  But the counts are
sums over the current reports, each report counting its own drug and reaction rows, and an ingest
knows which current reports it added and which it took away (:func:`~ketaweight.signals.faers_dedup.
update_reports` leaves them in ``_kw_report_changes``).  So the ingest keeps the totals — reports,
reports per drug and per event, every cell — for the *default* counting (the shipped drug map and
term groups, every drug role, no strata) and updates them: the changed reports are counted once,
added ones with sign +1 and superseded ones with −1 (exact: integers).  A new store, a replaced
quarter, a store written before these tables existed, or drug names that map differently now (a new
drug map shipped) make the ingest count every quarter again.

The scan uses the kept totals only when its own mapping of the store's names — computed as always,
from the drug map and term groups it was given — is exactly the one they were counted with (same
names, keys, codes and groups), and it counts all roles without strata; otherwise it counts quarter
by quarter as before.  Either way the count table is the same, cell for cell and in order
(``tests/signals/test_count_totals.py``).

Tables: ``faers_count_names`` (kind 0 drug key, 1 term, 2 group key; code; name),
``faers_count_map`` (kind 0 drug name id → drug code, 1 term id → event code, 2 term code → group
code), ``faers_count_cells`` (key = drug code × width + event code, reports) and
``faers_count_margins`` (kind 0 per drug code, 1 per event code, 2 all reports).
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from ketaweight.signals import mapping
from ketaweight.signals.counting import Codes, Part, Totals, count_parts, map_names
from ketaweight.signals.faers_keys import ROLE_CODES

__all__ = ["COUNT_TABLES", "DRUG_NAMES", "EVENT_NAMES", "quarter_parts", "update_totals", "load_totals"]

COUNT_TABLES = ("faers_count_names", "faers_count_map", "faers_count_cells", "faers_count_margins")
DRUG_NAMES = "SELECT name_id AS nid, drugname AS name, prod_ai AS ai FROM faers_drug_names ORDER BY name_id"
EVENT_NAMES = "SELECT pt_id AS tid, pt AS event FROM faers_pt_names ORDER BY pt_id"
ALL_ROLES = ", ".join(str(c) for c in ROLE_CODES.values())


def quarter_parts(con: duckdb.DuckDBPyConnection, role_list: str, strata: str | None = None) -> list[Part]:
    """One part per quarter: the reports whose current version came with it, and only that quarter's
    rows of them (a primaryid repeated in a later quarter counts with the later quarter's drugs and
    events).  ``role_list`` is the SQL list of role codes; ``strata`` an SQL expression on ``r``."""
    parts = []
    for (q,) in con.execute("SELECT DISTINCT quarter FROM faers_reports ORDER BY 1").fetchall():
        q_ = "'" + q.replace("'", "''") + "'"
        reports = f"(SELECT primaryid FROM faers_reports WHERE quarter = {q_})"
        parts.append(Part(
            drugs=f"(SELECT primaryid AS rid, name_id AS nid FROM faers_drug_keys WHERE quarter = {q_} "
                  f"AND role IN ({role_list}) AND primaryid IN {reports})",
            events=f"(SELECT primaryid AS rid, pt_id AS tid FROM faers_reac_keys WHERE quarter = {q_} "
                   f"AND primaryid IN {reports})",
            strata=f"(SELECT r.primaryid AS rid, {strata} AS s FROM faers_reports r WHERE r.quarter = {q_})"
            if strata else None))
    return parts


def _change_parts(con: duckdb.DuckDBPyConnection) -> list[Part]:
    """The reports an update added (+1) and took away (−1).  Their key rows are pulled in one pass
    over each key table, which holds every quarter of the history (a pass per sign cost twice that,
    growing with the store); the pass keeps rows by their BIGINT primaryid first and matches the
    quarter on those only (40 % less CPU than one join on both keys, measured on 103 M key rows).
    Each part then reads its own sign's rows."""
    con.execute("""CREATE OR REPLACE TEMP TABLE _kw_changed AS
        SELECT quarter, primaryid, sign, row_number() OVER (ORDER BY sign, quarter, primaryid) AS rid
        FROM _kw_report_changes""")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _kw_changed_drugs AS
        SELECT c.sign, c.rid, k.name_id AS nid FROM (SELECT quarter, primaryid, name_id FROM faers_drug_keys
            WHERE role IN ({ALL_ROLES}) AND primaryid IN (SELECT primaryid FROM _kw_changed)) k
        JOIN _kw_changed c ON k.quarter = c.quarter AND k.primaryid = c.primaryid""")
    con.execute("""CREATE OR REPLACE TEMP TABLE _kw_changed_events AS
        SELECT c.sign, c.rid, k.pt_id AS tid FROM (SELECT quarter, primaryid, pt_id FROM faers_reac_keys
            WHERE primaryid IN (SELECT primaryid FROM _kw_changed)) k
        JOIN _kw_changed c ON k.quarter = c.quarter AND k.primaryid = c.primaryid""")
    return [Part(drugs=f"(SELECT rid, nid FROM _kw_changed_drugs WHERE sign = {s})",
                 events=f"(SELECT rid, tid FROM _kw_changed_events WHERE sign = {s})", sign=s) for s in (1, -1)]


def default_codes(con: duckdb.DuckDBPyConnection) -> Codes:
    """The store's names mapped with the shipped drug map and term groups."""
    return map_names(con, drug_names=DRUG_NAMES, event_names=EVENT_NAMES, groups=mapping.load_term_groups(),
                     drug_map=mapping.load_drug_map())


def update_totals(con: duckdb.DuckDBPyConnection) -> None:
    """Bring the kept totals up to date after ``update_reports``: from the changed reports it left in
    ``_kw_report_changes`` (an update), else — after a rebuild, or when the totals cannot be carried
    over — by counting every quarter."""
    codes = default_codes(con)
    incremental = bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary "
                                   "AND table_name = '_kw_report_changes'").fetchall()[0][0])
    old = _stored_codes(con) if incremental else None
    remap = _remap(old, codes) if old is not None else None
    if remap is None:
        totals = count_parts(con, codes, quarter_parts(con, ALL_ROLES))
    else:
        totals = count_parts(con, codes, _change_parts(con), _carry(_stored_totals(con, old), old, codes, *remap))
        for name in ("_kw_changed", "_kw_changed_drugs", "_kw_changed_events"):
            con.execute(f"DROP TABLE {name}")
    con.execute("DROP TABLE IF EXISTS _kw_report_changes")
    _save(con, codes, totals)


def load_totals(con: duckdb.DuckDBPyConnection, codes: Codes) -> Totals | None:
    """The kept totals if they were counted with exactly ``codes`` (else None: count the quarters)."""
    stored = _stored_codes(con)
    if stored is None or not stored.same_as(codes):
        return None
    return _stored_totals(con, stored)


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {t for (t,) in con.execute("SELECT table_name FROM information_schema.tables "
                                      "WHERE table_catalog = current_database()").fetchall()}


def _stored_codes(con: duckdb.DuckDBPyConnection) -> Codes | None:
    if not all(t in _tables(con) for t in COUNT_TABLES):
        return None
    names: dict[int, list[str]] = {0: [], 1: [], 2: []}
    for kind, name in con.execute("SELECT kind, name FROM faers_count_names ORDER BY kind, code").fetchall():
        names[kind].append(name)
    maps = {k: con.execute("SELECT id, code FROM faers_count_map WHERE kind = ? ORDER BY id, code", [k]).fetchnumpy()
            for k in (0, 1, 2)}
    return Codes(drugs=tuple(names[0]), terms=tuple(names[1]), group_keys=tuple(names[2]),
                 drug_ids=maps[0]["id"].astype(np.int64), drug_codes=maps[0]["code"].astype(np.int32),
                 term_ids=maps[1]["id"].astype(np.int64), term_codes=maps[1]["code"].astype(np.int32),
                 group_pairs=np.stack([maps[2]["id"], maps[2]["code"]], axis=1).astype(np.int32).reshape(-1, 2))


def _stored_totals(con: duckdb.DuckDBPyConnection, codes: Codes) -> Totals:
    cells = con.execute("SELECT k, n FROM faers_count_cells").fetchnumpy()
    keys, counts = cells["k"].astype(np.int64), cells["n"].astype(np.int64)
    if keys.size > 1 and not (np.diff(keys) > 0).all():  # a parallel scan returns row groups in any order
        order = np.argsort(keys, kind="stable")
        keys, counts = keys[order], counts[order]
    margins = {k: np.zeros(size, np.int64) for k, size in ((0, len(codes.drugs)), (1, codes.n_events), (2, 1))}
    m = con.execute("SELECT kind, code, n FROM faers_count_margins").fetchnumpy()
    for k, arr in margins.items():
        sel = m["kind"] == k
        arr[m["code"][sel].astype(np.int64)] = m["n"][sel]
    return Totals(int(margins[2][0]), margins[0], margins[1], keys, counts)


def _keys_by_id(ids: np.ndarray, codes: np.ndarray, names: tuple[str, ...]) -> dict[int, str]:
    return {int(i): (names[c] if c >= 0 else "") for i, c in zip(ids.tolist(), codes.tolist(), strict=True)}


def _remap(old: Codes, new: Codes) -> tuple[np.ndarray, np.ndarray] | None:
    """Old → new drug and event codes when every name the old totals counted maps as it did (the
    new names only add keys); None when the totals must be counted again."""
    for ids, cs, ns, nids, ncs, nns in ((old.drug_ids, old.drug_codes, old.drugs, new.drug_ids, new.drug_codes,
                                         new.drugs),
                                        (old.term_ids, old.term_codes, old.terms, new.term_ids, new.term_codes,
                                         new.terms)):
        before, now = _keys_by_id(ids, cs, ns), _keys_by_id(nids, ncs, nns)
        if any(now.get(i) != k for i, k in before.items()):
            return None
    old_events, new_events = [*old.terms, *old.group_keys], [*new.terms, *new.group_keys]
    pairs = {(new_events[e], new_events[g]) for e, g in new.group_pairs.tolist()}
    if {(old_events[e], old_events[g]) for e, g in old.group_pairs.tolist()} != \
            {p for p in pairs if p[0] in set(old.terms)}:
        return None
    dpos, epos = {k: i for i, k in enumerate(new.drugs)}, {k: i for i, k in enumerate(new.terms)}
    gpos = {k: len(new.terms) + i for i, k in enumerate(new.group_keys)}
    if any(g not in gpos for g in old.group_keys):
        return None
    return (np.array([dpos[k] for k in old.drugs], np.int64),
            np.array([epos[k] for k in old.terms] + [gpos[k] for k in old.group_keys], np.int64))


def _carry(t: Totals, old: Codes, new: Codes, dmap: np.ndarray, emap: np.ndarray) -> Totals:
    """``t`` (in ``old``'s codes) in ``new``'s codes.  Both code lists are sorted and the new ones hold
    the old ones, so the maps are increasing (terms before groups in both) and the cell keys stay sorted."""
    drug_n, event_n = np.zeros(len(new.drugs), np.int64), np.zeros(new.n_events, np.int64)
    drug_n[dmap], event_n[emap] = t.drug_n, t.event_n
    keys = dmap[t.keys // old.width] * new.width + emap[t.keys % old.width]
    return Totals(t.n_reports, drug_n, event_n, keys, t.counts)


def _save(con: duckdb.DuckDBPyConnection, codes: Codes, t: Totals) -> None:
    names = [(0, i, n) for i, n in enumerate(codes.drugs)] + [(1, i, n) for i, n in enumerate(codes.terms)] + \
        [(2, i, n) for i, n in enumerate(codes.group_keys)]
    blocks = {
        "faers_count_names": pa.table({"kind": pa.array([k for k, _, _ in names], pa.int8()),
                                       "code": pa.array([c for _, c, _ in names], pa.int32()),
                                       "name": pa.array([n for _, _, n in names], pa.string())}),
        "faers_count_map": pa.table({
            "kind": pa.array(np.repeat(np.array([0, 1, 2], np.int8), [codes.drug_ids.size, codes.term_ids.size,
                                                                     len(codes.group_pairs)])),
            "id": pa.array(np.concatenate([codes.drug_ids, codes.term_ids, codes.group_pairs[:, 0]]).astype(np.int64)),
            "code": pa.array(np.concatenate([codes.drug_codes, codes.term_codes,
                                             codes.group_pairs[:, 1]]).astype(np.int32))}),
        "faers_count_cells": pa.table({"k": pa.array(t.keys), "n": pa.array(t.counts)}),
        "faers_count_margins": pa.table({
            "kind": pa.array(np.repeat(np.array([0, 1, 2], np.int8), [t.drug_n.size, t.event_n.size, 1])),
            "code": pa.array(np.concatenate([np.arange(t.drug_n.size), np.arange(t.event_n.size), [0]]).astype(np.int32)),
            "n": pa.array(np.concatenate([t.drug_n, t.event_n, [t.n_reports]]).astype(np.int64))}),
    }
    for name, block in blocks.items():
        con.register("_kw_totals", block)
        try:
            con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _kw_totals")
        finally:
            con.unregister("_kw_totals")
