"""The import report of an OMOP CDM or FHIR import: what was found, what came in, and every row left out
with its reason.

Two forms: :meth:`ImportReport.to_dict` / :meth:`ImportReport.lines` mask counts under 11 (for sharing);
``exact=True`` gives the data owner's own receipt with exact counts and example record ids (CDM row ids,
FHIR resource ids and file lines; never a patient identifier).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ketaweight.core.privacy import mask_count, masked_or_exact


@dataclass(frozen=True)
class Exclusion:
    """Rows of one source table (or resource type) left out for one reason."""

    table: str
    reason: str
    n: int
    examples: tuple[str, ...] = ()  # record ids / locations (owner's receipt only)


@dataclass(frozen=True)
class ConceptNote:
    """How one selector of a concept set resolved in the source's vocabulary."""

    concept_set: str
    selector: str
    n_concepts: int  # concepts matched, descendants included
    note: str = ""


@dataclass
class ImportReport:
    """Counts of one import.  ``rows`` and ``kinds`` are what the store received."""

    format: str
    source: str
    persons_in_source: int = 0
    persons_selected: int = 0
    persons_imported: int = 0
    population: str = ""
    rows: dict[str, int] = field(default_factory=dict)
    kinds: dict[str, int] = field(default_factory=dict)
    found: dict[str, int] = field(default_factory=dict)  # e.g. persons with major depressive disorder
    excluded: list[Exclusion] = field(default_factory=list)
    concepts: list[ConceptNote] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def exclude(self, table: str, reason: str, n: int, examples: tuple[str, ...] = ()) -> None:
        """Count ``n`` rows of ``table`` left out for ``reason`` (nothing when n is 0)."""
        if n:
            self.excluded.append(Exclusion(table, reason, int(n), tuple(examples)[:5]))

    @property
    def n_excluded(self) -> int:
        return sum(e.n for e in self.excluded)

    def to_dict(self, *, exact: bool = False) -> dict[str, Any]:
        """JSON form; counts under 11 masked unless ``exact`` (the owner's receipt, with example record ids)."""
        c = (lambda n: int(n)) if exact else masked_or_exact
        return {
            "format": self.format, "source": self.source, "exact_counts": exact,
            "persons": {"in_source": c(self.persons_in_source), "selected": c(self.persons_selected),
                        "imported": c(self.persons_imported), "population": self.population},
            "rows": {k: c(v) for k, v in self.rows.items()},
            "measurement_kinds": {k: c(v) for k, v in self.kinds.items()},
            "found": {k: c(v) for k, v in self.found.items()},
            "excluded": [{"table": e.table, "reason": e.reason, "n": c(e.n),
                          **({"examples": list(e.examples)} if exact and e.examples else {})} for e in self.excluded],
            "concepts": [{"concept_set": n.concept_set, "selector": n.selector, "concepts": n.n_concepts,
                          **({"note": n.note} if n.note else {})} for n in self.concepts],
            "notes": list(self.notes),
        }

    def write(self, path: Path, *, exact: bool = False) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(exact=exact), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    def lines(self, *, exact: bool = False) -> list[str]:
        """Plain-text lines for a terminal (counts under 11 shown as <11 unless ``exact``)."""
        m = (lambda n: f"{int(n):,}") if exact else mask_count
        out = [f"{self.format} import from {self.source}",
               f"persons: {m(self.persons_in_source)} in the source, {m(self.persons_selected)} selected"
               f"{' (' + self.population + ')' if self.population else ''}, {m(self.persons_imported)} imported"]
        out += [f"  {k}: {m(v)}" for k, v in self.found.items()]
        out.append("imported rows: " + ", ".join(f"{k} {m(v)}" for k, v in self.rows.items()))
        if self.kinds:
            out.append("measurements by kind: " + ", ".join(f"{k} {m(v)}" for k, v in self.kinds.items()))
        if self.excluded:
            out.append("left out:")
            for e in self.excluded:
                ex = f" (e.g. {', '.join(e.examples)})" if exact and e.examples else ""
                out.append(f"  {e.table}: {m(e.n)} {e.reason}{ex}")
        else:
            out.append("left out: nothing")
        by_set: dict[str, list[ConceptNote]] = {}
        for n in self.concepts:
            by_set.setdefault(n.concept_set, []).append(n)
        missing = [(name, notes) for name, notes in by_set.items() if all(n.n_concepts == 0 for n in notes)]
        local = [name for name, notes in missing if all(n.selector.startswith("ketaweight ") for n in notes)]
        standard = [(name, notes) for name, notes in missing if name not in local]
        if standard:
            out.append("concept sets not found in this database's vocabulary:")
            out += [f"  {name}: {', '.join(n.selector for n in notes)}" for name, notes in standard]
        if local:
            out.append(f"not found, coded only in ketaweight's local vocabulary (add your codes with --mapping): {', '.join(local)}")
        out += [f"note: {n}" for n in self.notes]
        return out
