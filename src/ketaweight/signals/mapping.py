"""User-extendable vocabularies: drug names → ingredients, event term groups, controls.

The shipped files live in ``ketaweight/signals/data/``; users add their own files of the same
layout, which extend (and, for the same key, override) the shipped entries:

* ``drug_names.csv`` — ``name,ingredient`` rows (``#`` starts a comment line).
* ``event_groups.toml`` — ``[key]`` tables with ``label`` and ``terms`` (MedDRA PTs).
* ``controls.toml`` — ``[[control]]`` entries with ``drug``, ``events``, ``expected`` and ``source``.

Drug names are matched after cleaning (:func:`clean_name`): lower case, punctuation and dose
strengths removed.  Lookup tries, in order, the whole cleaned name, the name without and
then inside a trailing parenthesis (``"SPRAVATO (ESKETAMINE)"``), the name with salt words
removed (``hydrochloride``, ``hcl`` …), and finally a one-edit spelling match against the
mapped names (for names of 7+ characters, e.g. ``ketamne``).  Every match records how it
was made, so the mapping can be audited.
"""

from __future__ import annotations

import csv
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ketaweight.core.errors import InputError, Location

__all__ = [
    "DrugMap",
    "TermGroup",
    "Control",
    "clean_name",
    "clean_term",
    "load_drug_map",
    "load_term_groups",
    "load_controls",
]

_SALTS = {
    "hydrochloride", "hcl", "hydrobromide", "sodium", "potassium", "calcium", "magnesium",
    "sulfate", "sulphate", "maleate", "mesylate", "fumarate", "tartrate", "citrate", "acetate",
    "phosphate", "succinate", "besylate", "oxalate", "trihydrate", "dihydrate", "monohydrate",
    "hemihydrate", "bromide", "chloride", "nitrate", "salt", "base", "anhydrous",
}
_FORMS = {
    "tablet", "tablets", "tab", "tabs", "capsule", "capsules", "cap", "injection", "inj",
    "solution", "spray", "nasal", "oral", "iv", "im", "vial", "ampoule", "ampule", "powder",
    "xr", "er", "sr", "cr", "la", "odt",
}
_DOSE = re.compile(r"\b\d+(?:[.,]\d+)?\s*(?:mg|mcg|ug|g|ml|%|mg/ml|mg/kg|iu|units?)\b(?:\s*/\s*\d*\s*(?:ml|l|kg))?")
_PUNCT = re.compile(r"[^\w\s\\\-]+")
_SPACES = re.compile(r"\s+")
_PAREN = re.compile(r"^(?P<outer>[^()]*)\((?P<inner>[^()]*)\)\s*$")


def clean_name(name: str | None) -> str:
    """Lower-case a drug name, drop dose strengths and punctuation, collapse spaces."""
    if name is None:
        return ""
    s = str(name).strip().lower()
    s = _DOSE.sub(" ", s)
    s = s.replace("/", " ")
    s = _PUNCT.sub(lambda m: " " if "(" not in m.group() and ")" not in m.group() else m.group(), s)
    s = _SPACES.sub(" ", s).strip(" .-")
    return s


def clean_term(term: str | None) -> str:
    """Normalise a MedDRA term for matching: lower case, single spaces, stripped."""
    if term is None:
        return ""
    return _SPACES.sub(" ", str(term).strip().lower())


def _strip_words(s: str, words: set[str]) -> str:
    return " ".join(t for t in s.split(" ") if t and t not in words)


@dataclass(frozen=True)
class DrugMap:
    """A name → ingredient dictionary with the lookup rules of the module docstring."""

    names: dict[str, str]

    def __post_init__(self) -> None:
        deletes: dict[str, str] = {}
        for key, ing in self.names.items():
            if len(key) >= 7:
                for i in range(len(key)):
                    deletes.setdefault(key[:i] + key[i + 1 :], ing)
        object.__setattr__(self, "_deletes", deletes)
        object.__setattr__(self, "_keys", {})  # key() memo: a store has each verbatim name many times

    @property
    def ingredients(self) -> set[str]:
        return set(self.names.values())

    def lookup(self, name: str | None) -> tuple[str | None, str]:
        """(ingredient or None, how it matched: exact | parenthesis | salt | spelling | none)."""
        s = clean_name(name)
        if not s:
            return None, "none"
        # combination products written "a\b": map only when every part maps to one ingredient
        if "\\" in s:
            parts = {self.lookup(p)[0] for p in s.split("\\") if p.strip()}
            if len(parts) == 1 and None not in parts:
                return parts.pop(), "exact"
            return None, "none"
        if s in self.names:
            return self.names[s], "exact"
        m = _PAREN.match(s)
        if m:
            for part in (m.group("outer").strip(), m.group("inner").strip()):
                if part in self.names:
                    return self.names[part], "parenthesis"
            s = (m.group("outer") + " " + m.group("inner")).strip()
        s2 = _strip_words(_strip_words(s, _SALTS), _FORMS)
        if s2 in self.names:
            return self.names[s2], "salt"
        for cand in (s, s2):
            if len(cand) >= 7:
                if cand in self._deletes:  # type: ignore[attr-defined]
                    return self._deletes[cand], "spelling"  # type: ignore[attr-defined]
                for i in range(len(cand)):
                    d = cand[:i] + cand[i + 1 :]
                    if d in self.names:
                        return self.names[d], "spelling"
                    if d in self._deletes:  # type: ignore[attr-defined]
                        return self._deletes[d], "spelling"  # type: ignore[attr-defined]
        return None, "none"

    def key(self, drugname: str | None, prod_ai: str | None = None) -> tuple[str, str]:
        """The drug identity used for counting: the mapped ingredient if the brand/verbatim
        name or the active ingredient maps; else the cleaned active ingredient; else the
        cleaned, salt-stripped verbatim name.  Returns (key, how)."""
        memo = self._keys  # type: ignore[attr-defined]
        hit = memo.get((drugname, prod_ai))
        if hit is None:
            hit = memo[(drugname, prod_ai)] = self._key(drugname, prod_ai)
        return hit

    def _key(self, drugname: str | None, prod_ai: str | None) -> tuple[str, str]:
        for value in (drugname, prod_ai):
            ing, how = self.lookup(value)
            if ing is not None:
                return ing, how
        for value in (prod_ai, drugname):
            s = clean_name(value)
            if s:
                return (_strip_words(s, _SALTS) or s), "unmapped"
        return "", "none"


