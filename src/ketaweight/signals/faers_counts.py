"""Count tables from the FAERS store: deduplicated reports, mapped drugs, role filter, strata.

Drug identity is resolved at scan time from the verbatim ``drugname`` and ``prod_ai`` through
the (user-extendable) :class:`~ketaweight.signals.mapping.DrugMap`, so extending the map never
needs a re-ingest.  Only reports in ``faers_reports`` (after deduplication) count, each with the
drug and reaction rows of the quarter its current version came in; the counting runs quarter by
quarter on the integer keys of :mod:`~ketaweight.signals.faers_keys` — or, when the scan maps the
names exactly as the ingest did and counts all roles without strata, is read from the totals the
ingest keeps (:mod:`~ketaweight.signals.faers_count_totals`; the same table either way).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ketaweight.core.errors import InputError, Location
from ketaweight.signals.counting import build_table, count_parts, map_names
from ketaweight.signals.faers_count_totals import DRUG_NAMES, EVENT_NAMES, load_totals, quarter_parts
from ketaweight.signals.faers_keys import ROLE_CODES, has_keys, temporary_keys
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
                      threads: int = 2) -> CountTable:
    """The count table of a FAERS store (opened read-only)."""
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
            if not has_keys(con):
                temporary_keys(con)
            role_list = ", ".join(str(ROLE_CODES[r]) for r in roles)  # validated against ROLES above
            all_quarters = [q for (q,) in con.execute("SELECT DISTINCT quarter FROM faers_files ORDER BY 1").fetchall()]
            source = f"FAERS store {p.name} ({_span(all_quarters)}; roles {', '.join(roles)})"
            strata_label = "+".join(stratify) or None
            codes = map_names(con, drug_names=DRUG_NAMES, event_names=EVENT_NAMES, groups=groups, source=source,
                              drug_map=drug_map)
            # the totals kept at ingest stand in for counting every quarter when they were counted the same way
            totals = load_totals(con, codes) if set(roles) == set(ROLES) and not stratify else None
            strata_n: dict[str, list] | None = {} if stratify else None
            if totals is None:
                parts = quarter_parts(con, role_list, " || '|' || ".join(STRATA[s] for s in stratify) or None)
                totals = count_parts(con, codes, parts, source=source, strata_n=strata_n)
            table = build_table(codes, totals, groups=groups, source=source, strata_n=strata_n,
                                strata_label=strata_label, drug_map=drug_map)
    finally:
        con.close()
    return table


def _span(quarters: list[str]) -> str:
    """'2023Q1, 2023Q2' for a few quarters, '2012Q4–2026Q2 (55 quarters)' for many."""
    if len(quarters) <= 4:
        return ", ".join(quarters)
    return f"{quarters[0]}–{quarters[-1]} ({len(quarters)} quarters)"
