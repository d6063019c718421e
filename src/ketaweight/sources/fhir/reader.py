"""Read FHIR R4 resources (bulk-export NDJSON, one resource type per file, and transaction/collection
Bundles) into ketaweight's canonical tables.

Every resource of a type ketaweight reads is validated (:data:`Validation`): by default every element it
reads against its R4 type and the names of all elements around them, with validators compiled from
``fhir.resources``' R4B models (:mod:`ketaweight.sources.fhir.validation`; R4B shares R4's resources used
here; the package's default models are R5); ``validate="full"`` runs the complete R4B models.  A resource
that does not conform stops the import with its file, line (NDJSON) or entry index (Bundle), resource id
and field.  References are resolved across files (``Patient/<id>``, absolute URLs and a Bundle's
``urn:uuid`` fullUrls); a reference to a patient that is not in the data, an unknown code or a status that
is not a record (entered-in-error, not-done) is counted in the import report, never dropped silently.

The extracted rows take the same shaping as an OMOP CDM (:func:`~ketaweight.sources.omop.reader.shape_canonical`):
the concept sets of the mapping, matched here by code system and code.  FHIR has no observation periods;
each patient is observed from their first to their last record.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.dataset as ds

from ketaweight.core.duckdb_connection import connect
from ketaweight.core.errors import InputError, Location
from ketaweight.core.provenance import Provenance
from ketaweight.sources.fhir.codes import PROVENANCE_SYSTEM, SEVERITY_SYSTEM, SYSTEMS
from ketaweight.sources.fhir.validation import ChoiceError, ValidationError, fast_validator
from ketaweight.sources.import_report import ImportReport
from ketaweight.sources.omop.mapping import Mapping
from ketaweight.sources.omop.cdm import configure
from ketaweight.sources.omop.reader import register_common, shape_canonical

USED_TYPES = ("Patient", "Observation", "MedicationAdministration", "MedicationStatement", "MedicationRequest",
              "Medication", "Condition", "AdverseEvent", "Procedure")
NOT_A_RECORD = {"entered-in-error", "cancelled", "not-done", "stopped", "unknown", "registered"}
"""Statuses whose resource does not record something that happened (counted, not imported)."""
MAX_PROBLEMS = 100

Validation = Literal["read", "full", "none"]
"""How resources are checked: ``read`` — every element ketaweight reads against its R4 type, and the names
of all elements around them (:mod:`ketaweight.sources.fhir.validation`, compiled, the default); ``full`` —
the whole resource with fhir.resources' R4B models (several times slower); ``none`` — only what the
reading itself needs."""

_WORDS = {"extra_forbidden": "unknown element (R4 does not define it here)", "missing": "required element is missing",
          "list_type": "must be an array (the element repeats)", "dict_type": "must be a JSON object",
          "too_short": "an empty array (leave the element out instead)"}
"""pydantic-core's error types in the words of FHIR."""

_RESOURCE_TYPE = re.compile(r'"resourceType"\s*:\s*"([^"]*)"')


def _resource_type(text: str | None) -> str | None:
    """The resourceType of a resource's JSON text, found without parsing it (the validator then parses it)."""
    m = _RESOURCE_TYPE.search(text or "")
    return m.group(1) if m else None

_DATETIME = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?)?)?$")


def parse_time(text: Any) -> tuple[str | None, str | None]:
    """(ISO timestamp text without offset, problem) for a FHIR date/dateTime/instant.

    The offset is dropped: the local wall time is what a day-level analysis needs.  A value given only to
    the month or year is too coarse for a measurement date and is reported.
    """
    if not isinstance(text, str):
        return None, "no date"
    m = _DATETIME.match(text)
    if not m:
        return None, f"not a FHIR dateTime: {text!r}"
    year, month, day, hh, mm, ss, frac = m.groups()
    if day is None:
        return None, "date given only to the month or year"
    stamp = f"{year}-{month}-{day}T{hh or '00'}:{mm or '00'}:{ss or '00'}"
    if frac:
        stamp += (frac + "000000")[:7]
    return stamp, None


