"""Count tables from the FAERS store: deduplicated reports, mapped drugs, role filter, strata.

Drug identity is resolved at scan time from the verbatim ``drugname`` and ``prod_ai`` through
the (user-extendable) :class:`~ketaweight.signals.mapping.DrugMap`, so extending the map never
needs a re-ingest.  Only reports in ``faers_reports`` (after deduplication) count.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from ketaweight.core.errors import InputError, Location
from ketaweight.signals.counting import from_relations
from ketaweight.signals.faers_store import open_store, store_errors
from ketaweight.signals.mapping import DrugMap, TermGroup
from ketaweight.signals.tables import CountTable

__all__ = ["counts_from_store", "STRATA", "ROLES"]

ROLES = ("PS", "SS", "C", "I")
STRATA = {
    "sex": "coalesce(nullif(r.sex, ''), 'unknown')",
    "age": """CASE WHEN r.age_years IS NULL THEN 'unknown' WHEN r.age_years < 18 THEN '<18'
               WHEN r.age_years < 45 THEN '18-44' WHEN r.age_years < 65 THEN '45-64'
               WHEN r.age_years < 75 THEN '65-74' ELSE '75+' END""",
    "year": "coalesce(CAST(r.fda_year AS VARCHAR), 'unknown')",
}


def counts_from_store(store: str | Path, *, drug_map: DrugMap, groups: dict[str, TermGroup],
                      roles: Iterable[str] = ROLES, stratify: Iterable[str] = (), memory_limit: str = "4GB",
                      threads: int = 2) -> tuple[CountTable, pd.DataFrame]:
    """Build the count table from a FAERS store (read-only).  Returns the table and the drug-name
    mapping audit (verbatim name, prod_ai, rows, drug key, how matched)."""
    p = Path(store)
    roles = tuple(r.strip().upper() for r in roles)
    bad = [r for r in roles if r not in ROLES]
    if bad or not roles:
        raise InputError([(Location("--roles"), f"roles must be among {', '.join(ROLES)}; got {', '.join(roles) or 'none'}")])
    stratify = tuple(stratify)
    unknown = [s for s in stratify if s not in STRATA]
    if unknown:
        raise InputError([(Location("--stratify"), f"unknown stratum {unknown[0]!r}; choose from {', '.join(STRATA)}")])
    con = open_store(p, read_only=True, memory_limit=memory_limit, threads=threads)
    try:
        with store_errors(p, doing="count reports in the store"):
            role_list = ", ".join("'" + r + "'" for r in roles)  # validated against ROLES above
            rows = con.execute(f"""SELECT drugname, prod_ai, count(*) AS rows FROM faers_drug
                WHERE role_cod IN ({role_list}) GROUP BY ALL ORDER BY ALL""").fetchall()
            names = pd.DataFrame([(d, a, n, *drug_map.key(d, a)) for d, a, n in rows],
                                 columns=["drugname", "prod_ai", "rows", "drug", "matched"])
            con.execute(f"""CREATE TEMP VIEW _kw_sd AS
                SELECT d.primaryid AS rid, d.drugname AS name, d.prod_ai AS ai FROM faers_drug d
                SEMI JOIN faers_reports r ON r.primaryid = d.primaryid
                WHERE d.role_cod IN ({role_list})""")
            con.execute("""CREATE TEMP VIEW _kw_se AS
                SELECT e.primaryid AS rid, e.pt AS event FROM faers_reac e
                SEMI JOIN faers_reports r ON r.primaryid = e.primaryid""")
            strata_rel = None
            if stratify:
                expr = " || '|' || ".join(STRATA[s] for s in stratify)
                con.execute(f"CREATE TEMP VIEW _kw_ss AS SELECT r.primaryid AS rid, {expr} AS s FROM faers_reports r")
                strata_rel = "_kw_ss"
            quarters = [q for (q,) in con.execute("SELECT DISTINCT quarter FROM faers_files ORDER BY 1").fetchall()]
            table = from_relations(
                con, "_kw_sd", "_kw_se", strata=strata_rel, groups=groups, drug_map=drug_map,
                source=f"FAERS store {p.name} ({_span(quarters)}; roles {', '.join(roles)})",
                strata_label="+".join(stratify) or None,
                drug_names_sql=f"SELECT DISTINCT drugname AS name, prod_ai AS ai FROM faers_drug "
                               f"WHERE role_cod IN ({role_list})",
                event_names_sql="SELECT DISTINCT pt FROM faers_reac")
    finally:
        con.close()
    return table, names


def _span(quarters: list[str]) -> str:
    """'2023Q1, 2023Q2' for a few quarters, '2012Q4–2026Q2 (55 quarters)' for many."""
    if len(quarters) <= 4:
        return ", ".join(quarters)
    return f"{quarters[0]}–{quarters[-1]} ({len(quarters)} quarters)"