def _data_path(name: str) -> Path:
    return Path(str(resources.files("ketaweight.signals").joinpath("data", name)))


def _read_drug_csv(path: Path, names: dict[str, str]) -> None:
    problems: list[tuple[Location, str]] = []
    with path.open(encoding="utf-8", newline="") as fh:
        lines = [(i, ln) for i, ln in enumerate(fh, start=1) if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        return
    reader = csv.reader([ln for _, ln in lines])
    header = [h.strip().lower() for h in next(reader)]
    if header[:2] != ["name", "ingredient"]:
        raise InputError([(Location(str(path), lines[0][0]), f"header must be 'name,ingredient', found {','.join(header)!r}")])
    for (lineno, _), row in zip(lines[1:], reader, strict=True):
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            problems.append((Location(str(path), lineno), "expected two non-empty fields: name,ingredient"))
            continue
        names[clean_name(row[0])] = clean_name(row[1])
    if problems:
        raise InputError(problems)


def load_drug_map(extra: Iterable[str | Path] = (), *, include_default: bool = True) -> DrugMap:
    """The shipped drug-name map, extended (and overridden) by ``extra`` CSV files."""
    names: dict[str, str] = {}
    if include_default:
        _read_drug_csv(_data_path("drug_names.csv"), names)
    for p in extra:
        _read_drug_csv(Path(p), names)
    # every ingredient maps to itself
    for ing in list(names.values()):
        names.setdefault(ing, ing)
    return DrugMap(names)


@dataclass(frozen=True)
class TermGroup:
    """A named set of MedDRA preferred terms (lower-case) counted as one event."""

    key: str
    label: str
    terms: frozenset[str]


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+), column (\d+)", str(exc))
        loc = Location(str(path), int(m.group(1)) if m else None)
        raise InputError([(loc, f"not valid TOML: {exc}")]) from exc


def load_term_groups(extra: Iterable[str | Path] = (), *, include_default: bool = True) -> dict[str, TermGroup]:
    """The shipped term groups, extended (and overridden by key) by ``extra`` TOML files."""
    groups: dict[str, TermGroup] = {}
    paths = ([_data_path("event_groups.toml")] if include_default else []) + [Path(p) for p in extra]
    for path in paths:
        doc = _read_toml(path)
        problems = []
        for key, body in doc.items():
            if not isinstance(body, dict) or not isinstance(body.get("terms"), list) or not body["terms"]:
                problems.append((Location(str(path), column=key), "a group needs a non-empty list 'terms'"))
                continue
            groups[key] = TermGroup(key=key, label=str(body.get("label", key)),
                                    terms=frozenset(clean_term(t) for t in body["terms"]))
        if problems:
            raise InputError(problems)
    return groups


@dataclass(frozen=True)
class Control:
    """A reference drug–event pair with a known expected result ("positive" or "null")."""

    drug: str
    events: str
    expected: str
    source: str


def load_controls(extra: Iterable[str | Path] = (), *, include_default: bool = True) -> list[Control]:
    """The shipped controls plus those in ``extra`` TOML files."""
    out: list[Control] = []
    paths = ([_data_path("controls.toml")] if include_default else []) + [Path(p) for p in extra]
    for path in paths:
        doc = _read_toml(path)
        problems = []
        for i, c in enumerate(doc.get("control", []), start=1):
            exp = str(c.get("expected", ""))
            if not c.get("drug") or not c.get("events") or exp not in ("positive", "null"):
                problems.append((Location(str(path), column=f"control #{i}"),
                                 "needs drug, events and expected = 'positive' or 'null'"))
                continue
            out.append(Control(drug=clean_name(c["drug"]), events=str(c["events"]), expected=exp,
                               source=str(c.get("source", ""))))
        if problems:
            raise InputError(problems)
    return out