def _ref_key(ref: Any, full_urls: dict[str, str]) -> str | None:
    """'Patient/<id>' for a reference (relative, absolute URL or a Bundle's urn:uuid)."""
    if not isinstance(ref, dict) or not isinstance(ref.get("reference"), str):
        return None
    r = ref["reference"]
    if r.startswith("urn:"):
        return full_urls.get(r)
    parts = r.rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    return "/".join(parts[-2:]) if len(parts) >= 2 else None


@dataclass
class _Rows:
    """Column lists of one intermediate relation."""

    cols: dict[str, list[Any]] = field(default_factory=dict)

    def add(self, **values: Any) -> None:
        """Append one row (every row of a relation has the same columns, in the same order)."""
        cols = self.cols
        if not cols:
            cols.update((k, []) for k in values)
        for k, v in values.items():
            cols[k].append(v)


@dataclass
class _Codes:
    """(system, code) → synthetic concept id of a concept set, as the shaping SQL expects."""

    mapping: Mapping
    ids: dict[tuple[str, str], int] = field(default_factory=dict)
    members: list[tuple[int, str, str]] = field(default_factory=list)
    group_of: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        claimed: dict[tuple[str, str, str], list[int]] = {}
        for i, s in enumerate(self.mapping.sets, start=1):
            self.members.append((i, s.group, s.name))
            self.group_of[i] = s.group
            for c in s.codes:
                if c.code is not None and c.vocabulary in SYSTEMS:
                    claimed.setdefault((s.group, SYSTEMS[c.vocabulary], c.code), []).append(i)
        for (_g, system, code), sets in claimed.items():
            if len(sets) == 1:
                self.ids[(system, code)] = sets[0]

    def match(self, concept: Any, groups: tuple[str, ...]) -> tuple[int | None, tuple[str, str] | None]:
        """The set id of the first coding of ``concept`` in one of ``groups``, and the first coding seen."""
        first = None
        codings = concept.get("coding", []) if isinstance(concept, dict) else []
        for c in codings:
            key = (c.get("system", ""), str(c.get("code", "")))
            first = first or key
            sid = self.ids.get(key)
            if sid is not None and self.group_of[sid] in groups:
                return sid, key
        return None, first


