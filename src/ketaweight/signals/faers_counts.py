"""Count tables from the FAERS store: deduplicated reports, mapped drugs, role filter, strata.

Drug identity is resolved at scan time from the verbatim ``drugname`` and ``prod_ai`` through
the (user-extendable) :class:`~ketaweight.signals.mapping.DrugMap`, so extending the map never
needs a re-ingest.  Only reports in ``faers_reports`` (after deduplication) count.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import duckdb
import pandas as pd

from ketaweight.core.errors import InputError, Location
from ketaweight.signals.mapping import DrugMap, TermGroup
from ketaweight.signals.tables import CountTable, from_relations

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
                      roles: Iterable[str] = ROLES, stratify: Iterable[str] = ()) -> tuple[CountTable, pd.DataFrame]:
    """Build the count table from a FAERS store.  Returns the table and the drug-name mapping
    audit (verbatim name, prod_ai, drug key, how matched, rows)."""
    p = Path(store)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such store; create it with `ketaweight signals ingest`")
    roles = tuple(r.upper() for r in roles)
    bad = [r for r in roles if r not in ROLES]
    if bad or not roles:
        raise InputError([(Location("--roles"), f"roles must be among {', '.join(ROLES)}; got {', '.join(roles) or 'none'}")])
    stratify = tuple(stratify)
    unknown = [s for s in stratify if s not in STRATA]
    if unknown:
        raise InputError([(Location("--stratify"), f"unknown stratum {unknown[0]!r}; choose from {', '.join(STRATA)}")])
    try:
        con = duckdb.connect(str(p), read_only=True)
    except duckdb.Error as exc:
        raise InputError([(Location(str(p)), f"cannot open the store ({exc}); is another process writing it?")]) from exc
    try:
        tables = {t for (t,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "faers_reports" not in tables:
            raise InputError([(Location(str(p)), "no FAERS data in this store; run `ketaweight signals ingest` first")])
        names = con.execute(f"""SELECT drugname, prod_ai, count(*) AS rows FROM faers_drug
            WHERE role_cod IN ({', '.join("'" + r + "'" for r in roles)}) GROUP BY ALL""").df()
        keys = [drug_map.key(d, a) for d, a in zip(names["drugname"], names["prod_ai"], strict=True)]
        names["drug"] = [k for k, _ in keys]
        names["matched"] = [h for _, h in keys]
        con.register("_kw_names", names[["drugname", "prod_ai", "drug"]])
        role_list = ", ".join("'" + r + "'" for r in roles)
        con.execute(f"""CREATE TEMP VIEW _kw_sd AS
            SELECT d.primaryid AS rid, n.drug FROM faers_drug d
            JOIN faers_reports r ON r.primaryid = d.primaryid
            JOIN _kw_names n ON n.drugname IS NOT DISTINCT FROM d.drugname AND n.prod_ai IS NOT DISTINCT FROM d.prod_ai
            WHERE d.role_cod IN ({role_list})""")
        con.execute("""CREATE TEMP VIEW _kw_se AS
            SELECT e.primaryid AS rid, e.pt AS event FROM faers_reac e JOIN faers_reports r ON r.primaryid = e.primaryid""")
        strata_rel = None
        if stratify:
            expr = " || '|' || ".join(STRATA[s] for s in stratify)
            con.execute(f"CREATE TEMP VIEW _kw_ss AS SELECT r.primaryid AS rid, {expr} AS s FROM faers_reports r")
            strata_rel = "_kw_ss"
        quarters = [q for (q,) in con.execute("SELECT DISTINCT quarter FROM faers_files ORDER BY 1").fetchall()]
        table = from_relations(con, "_kw_sd", "_kw_se", strata=strata_rel, groups=groups,
                               source=f"FAERS store {p.name} ({', '.join(quarters)}; roles {', '.join(roles)})",
                               strata_label="+".join(stratify) or None)
    finally:
        con.close()
    return table, names
