"""The concept-set mapping: which vocabulary codes feed which canonical kind.

The built-in file ``data/concept_sets.toml`` holds the sets ketaweight needs (body weight, PHQ-9,
ketamine and esketamine with their descendants, major depressive disorder, routes, severities, adverse
events, units).  Users extend it with their own TOML file of the same shape: a set named there adds its
codes to the built-in set of that name, its options replace the built-in ones, and new sets are added.
The same file serves the FHIR reader (codes there are matched by system and code).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ketaweight.core.errors import InputError, Location
from ketaweight.core.schema import LIFESTYLE_KINDS, MEASUREMENT_KINDS, ROUTES, SEVERITIES

GROUPS = ("measurement", "patient", "counted", "drug", "condition", "route", "severity", "adverse_event", "lifestyle")
"""Sections that hold concept sets, in the order the import report lists them."""

ALLOWED_NAMES: dict[str, tuple[str, ...] | None] = {
    "measurement": tuple(MEASUREMENT_KINDS),
    "patient": ("height_cm", "atypical_features"),
    "counted": None,
    "drug": ("ketamine", "esketamine"),
    "condition": None,
    "route": ROUTES,
    "severity": SEVERITIES,
    "adverse_event": None,
    "lifestyle": LIFESTYLE_KINDS,
}
"""Set names each section may use (None: any name, e.g. a MedDRA preferred term)."""

BUILTIN = "concept_sets.toml"


@dataclass(frozen=True)
class Code:
    """One selector: a code in a vocabulary, or (for ingredients) a concept's exact name in a class."""

    vocabulary: str
    code: str | None = None
    name: str | None = None
    concept_class: str | None = None

    def describe(self) -> str:
        if self.code is not None:
            return f"{self.vocabulary} {self.code}"
        return f"{self.vocabulary} {self.concept_class or 'concept'} named '{self.name}'"


@dataclass(frozen=True)
class ConceptSet:
    """Codes that together mean one canonical thing (``group``/``name``, e.g. measurement/weight)."""

    group: str
    name: str
    codes: tuple[Code, ...]
    descendants: bool = False
    unit_if_missing: str | None = None
    source_values: tuple[str, ...] = ()


@dataclass(frozen=True)
class Mapping:
    """Every concept set, the population rule, the adverse-event window and the unit tables."""

    sets: tuple[ConceptSet, ...]
    population: tuple[str, ...]
    ae_window_days: int
    units: dict[str, tuple[str, float]] = field(default_factory=dict)  # source unit code → (store unit, factor)
    dose_units: dict[str, float] = field(default_factory=dict)  # dose unit → factor to mg
    files: tuple[str, ...] = ()

    def group(self, group: str) -> tuple[ConceptSet, ...]:
        return tuple(s for s in self.sets if s.group == group)

    def get(self, group: str, name: str) -> ConceptSet | None:
        return next((s for s in self.sets if s.group == group and s.name == name), None)


def _read(path: Path | None) -> tuple[dict[str, Any], str]:
    if path is None:
        text = resources.files("ketaweight.sources.omop").joinpath("data", BUILTIN).read_text(encoding="utf-8")
        label = f"built-in {BUILTIN}"
    else:
        if not path.is_file():
            raise InputError([(Location(str(path)), "mapping file not found")])
        text, label = path.read_text(encoding="utf-8"), str(path)
    try:
        return tomllib.loads(text), label
    except tomllib.TOMLDecodeError as exc:
        raise InputError([(Location(label), f"not valid TOML: {exc}")]) from exc


def _codes(raw: Any, label: str, where: str) -> list[Code]:
    problems = []
    out = []
    if not isinstance(raw, list):
        raise InputError([(Location(label, column=where), "codes must be a list of {vocabulary, code} tables")])
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("vocabulary"), str):
            problems.append((Location(label, column=f"{where}[{i}]"), "each code needs a vocabulary (a string)"))
            continue
        unknown = set(item) - {"vocabulary", "code", "name", "concept_class"}
        if unknown:
            problems.append((Location(label, column=f"{where}[{i}]"), f"unknown key(s) {sorted(unknown)}"))
        if ("code" in item) == ("name" in item):
            problems.append((Location(label, column=f"{where}[{i}]"), "give exactly one of code or name"))
            continue
        out.append(Code(item["vocabulary"], str(item["code"]) if "code" in item else None, item.get("name"),
                        item.get("concept_class")))
    if problems:
        raise InputError(problems)
    return out


def load_mapping(extra: Path | str | None = None) -> Mapping:
    """The built-in concept sets, extended by ``extra`` (a TOML file of the same shape) when given."""
    base, base_label = _read(None)
    layers = [(base, base_label)]
    if extra is not None:
        layers.append(_read(Path(extra)))
    sets: dict[tuple[str, str], dict[str, Any]] = {}
    population: list[str] = []
    window = 1
    units: dict[str, tuple[str, float]] = {}
    dose_units: dict[str, float] = {}
    problems: list[tuple[Location, str]] = []
    for data, label in layers:
        unknown = set(data) - set(GROUPS) - {"population", "adverse_events", "units", "dose_units"}
        for key in sorted(unknown):
            problems.append((Location(label, column=key), f"unknown section; known: {', '.join(GROUPS)}, population, "
                                                          "adverse_events, units, dose_units"))
        for group in GROUPS:
            for name, body in (data.get(group) or {}).items():
                where = f"{group}.{name}"
                allowed = ALLOWED_NAMES[group]
                if allowed is not None and name not in allowed:
                    problems.append((Location(label, column=where), f"unknown {group} '{name}'; use one of {', '.join(allowed)}"))
                    continue
                if not isinstance(body, dict):
                    problems.append((Location(label, column=where), "must be a table"))
                    continue
                bad = set(body) - {"codes", "descendants", "unit_if_missing", "source_values"}
                if bad:
                    problems.append((Location(label, column=where), f"unknown key(s) {sorted(bad)}"))
                    continue
                current = sets.setdefault((group, name), {"codes": [], "descendants": False, "unit_if_missing": None,
                                                          "source_values": []})
                try:
                    new_codes = _codes(body.get("codes", []), label, where + ".codes")
                except InputError as exc:
                    problems += exc.problems
                    continue
                current["codes"] += [c for c in new_codes if c not in current["codes"]]
                for key in ("descendants", "unit_if_missing"):
                    if key in body:
                        current[key] = body[key]
                current["source_values"] += [str(v).lower() for v in body.get("source_values", [])]
        if "population" in data:
            population = list(data["population"].get("any_of", []))
        if "adverse_events" in data:
            window = int(data["adverse_events"].get("window_days", window))
        for code, spec in (data.get("units") or {}).items():
            units[code] = (str(spec["unit"]), float(spec.get("factor", 1.0)))
        for code, factor in (data.get("dose_units") or {}).items():
            dose_units[code.lower()] = float(factor)
    names = {name for (_g, name) in sets}
    for name in population:
        if name not in names:
            problems.append((Location(layers[-1][1], column="population.any_of"), f"'{name}' is not a concept set"))
    if problems:
        raise InputError(problems)
    built = tuple(
        ConceptSet(group, name, tuple(body["codes"]), bool(body["descendants"]), body["unit_if_missing"],
                   tuple(dict.fromkeys(body["source_values"])))
        for (group, name), body in sets.items()
    )
    return Mapping(built, tuple(population), window, units, dose_units, tuple(label for _d, label in layers))