class _Reader:
    def __init__(self, mapping: Mapping, validate: Validation) -> None:
        self.mapping, self.validate = mapping, validate
        self.codes = _Codes(mapping)
        self.files: list[str] = []
        self.where: list[tuple[int, str]] = []  # row id → (file index, "line N" / "entry N")
        self.problems: list[tuple[Location, str]] = []
        self.patients: dict[str, int] = {}
        self.persons = _Rows()
        self.meas, self.drugs, self.events = _Rows(), _Rows(), _Rows()
        self.pending: list[tuple[str, int, str | None]] = []  # (relation, index in it, patient key)
        self.medications: dict[str, dict] = {}
        self.unknown: dict[str, Counter] = {}
        self.skipped: Counter = Counter()
        self.full_urls: dict[str, str] = {}
        self.tags: list[tuple[str, str]] = []
        self.models: dict[str, Any] = {}

    # ---------------------------------------------------------------- input
    def resources(self, paths: list[Path]) -> Iterator[tuple[int, dict | None, str | None]]:
        """(row id, parsed resource or None, JSON line or None) of every resource: NDJSON lines unparsed, Bundle
        entries parsed."""
        for path in paths:
            fi = len(self.files)
            self.files.append(str(path))
            if path.suffix.lower() == ".ndjson":
                with path.open("r", encoding="utf-8-sig", errors="strict") as fh:
                    try:
                        for lineno, line in enumerate(fh, start=1):
                            if not line.strip():
                                continue
                            yield self._place(fi, f"line {lineno}"), None, line  # parsed by check()
                    except UnicodeDecodeError as exc:
                        self._problem(Location(str(path)), f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x}); "
                                                           "re-export the file as UTF-8")
            else:
                try:
                    bundle = json.loads(path.read_text(encoding="utf-8-sig"))
                except (ValueError, UnicodeDecodeError) as exc:
                    self._problem(Location(str(path)), f"not a JSON file ({exc})")
                    continue
                if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
                    self._problem(Location(str(path)), "a .json file must hold a FHIR Bundle (bulk exports use .ndjson)")
                    continue
                self._bundle_tags(bundle)
                entries = bundle.get("entry") or []
                for e in entries:
                    res = e.get("resource") if isinstance(e, dict) else None
                    if isinstance(res, dict) and isinstance(e.get("fullUrl"), str) and res.get("id"):
                        self.full_urls[e["fullUrl"]] = f"{res.get('resourceType')}/{res['id']}"
                for i, e in enumerate(entries):
                    res = e.get("resource") if isinstance(e, dict) else None
                    if not isinstance(res, dict):
                        self._problem(Location(str(path), i, line_label="entry"), "entry without a resource")
                        continue
                    yield self._place(fi, f"entry {i}"), res, None

    def _bundle_tags(self, bundle: dict) -> None:
        for t in (bundle.get("meta") or {}).get("tag", []):
            if t.get("system") == PROVENANCE_SYSTEM:
                self.tags.append((t.get("code", ""), t.get("display", "")))

    def _place(self, file_index: int, where: str) -> int:
        self.where.append((file_index, where))
        return len(self.where) - 1

    def locate(self, row_id: int) -> str:
        fi, where = self.where[row_id]
        return f"{Path(self.files[fi]).name} {where}"

    def _problem(self, loc: Location, reason: str) -> None:
        if len(self.problems) <= MAX_PROBLEMS:
            self.problems.append((loc, reason))

    def _loc(self, rid: int, res: dict, fld: str | None = None) -> Location:
        fi, where = self.where[rid]
        kind, n = where.split(" ")
        rtype = res.get("resourceType", "resource")
        rid_text = f"{rtype}/{res.get('id')}" if res.get("id") else rtype
        return Location(self.files[fi], int(n), f"{rid_text} {fld}" if fld else rid_text, line_label=kind)

    def check(self, rid: int, res: dict | None, text: str | None) -> dict | None:
        """The resource, validated as :attr:`validate` says (``text`` is its JSON line, None in a Bundle);
        None after recording file, line/entry, resource id and field of what does not conform."""
        if res is None and self.validate != "read":  # an NDJSON line, parsed here
            res = self._parse(rid, text)
            if res is None:
                return None
        rtype = res.get("resourceType") if res is not None else _resource_type(text)
        if rtype is None and res is None:  # no resourceType in the text: parsed, to say what is wrong
            res = self._parse(rid, text)
            if res is None:
                return None
            rtype = res.get("resourceType")
        if not isinstance(rtype, str):
            self._problem(self._loc_text(rid) if res is None else self._loc(rid, res), "no resourceType")
            return None
        if self.validate == "none" or rtype not in USED_TYPES:
            if res is None:
                res = self._parse(rid, text)
                if res is not None and res.get("resourceType") != rtype:  # the text's first resourceType was a contained one
                    return self.check(rid, res, None)
            return res
        if self.validate == "read":
            try:
                return fast_validator(rtype)(text, res)
            except ValidationError as exc:
                errors = exc.errors()
                if res is None and any(tuple(e["loc"]) == ("resourceType",) for e in errors):
                    # The first "resourceType" of the text was a contained resource's: look at the parsed object.
                    parsed = self._parse(rid, text)
                    return None if parsed is None else self.check(rid, parsed, None)
                return self._nonconforming(rid, res, text, [(e["loc"], _WORDS.get(e["type"], e["msg"])) for e in errors])
            except ChoiceError as exc:
                return self._nonconforming(rid, res, text, [((exc.field,), str(exc))])
        model = self.models.get(rtype)
        if model is None:
            from fhir.resources.R4B import get_fhir_model_class  # heavy: loaded on the first resource only

            model = self.models[rtype] = get_fhir_model_class(rtype)
        try:
            if text is not None:
                model.model_validate_json(text)
            else:
                model.model_validate(res)
        except Exception as exc:  # pydantic.ValidationError; fhir_core raises a few others for malformed input
            errors = getattr(exc, "errors", None)
            return self._nonconforming(rid, res, text, [(e.get("loc", ()), e.get("msg")) for e in errors()]
                                       if callable(errors) else [((), str(exc))])
        return res

    def _parse(self, rid: int, text: str | None) -> dict | None:
        """The JSON object of an NDJSON line (None after recording why it is not one)."""
        try:
            res = json.loads(text or "")
        except ValueError as exc:
            self._problem(self._loc_text(rid), f"not valid JSON ({exc.msg}, column {exc.colno})")
            return None
        if not isinstance(res, dict):
            self._problem(self._loc_text(rid), "not a JSON object (a FHIR resource)")
            return None
        return res

    def _nonconforming(self, rid: int, res: dict | None, text: str | None, errors: list[tuple[Any, Any]]) -> None:
        """Record up to three problems of a resource that does not conform (file, line/entry, id, field)."""
        if res is None:  # pydantic-core names a JSON error itself; worded as the other paths do
            res = self._parse(rid, text)
            if res is None:
                return None
        for loc, msg in errors[:3]:
            fld = ".".join(str(p) for p in loc if p not in ("__root__", "int", "float"))
            self._problem(self._loc(rid, res, fld or None), f"does not conform to FHIR R4: {msg}")
        return None

    def _loc_text(self, rid: int) -> Location:
        fi, where = self.where[rid]
        kind, n = where.split(" ")
        return Location(self.files[fi], int(n), line_label=kind)

    # ---------------------------------------------------------------- resources
    def take(self, rid: int, res: dict) -> None:
        rtype = res["resourceType"]
        if self.tags == [] and rtype == "Patient":
            for t in (res.get("meta") or {}).get("tag", []):
                if t.get("system") == PROVENANCE_SYSTEM:
                    self.tags.append((t.get("code", ""), t.get("display", "")))
                    break
        handler = getattr(self, f"_{rtype}", None)
        if handler is None:
            self.skipped[(rtype, f"{rtype} resources are not used")] += 1
            return
        status = res.get("status")
        if status in NOT_A_RECORD:
            self.skipped[(rtype, f"status '{status}' (not a record of something that happened)")] += 1
            return
        handler(rid, res)

    def _unknown(self, rtype: str, key: tuple[str, str] | None) -> None:
        self.unknown.setdefault(rtype, Counter())[f"{key[0]}|{key[1]}" if key else "(no coding)"] += 1

    def _Patient(self, rid: int, res: dict) -> None:
        pid = res.get("id")
        if not isinstance(pid, str) or f"Patient/{pid}" in self.patients:
            self._problem(self._loc(rid, res, "id"), "a Patient needs a unique id")
            return
        self.patients[f"Patient/{pid}"] = len(self.patients)
        birth = res.get("birthDate")
        year = int(birth[:4]) if isinstance(birth, str) and birth[:4].isdigit() else None
        self.persons.add(person_id=len(self.patients) - 1, gender_concept_id={"female": 1, "male": 2}.get(res.get("gender")),
                         year_of_birth=year, person_source_value=pid, row_id=rid)

    def _subject(self, res: dict) -> str | None:
        return _ref_key(res.get("subject") or res.get("patient"), self.full_urls)

    def _Observation(self, rid: int, res: dict) -> None:
        groups = ("measurement", "patient", "counted")
        stamp, _problem = parse_time(res.get("effectiveDateTime") or res.get("effectiveInstant")
                                     or (res.get("effectivePeriod") or {}).get("start"))
        subject = self._subject(res)
        items = [(res.get("code"), res)] + [(c.get("code"), c) for c in res.get("component") or []]
        hit = False
        for code, holder in items:
            sid, key = self.codes.match(code, groups)
            if sid is None:
                continue
            hit = True
            value, unit = _value(holder)
            self._pending("meas", subject, src="Observation", row_id=rid, concept_id=sid, time=stamp, value=value,
                          unit_concept_id=None, unit_source_value=unit)
        if not hit:
            self._unknown("Observation", self.codes.match(res.get("code"), groups)[1])

    def _Medication(self, rid: int, res: dict) -> None:
        if isinstance(res.get("id"), str):
            self.medications[f"Medication/{res['id']}"] = res

    def _medication_code(self, res: dict) -> Any:
        if "medicationCodeableConcept" in res:
            return res["medicationCodeableConcept"]
        ref = res.get("medicationReference") or {}
        r = ref.get("reference", "") if isinstance(ref, dict) else ""
        if r.startswith("#"):
            contained = next((c for c in res.get("contained", []) if c.get("id") == r[1:]), {})
            return contained.get("code")
        med = self.medications.get(_ref_key(ref, self.full_urls) or "")
        return med.get("code") if med else None

    def _administration(self, rid: int, res: dict, rtype: str, dosage: dict, start: Any, end: Any) -> None:
        code = self._medication_code(res)
        sid, key = self.codes.match(code, ("drug",))
        if sid is None:
            self._unknown(rtype, key)
            return
        dose = dosage.get("dose") or ((dosage.get("doseAndRate") or [{}])[0].get("doseQuantity")) or {}
        route_sid, _k = self.codes.match(dosage.get("route"), ("route",))
        route_text = (dosage.get("route") or {}).get("text")
        stamp, _p = parse_time(start)
        end_stamp, _p2 = parse_time(end) if end else (None, None)
        self._pending("drugs", self._subject(res), row_id=rid, concept_id=sid, time=stamp, end_time=end_stamp,
                      quantity=_number(dose.get("value")), route_concept_id=route_sid, route_source_value=route_text,
                      dose_unit_source_value=dose.get("code") or dose.get("unit"))

    def _MedicationAdministration(self, rid: int, res: dict) -> None:
        period = res.get("effectivePeriod") or {}
        self._administration(rid, res, "MedicationAdministration", res.get("dosage") or {},
                             res.get("effectiveDateTime") or period.get("start"), period.get("end"))

    def _MedicationStatement(self, rid: int, res: dict) -> None:
        period = res.get("effectivePeriod") or {}
        self._administration(rid, res, "MedicationStatement", (res.get("dosage") or [{}])[0],
                             res.get("effectiveDateTime") or period.get("start"), period.get("end"))

    def _MedicationRequest(self, rid: int, res: dict) -> None:
        self.skipped[("MedicationRequest", "prescriptions (MedicationRequest) are not administrations: counted, not imported")] += 1

    def _event(self, rid: int, res: dict, rtype: str, code: Any, when: Any, severity: Any, end: Any = None,
               detail: Any = None) -> None:
        sid, key = self.codes.match(code, ("adverse_event", "lifestyle", "condition"))
        if sid is None:
            self._unknown(rtype, key)
            return
        sev_sid, sev_key = self.codes.match(severity, ("severity",))
        sev_text = sev_key[1] if sev_key and sev_key[0] == SEVERITY_SYSTEM else (severity or {}).get("text") if isinstance(severity, dict) else None
        stamp, _p = parse_time(when)
        end_date = parse_time(end)[0][:10] if end and parse_time(end)[0] else None
        self._pending("events", self._subject(res), src=rtype, row_id=rid, concept_id=sid, time=stamp, end_date=end_date,
                      qualifier_concept_id=sev_sid, qualifier_source_value=sev_text, source_value=detail)

    def _Condition(self, rid: int, res: dict) -> None:
        onset = res.get("onsetDateTime") or (res.get("onsetPeriod") or {}).get("start") or res.get("recordedDate")
        self._event(rid, res, "Condition", res.get("code"), onset, res.get("severity"))

    def _AdverseEvent(self, rid: int, res: dict) -> None:
        self._event(rid, res, "AdverseEvent", res.get("event"), res.get("date") or res.get("detected"), res.get("severity"))

    def _Procedure(self, rid: int, res: dict) -> None:
        period = res.get("performedPeriod") or {}
        notes = res.get("note") or []
        self._event(rid, res, "Procedure", res.get("code"), res.get("performedDateTime") or period.get("start"), None,
                    end=period.get("end"), detail=notes[0].get("text") if notes else None)

    def _pending(self, relation: str, subject: str | None, **values: Any) -> None:
        rows: _Rows = getattr(self, relation)
        self.pending.append((relation, len(rows.cols.get("row_id", [])), subject))
        rows.add(person_id=None, **values)


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _value(holder: dict) -> tuple[float | None, str | None]:
    """(value, unit code) of an Observation or component: Quantity (UCUM code, else unit), integer, boolean."""
    q = holder.get("valueQuantity")
    if isinstance(q, dict):
        unit = q.get("code") if q.get("system") in (None, SYSTEMS["UCUM"]) and q.get("code") else q.get("unit")
        return _number(q.get("value")), unit
    if "valueInteger" in holder:
        return _number(holder["valueInteger"]), None
    if isinstance(holder.get("valueBoolean"), bool):
        return (1.0 if holder["valueBoolean"] else 0.0), None
    return None, None


