"""Resolve concept sets in a CDM's own vocabulary: codes → concept ids, with descendants through
``concept_ancestor``, plus the unit, gender and drug-strength lookups the import needs.

Nothing here knows a concept id in advance; every id comes from the database being read.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from ketaweight.sources.import_report import ConceptNote
from ketaweight.sources.omop.cdm import CdmConnection
from ketaweight.sources.omop.mapping import Code, Mapping


def sql_str(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def id_list(ids: list[int] | set[int]) -> str:
    """``(1, 2, 3)`` for an IN clause (``(NULL)`` matches nothing when empty)."""
    values = sorted({int(i) for i in ids})
    return "(" + (", ".join(map(str, values)) if values else "NULL") + ")"


def _selector_sql(code: Code) -> str:
    parts = [f"vocabulary_id = {sql_str(code.vocabulary)}"]
    if code.code is not None:
        parts.append(f"concept_code = {sql_str(code.code)}")
    else:
        parts.append(f"lower(concept_name) = {sql_str((code.name or '').lower())}")
    if code.concept_class:
        parts.append(f"concept_class_id = {sql_str(code.concept_class)}")
    return "(" + " AND ".join(parts) + ")"


@dataclass(frozen=True)
class Resolved:
    """Concept ids per (group, name), and how each selector resolved."""

    members: dict[tuple[str, str], set[int]]
    notes: list[ConceptNote]
    ambiguous: dict[str, set[int]]  # group → concept ids claimed by two sets of that group (left out of both)
    ingredients: dict[str, set[int]]  # drug name → its ingredient-class concept ids
    descendants_resolved: bool

    def ids(self, group: str, name: str | None = None) -> set[int]:
        return set().union(*[v for (g, n), v in self.members.items() if g == group and (name is None or n == name)] or [set()])

    def frame(self, groups: tuple[str, ...]) -> pa.Table:
        """(concept_id, grp, name) for the given groups (ambiguous ids removed)."""
        rows = [(cid, g, n) for (g, n), ids in self.members.items() if g in groups for cid in sorted(ids)]
        return pa.table({"concept_id": pa.array([r[0] for r in rows], pa.int64()),
                         "grp": pa.array([r[1] for r in rows], pa.string()),
                         "name": pa.array([r[2] for r in rows], pa.string())})


def resolve(cdm: CdmConnection, mapping: Mapping, has_ancestor: bool) -> Resolved:
    """Resolve every concept set of ``mapping`` in the CDM's vocabulary (one query for the codes, one for
    descendants, one for the classes of what was found)."""
    selectors = [(s, code) for s in mapping.sets for code in s.codes]
    if not selectors:
        return Resolved({}, [], {}, {}, has_ancestor)
    concept = cdm.table("concept")
    where = " OR ".join(sorted({_selector_sql(c) for _s, c in selectors}))
    found = cdm.query(f"SELECT CAST(concept_id AS BIGINT) AS concept_id, vocabulary_id, concept_code, concept_name, "
                      f"concept_class_id FROM {concept} WHERE {where}").to_pylist()

    def matches(code: Code, row: dict) -> bool:
        if row["vocabulary_id"] != code.vocabulary:
            return False
        if code.concept_class and row["concept_class_id"] != code.concept_class:
            return False
        if code.code is not None:
            return row["concept_code"] == code.code
        return (row["concept_name"] or "").lower() == (code.name or "").lower()

    direct: dict[tuple[str, str], dict[Code, set[int]]] = {}
    for s, code in selectors:
        direct.setdefault((s.group, s.name), {})[code] = {r["concept_id"] for r in found if matches(code, r)}
    wants_descendants = {(s.group, s.name) for s in mapping.sets if s.descendants}
    roots = {cid for key in wants_descendants for ids in direct.get(key, {}).values() for cid in ids}
    below: dict[int, set[int]] = {}
    if roots and has_ancestor:
        rows = cdm.query(f"SELECT CAST(ancestor_concept_id AS BIGINT) AS a, CAST(descendant_concept_id AS BIGINT) AS d "
                         f"FROM {cdm.table('concept_ancestor')} WHERE ancestor_concept_id IN {id_list(roots)}").to_pydict()
        for a, d in zip(rows["a"], rows["d"]):
            below.setdefault(a, set()).add(d)
    members: dict[tuple[str, str], set[int]] = {}
    notes: list[ConceptNote] = []
    for s in mapping.sets:
        key = (s.group, s.name)
        ids: set[int] = set()
        for code, hit in direct.get(key, {}).items():
            expanded = set(hit)
            if s.descendants:
                for cid in hit:
                    expanded |= below.get(cid, set())
            ids |= expanded
            note = ""
            if hit and s.descendants and not has_ancestor:
                note = "concept_ancestor is missing: descendants not resolved"
            notes.append(ConceptNote(f"{s.group}.{s.name}", code.describe(), len(expanded), note))
        members[key] = ids
    # A concept in two sets of one group (e.g. a ketamine + esketamine product) belongs to neither.
    ambiguous: dict[str, set[int]] = {}
    for group in {g for g, _n in members}:
        seen: dict[int, int] = {}
        for (g, _n), ids in members.items():
            if g == group:
                for cid in ids:
                    seen[cid] = seen.get(cid, 0) + 1
        dup = {cid for cid, k in seen.items() if k > 1}
        if dup:
            ambiguous[group] = dup
            for key in [k for k in members if k[0] == group]:
                members[key] = members[key] - dup
    drug_ids = {cid for (g, _n), ids in members.items() if g == "drug" for cid in ids}
    ingredients: dict[str, set[int]] = {}
    if drug_ids:
        classes = cdm.query(f"SELECT CAST(concept_id AS BIGINT) AS concept_id, concept_class_id FROM {concept} "
                            f"WHERE concept_id IN {id_list(drug_ids)}").to_pydict()
        ingredient_ids = {c for c, k in zip(classes["concept_id"], classes["concept_class_id"]) if k == "Ingredient"}
        for (g, n), ids in members.items():
            if g == "drug":
                ingredients[n] = ids & ingredient_ids
    return Resolved(members, notes, ambiguous, ingredients, has_ancestor)


def concept_codes(cdm: CdmConnection, vocabulary: str | None, codes: list[str] | None = None,
                  ids: set[int] | None = None) -> dict[int, str]:
    """concept_id → concept_code for codes of one vocabulary, or for given ids."""
    if ids is not None:
        if not ids:
            return {}
        where = f"concept_id IN {id_list(ids)}"
    else:
        if not codes:
            return {}
        where = f"vocabulary_id = {sql_str(vocabulary or '')} AND concept_code IN ({', '.join(sql_str(c) for c in codes)})"
    rows = cdm.query(f"SELECT CAST(concept_id AS BIGINT) AS concept_id, concept_code FROM {cdm.table('concept')} "
                     f"WHERE {where}").to_pydict()
    return dict(zip(rows["concept_id"], rows["concept_code"]))