def fhir_files(location: Path) -> list[Path]:
    """The NDJSON and Bundle files at ``location`` (a file or a folder, sorted by name, Patient files first)."""
    if location.is_file():
        return [location]
    if not location.is_dir():
        raise InputError([(Location(str(location)), "not found: give an .ndjson or Bundle .json file or a folder of them")])
    files = sorted(p for p in location.iterdir() if p.suffix.lower() in (".ndjson", ".json") and p.name != "manifest.json")
    if not files:
        raise InputError([(Location(str(location)), "no .ndjson or .json files in this folder")])
    return files


@dataclass(frozen=True)
class FhirImport:
    """Canonical tables (Parquet files as Arrow datasets), their provenance, the import report and the
    number of resources read."""

    tables: dict[str, ds.Dataset]
    provenance: Provenance
    report: ImportReport
    resources: int


def read_fhir(location: str | Path, mapping: Mapping, out_dir: Path, *, validate: Validation = "read") -> FhirImport:
    """Read FHIR R4 NDJSON files and Bundles at ``location`` into canonical tables, written as Parquet files
    to the folder ``out_dir``."""
    paths = fhir_files(Path(location))
    r = _Reader(mapping, validate)
    n = 0
    # Files are read in name order, so Medication.ndjson comes before MedicationAdministration.ndjson.
    for rid, res, text in r.resources(paths):
        n += 1
        checked = r.check(rid, res, text)
        if checked is not None:
            r.take(rid, checked)
    if r.problems:
        raise InputError(r.problems)
    report = ImportReport("FHIR R4", str(location))
    report.persons_in_source = report.persons_selected = len(r.patients)
    report.population = "every Patient in the files"
    for (rtype, reason), k in sorted(r.skipped.items()):
        report.exclude(rtype, reason, k)
    for rtype, counter in sorted(r.unknown.items()):
        top = ", ".join(code for code, _k in counter.most_common(3))
        report.exclude(rtype, f"codes not in the concept-set mapping ({len(counter)} distinct; most frequent: {top})",
                       sum(counter.values()))
    orphans: Counter = Counter()
    examples: dict[str, list[str]] = {}
    keep: dict[str, list[int]] = {"meas": [], "drugs": [], "events": []}
    for relation, index, subject in r.pending:
        rows: _Rows = getattr(r, relation)
        person = r.patients.get(subject or "")
        if person is None:
            rtype = rows.cols["src"][index] if "src" in rows.cols else "MedicationAdministration"
            orphans[rtype] += 1
            examples.setdefault(rtype, []).append(r.locate(rows.cols["row_id"][index]))
            continue
        rows.cols["person_id"][index] = person
        keep[relation].append(index)
    for rtype, k in orphans.items():
        report.exclude(rtype, "subject refers to a Patient that is not in the data (a reference to nothing)", k,
                       tuple(examples[rtype][:5]))
    pulled = {"persons": _table(r.persons.cols, PERSON_SCHEMA), "meas": _table(_subset(r.meas.cols, keep["meas"]), MEAS_SCHEMA),
              "drugs": _table(_subset(r.drugs.cols, keep["drugs"]), DRUG_SCHEMA),
              "events": _table(_subset(r.events.cols, keep["events"]), EVENT_SCHEMA)}
    w = configure(connect())
    for name, table in pulled.items():
        w.register(f"_{name}_arrow", table)
        w.execute(f"CREATE TEMP TABLE {name} AS SELECT * FROM _{name}_arrow")  # a table: the shaping drops it when done
        w.unregister(f"_{name}_arrow")
    del pulled
    w.execute("""CREATE TEMP TABLE periods AS
        SELECT p.person_id, coalesce(min(d), make_date(CAST(p.year_of_birth AS INTEGER), 1, 1)) AS start_date,
               coalesce(max(d), make_date(CAST(p.year_of_birth AS INTEGER), 1, 1)) AS end_date
        FROM persons p LEFT JOIN (
            SELECT person_id, CAST(time AS DATE) AS d FROM meas UNION ALL SELECT person_id, CAST(time AS DATE) FROM drugs
            UNION ALL SELECT person_id, CAST(end_time AS DATE) FROM drugs UNION ALL SELECT person_id, CAST(time AS DATE) FROM events
            UNION ALL SELECT person_id, end_date FROM events) x USING (person_id)
        WHERE p.year_of_birth IS NOT NULL GROUP BY p.person_id, p.year_of_birth""")
    w.register("cmap", pa.table({"concept_id": pa.array([m[0] for m in r.codes.members], pa.int64()),
                                 "grp": [m[1] for m in r.codes.members], "name": [m[2] for m in r.codes.members]}))
    w.register("unit_codes", pa.table({"unit_concept_id": pa.array([], pa.int64()), "code": pa.array([], pa.string())}))
    w.register("genders", pa.table({"gender_concept_id": pa.array([1, 2], pa.int64()), "sex": ["F", "M"]}))
    w.register("strengths", pa.table({"drug_concept_id": pa.array([], pa.int64()), "ingredient_concept_id": pa.array([], pa.int64()),
                                      "amount_value": pa.array([], pa.float64()), "amount_unit_concept_id": pa.array([], pa.int64()),
                                      "numerator_value": pa.array([], pa.float64()),
                                      "numerator_unit_concept_id": pa.array([], pa.int64())}))
    register_common(w, mapping)
    report.notes.append("FHIR has no observation periods: each patient is observed from their first to their last record")
    tables = shape_canonical(w, mapping, report, out_dir, locate=lambda _t, rid: r.locate(rid), person_table="Patient")
    period_row = w.execute("SELECT min(start_date), max(end_date) FROM periods JOIN patients_ok USING (person_id)").fetchall()[0]
    w.close()
    period = f"{period_row[0]} to {period_row[1]}" if period_row[0] is not None else None
    origin = r.tags[0] if r.tags else None
    if origin and origin[0] in ("simulated", "synthetic"):
        provenance = Provenance(origin[0], origin[1])  # type: ignore[arg-type]
    else:
        provenance = Provenance("real", f"records from FHIR resources in {Path(location).name}", period)
    return FhirImport(tables, provenance, report, n)


PERSON_SCHEMA = pa.schema([("person_id", pa.int64()), ("gender_concept_id", pa.int64()), ("year_of_birth", pa.int64()),
                           ("person_source_value", pa.string()), ("row_id", pa.int64())])
MEAS_SCHEMA = pa.schema([("person_id", pa.int64()), ("src", pa.string()), ("row_id", pa.int64()), ("concept_id", pa.int64()),
                         ("time", pa.string()), ("value", pa.float64()), ("unit_concept_id", pa.int64()),
                         ("unit_source_value", pa.string())])
DRUG_SCHEMA = pa.schema([("person_id", pa.int64()), ("row_id", pa.int64()), ("concept_id", pa.int64()), ("time", pa.string()),
                         ("end_time", pa.string()), ("quantity", pa.float64()), ("route_concept_id", pa.int64()),
                         ("route_source_value", pa.string()), ("dose_unit_source_value", pa.string())])
EVENT_SCHEMA = pa.schema([("person_id", pa.int64()), ("src", pa.string()), ("row_id", pa.int64()), ("concept_id", pa.int64()),
                          ("time", pa.string()), ("end_date", pa.string()), ("qualifier_concept_id", pa.int64()),
                          ("qualifier_source_value", pa.string()), ("source_value", pa.string())])
_TIME_COLUMNS = {"time": pa.timestamp("us"), "end_time": pa.timestamp("us"), "end_date": pa.date32()}


def _subset(cols: dict[str, list[Any]], keep: list[int]) -> dict[str, list[Any]]:
    return {k: [v[i] for i in keep] for k, v in cols.items()}


def _table(cols: dict[str, list[Any]], schema: pa.Schema) -> pa.Table:
    """Arrow table of the column lists; text times parsed to timestamps in one vectorised cast."""
    n = len(cols.get("row_id", []))
    arrays = {}
    for f in schema:
        values = cols.get(f.name)
        arr = pa.nulls(n, f.type) if values is None else pa.array(values, pa.string() if f.name in _TIME_COLUMNS else f.type)
        arrays[f.name] = arr.cast(_TIME_COLUMNS[f.name]) if f.name in _TIME_COLUMNS else arr
    return pa.table(arrays)
