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

NDJSON files are read in binary blocks (:mod:`.ndjson`); an Observation — most of a bulk export — is
validated here and then read in SQL from its JSON text (:mod:`.observations`); the other resource types are
read here into column lists that move to DuckDB in batches; subjects are resolved there by a join.

The extracted rows take the same shaping as an OMOP CDM (:func:`~ketaweight.sources.omop.reader.shape_canonical`):
the concept sets of the mapping, matched here by code system and code.  FHIR has no observation periods;
each patient is observed from their first to their last record.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from ketaweight.core.duckdb_connection import connect
from ketaweight.core.errors import InputError, Location
from ketaweight.core.provenance import Provenance
from ketaweight.sources.fhir.codes import PROVENANCE_SYSTEM, SEVERITY_SYSTEM, SYSTEMS
from ketaweight.sources.fhir.ndjson import blocks
from ketaweight.sources.fhir.observations import DATETIME, Observations
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

_RESOURCE_TYPE = re.compile(rb'"resourceType"\s*:\s*"([^"]*)"')


def _resource_type(text: bytes | None) -> str | None:
    """The resourceType of a resource's JSON text, found without parsing it (the validator then parses it)."""
    if text is None:
        return None
    if text.startswith(_LEADING):  # as bulk exports (and ketaweight) write it: no regular expression needed
        end = text.find(b'"', len(_LEADING))
        name = text[len(_LEADING):end]
    else:
        m = _RESOURCE_TYPE.search(text)
        if m is None:
            return None
        name = m.group(1)
    return _TYPE_NAMES.get(name) or name.decode("utf-8", "replace")


_LEADING = b'{"resourceType":"'


_TYPE_NAMES = {t.encode(): t for t in USED_TYPES}


_DATETIME = re.compile(DATETIME, re.ASCII)


def parse_time(text: Any) -> tuple[str | None, str | None]:
    """(ISO timestamp text without offset, problem) for a FHIR date/dateTime/instant.

    The offset is dropped: the local wall time is what a day-level analysis needs.  A value given only to
    the month or year is too coarse for a measurement date and is reported.
    """
    if not isinstance(text, str):
        return None, "no date"
    m = _DATETIME.fullmatch(text)
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


class _Rows:
    """Rows of one intermediate relation, gathered as column lists and moved to the DuckDB table ``name``
    every :data:`BATCH_ROWS` rows (so the reader's memory does not grow with the input)."""

    def __init__(self, w: duckdb.DuckDBPyConnection, name: str, schema: pa.Schema) -> None:
        self.w, self.name, self.schema = w, name, schema
        self.cols: dict[str, list[Any]] = {f.name: [] for f in schema}
        self._append = [self.cols[f.name].append for f in schema]
        self._insert(_table({}, schema), create=True)

    def add(self, *values: Any) -> None:
        """Append one row (values in the order of the schema's columns)."""
        for append, v in zip(self._append, values, strict=True):
            append(v)
        if len(self.cols["row_id"]) >= BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.cols["row_id"]:
            self._insert(_table(self.cols, self.schema))
            for v in self.cols.values():
                v.clear()

    def _insert(self, table: pa.Table, *, create: bool = False) -> None:
        self.w.register("_rows_batch", table)
        self.w.execute(f"CREATE TEMP TABLE {self.name} AS SELECT * FROM _rows_batch" if create else
                       f"INSERT INTO {self.name} SELECT * FROM _rows_batch")
        self.w.unregister("_rows_batch")


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

    def of_groups(self, groups: tuple[str, ...]) -> dict[tuple[str, str], int]:
        """The (system, code) → set id entries whose set is in one of ``groups`` (what :meth:`match` finds)."""
        return {k: sid for k, sid in self.ids.items() if self.group_of[sid] in groups}


OBSERVATION_GROUPS = ("measurement", "patient", "counted")
"""Concept-set groups an Observation's codes are matched in."""


class _Reader:
    def __init__(self, mapping: Mapping, validate: Validation, w: duckdb.DuckDBPyConnection) -> None:
        self.mapping, self.validate, self.w = mapping, validate, w
        self.codes = _Codes(mapping)
        self.files: list[str] = []
        self.kinds: list[str] = []  # "line" (NDJSON) or "entry" (Bundle), per file
        self.bases: list[int] = []  # row id of each file's line 1 / entry 0: a row id is its file's base + line - 1 / + entry
        self.next_base = 0
        self.problems: list[tuple[Location, str]] = []
        self.patients: dict[str, int] = {}
        self.persons = _Rows(w, "persons", PERSON_SCHEMA)
        self.drugs = _Rows(w, "drug_rows", _SUBJECT_ROWS[0])
        self.events = _Rows(w, "event_rows", _SUBJECT_ROWS[1])
        self.observations = Observations(w)
        self.medications: dict[str, dict] = {}
        self.unknown: dict[str, Counter] = {}
        self.skipped: Counter = Counter()
        self.full_urls: dict[str, str] = {}
        self.tags: list[tuple[str, str]] = []
        self.models: dict[str, Any] = {}
        self.resources = 0

    # ---------------------------------------------------------------- input
    def read(self, paths: list[Path]) -> None:
        """Read every resource of ``paths``: NDJSON files block by block, Bundles whole."""
        for path in paths:
            fi = len(self.files)
            self.files.append(str(path))
            self.bases.append(self.next_base)
            if path.suffix.lower() == ".ndjson":
                self.kinds.append("line")
                self._ndjson(path, fi)
            else:
                self.kinds.append("entry")
                self._bundle(path, fi)

    def _ndjson(self, path: Path, fi: int) -> None:
        base = self.bases[fi] - 1
        last = 1  # the number of the line after the last one read
        check, take = self.check, self.take
        for block in blocks(path):
            keep: list[int] = []
            first = base + block.first_line
            blank = 0
            for k, line in enumerate(block.lines):
                if not line.strip():
                    blank += 1
                    continue
                res = check(first + k, None, line)
                if res is None:
                    continue
                if res["resourceType"] == "Observation" and res.get("status") not in NOT_A_RECORD:  # take()'s most common case
                    keep.append(k)
                elif take(first + k, res):
                    keep.append(k)
            self.resources += len(block.lines) - blank
            if keep:
                rids = pa.array(np.asarray(keep, np.int64) + first)
                self.observations.add(rids, block.arrow(keep), self._unparsable)
            last = block.first_line + len(block.lines)
        self.next_base = base + last

    def _bundle(self, path: Path, fi: int) -> None:
        base = self.bases[fi]
        try:
            bundle = json.loads(path.read_bytes())
        except UnicodeDecodeError as exc:
            self._problem(Location(str(path)), f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x}); re-export the file as UTF-8")
            return
        except ValueError as exc:
            self._problem(Location(str(path)), f"not a JSON file ({exc})")
            return
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            self._problem(Location(str(path)), "a .json file must hold a FHIR Bundle (bulk exports use .ndjson)")
            return
        self._bundle_tags(bundle)
        entries = bundle.get("entry") or []
        self.next_base = base + len(entries)
        for e in entries:
            res = e.get("resource") if isinstance(e, dict) else None
            if isinstance(res, dict) and isinstance(e.get("fullUrl"), str) and res.get("id"):
                self.full_urls[e["fullUrl"]] = f"{res.get('resourceType')}/{res['id']}"
        rids: list[int] = []
        texts: list[str] = []
        for i, e in enumerate(entries):
            res = e.get("resource") if isinstance(e, dict) else None
            if not isinstance(res, dict):
                self._problem(Location(str(path), i, line_label="entry"), "entry without a resource")
                continue
            self.resources += 1
            checked = self.check(base + i, res, None)
            if checked is not None and self.take(base + i, checked):
                rids.append(base + i)
                texts.append(json.dumps(checked))
            if len(rids) >= BATCH_ROWS:
                self.observations.add(pa.array(rids, pa.int64()), pa.array(texts, pa.large_string()), self._unparsable)
                rids, texts = [], []
        if rids:
            self.observations.add(pa.array(rids, pa.int64()), pa.array(texts, pa.large_string()), self._unparsable)

    def _unparsable(self, rids: list[int]) -> None:
        for rid in rids:
            self._problem(self._loc_text(rid), "not valid JSON for DuckDB's parser (which reads the Observations)")

    def _bundle_tags(self, bundle: dict) -> None:
        for t in (bundle.get("meta") or {}).get("tag", []):
            if t.get("system") == PROVENANCE_SYSTEM:
                self.tags.append((t.get("code", ""), t.get("display", "")))

    def _where(self, row_id: int) -> tuple[int, str, int]:
        """(file index, "line" or "entry", line number or entry index) of a row id."""
        fi = bisect_right(self.bases, row_id) - 1
        kind = self.kinds[fi]
        return fi, kind, row_id - self.bases[fi] + (1 if kind == "line" else 0)

    def locate(self, row_id: int) -> str:
        fi, kind, n = self._where(row_id)
        return f"{Path(self.files[fi]).name} {kind} {n}"

    def _problem(self, loc: Location, reason: str) -> None:
        if len(self.problems) <= MAX_PROBLEMS:
            self.problems.append((loc, reason))

    def _loc(self, rid: int, res: dict, fld: str | None = None) -> Location:
        fi, kind, n = self._where(rid)
        rtype = res.get("resourceType", "resource")
        rid_text = f"{rtype}/{res.get('id')}" if res.get("id") else rtype
        return Location(self.files[fi], n, f"{rid_text} {fld}" if fld else rid_text, line_label=kind)

    def _loc_text(self, rid: int) -> Location:
        fi, kind, n = self._where(rid)
        return Location(self.files[fi], n, line_label=kind)

    def check(self, rid: int, res: dict | None, text: bytes | None) -> dict | None:
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

    def _parse(self, rid: int, text: bytes | None) -> dict | None:
        """The JSON object of an NDJSON line (None after recording why it is not one)."""
        try:
            res = json.loads(text or b"")
        except UnicodeDecodeError as exc:
            self._problem(self._loc_text(rid), f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x}); re-export the file as UTF-8")
            return None
        except ValueError as exc:
            self._problem(self._loc_text(rid), f"not valid JSON ({exc.msg}, column {exc.colno})")
            return None
        if not isinstance(res, dict):
            self._problem(self._loc_text(rid), "not a JSON object (a FHIR resource)")
            return None
        return res

    def _nonconforming(self, rid: int, res: dict | None, text: bytes | None, errors: list[tuple[Any, Any]]) -> None:
        """Record up to three problems of a resource that does not conform (file, line/entry, id, field)."""
        if res is None:  # pydantic-core names a JSON error itself; worded as the other paths do
            res = self._parse(rid, text)
            if res is None:
                return None
        for loc, msg in errors[:3]:
            fld = ".".join(str(p) for p in loc if p not in ("__root__", "int", "float"))
            self._problem(self._loc(rid, res, fld or None), f"does not conform to FHIR R4: {msg}")
        return None

    # ---------------------------------------------------------------- resources
    def take(self, rid: int, res: dict) -> bool:
        """Read one valid resource; True for an Observation, whose text the caller hands to
        :class:`~ketaweight.sources.fhir.observations.Observations` (read there, in SQL)."""
        rtype = res["resourceType"]
        if rtype == "Observation":  # most resources: only the status is looked at here
            status = res.get("status")
            if status not in NOT_A_RECORD:
                return True
            self.skipped[(rtype, f"status '{status}' (not a record of something that happened)")] += 1
            return False
        if self.tags == [] and rtype == "Patient":
            for t in (res.get("meta") or {}).get("tag", []):
                if t.get("system") == PROVENANCE_SYSTEM:
                    self.tags.append((t.get("code", ""), t.get("display", "")))
                    break
        handler = getattr(self, f"_{rtype}", None)
        if handler is None:
            self.skipped[(rtype, f"{rtype} resources are not used")] += 1
            return False
        status = res.get("status")
        if status in NOT_A_RECORD:
            self.skipped[(rtype, f"status '{status}' (not a record of something that happened)")] += 1
            return False
        handler(rid, res)
        return False

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
        self.persons.add(len(self.patients) - 1, {"female": 1, "male": 2}.get(res.get("gender")), year, pid, rid)

    def _subject(self, res: dict) -> str | None:
        return _ref_key(res.get("subject") or res.get("patient"), self.full_urls)

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
        self.drugs.add(self._subject(res), rid, sid, stamp, end_stamp, _number(dose.get("value")), route_sid, route_text,
                       dose.get("code") or dose.get("unit"))

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
        self.events.add(self._subject(res), rtype, rid, sid, stamp, end_date, sev_sid, sev_text, detail)

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


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


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
    w = configure(connect())
    try:
        return _read(w, location, paths, mapping, out_dir, validate)
    finally:
        w.close()


def _read(w: duckdb.DuckDBPyConnection, location: str | Path, paths: list[Path], mapping: Mapping, out_dir: Path,
          validate: Validation) -> FhirImport:
    r = _Reader(mapping, validate, w)
    # Files are read in name order, so Medication.ndjson comes before MedicationAdministration.ndjson.
    r.read(paths)
    if r.problems:
        raise InputError(r.problems)
    for rows in (r.persons, r.drugs, r.events):
        rows.flush()
    report = ImportReport("FHIR R4", str(location))
    report.persons_in_source = report.persons_selected = len(r.patients)
    report.population = "every Patient in the files"
    for (rtype, reason), k in sorted(r.skipped.items()):
        report.exclude(rtype, reason, k)
    for key, k, _first in r.observations.rows(r.codes.of_groups(OBSERVATION_GROUPS)):
        r.unknown.setdefault("Observation", Counter())[key] = k
    for rtype, counter in sorted(r.unknown.items()):
        top = ", ".join(code for code, _k in counter.most_common(3))
        report.exclude(rtype, f"codes not in the concept-set mapping ({len(counter)} distinct; most frequent: {top})",
                       sum(counter.values()))
    _resolve_subjects(w, r, report)
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
    period = f"{period_row[0]} to {period_row[1]}" if period_row[0] is not None else None
    origin = r.tags[0] if r.tags else None
    if origin and origin[0] in ("simulated", "synthetic"):
        provenance = Provenance(origin[0], origin[1])  # type: ignore[arg-type]
    else:
        provenance = Provenance("real", f"records from FHIR resources in {Path(location).name}", period)
    return FhirImport(tables, provenance, report, r.resources)


def _resolve_subjects(w: duckdb.DuckDBPyConnection, r: _Reader, report: ImportReport) -> None:
    """Tables ``meas``, ``drugs`` and ``events`` with each row's person, in the order the resources were
    read; rows whose subject is not a Patient of the data are counted (with up to five locations)."""
    refs = r.observations.references()
    w.register("_refs", pa.table({"ref": pa.array(refs, pa.string()),
                                  "subject": pa.array([_ref_key({"reference": x}, r.full_urls) for x in refs], pa.string())}))
    w.register("_patients", pa.table({"subject": pa.array(list(r.patients), pa.string()),
                                      "person_id": pa.array(list(r.patients.values()), pa.int64())}))
    w.execute("""CREATE TEMP TABLE meas_rows AS SELECT x.rid, x.item, 'Observation' AS src, f.subject, x.concept_id, x.time, x.value,
                 x.unit FROM obs_rows x LEFT JOIN _refs f USING (ref)""")
    w.execute("DROP TABLE obs_rows")
    # Which resource a row came from, as the report names it (MedicationStatement rows are counted with the
    # administrations they become).
    relations = {"meas": ("meas_rows", "src", "rid, item", "p.person_id, x.src, x.rid AS row_id, x.concept_id, x.time, x.value, "
                                                      "CAST(NULL AS BIGINT) AS unit_concept_id, x.unit AS unit_source_value"),
                 "drugs": ("drug_rows", "'MedicationAdministration'", "row_id",
                           "p.person_id, " + ", ".join(f"x.{c}" for c in DRUG_SCHEMA.names[1:])),
                 "events": ("event_rows", "src", "row_id", "p.person_id, " + ", ".join(f"x.{c}" for c in EVENT_SCHEMA.names[1:]))}
    orphans = []
    for name, (rows, label, order, columns) in relations.items():
        rid = order.split(",")[0]
        w.execute(f"CREATE TEMP TABLE {name} AS SELECT {columns} FROM {rows} x JOIN _patients p USING (subject) "
                  f"ORDER BY {', '.join('x.' + c.strip() for c in order.split(','))}")
        orphans += w.execute(f"""SELECT {label} AS rtype, count(*), min({rid}), list({rid} ORDER BY {order})[1:5]
                                 FROM {rows} x ANTI JOIN _patients p USING (subject) GROUP BY rtype""").fetchall()
        w.execute(f"DROP TABLE {rows}")
    w.unregister("_refs")
    w.unregister("_patients")
    merged: dict[str, list] = {}
    for rtype, n, first, examples in sorted(orphans, key=lambda o: o[2]):
        m = merged.setdefault(rtype, [0, []])
        m[0] += n
        m[1] += examples
    for rtype, (n, examples) in merged.items():
        report.exclude(rtype, "subject refers to a Patient that is not in the data (a reference to nothing)", n,
                       tuple(r.locate(e) for e in sorted(examples)[:5]))


PERSON_SCHEMA = pa.schema([("person_id", pa.int64()), ("gender_concept_id", pa.int64()), ("year_of_birth", pa.int64()),
                           ("person_source_value", pa.string()), ("row_id", pa.int64())])
DRUG_SCHEMA = pa.schema([("person_id", pa.int64()), ("row_id", pa.int64()), ("concept_id", pa.int64()), ("time", pa.string()),
                         ("end_time", pa.string()), ("quantity", pa.float64()), ("route_concept_id", pa.int64()),
                         ("route_source_value", pa.string()), ("dose_unit_source_value", pa.string())])
EVENT_SCHEMA = pa.schema([("person_id", pa.int64()), ("src", pa.string()), ("row_id", pa.int64()), ("concept_id", pa.int64()),
                          ("time", pa.string()), ("end_date", pa.string()), ("qualifier_concept_id", pa.int64()),
                          ("qualifier_source_value", pa.string()), ("source_value", pa.string())])
_SUBJECT_ROWS = tuple(pa.schema([("subject", pa.string()), *(f for f in schema if f.name != "person_id")])
                      for schema in (DRUG_SCHEMA, EVENT_SCHEMA))
"""Drug and event rows as the reader gathers them: the subject's reference key in place of the person."""
BATCH_ROWS = 50_000
"""Rows gathered in Python before they move to DuckDB."""
_TIME_COLUMNS = {"time": pa.timestamp("us"), "end_time": pa.timestamp("us"), "end_date": pa.date32()}


def _table(cols: dict[str, list[Any]], schema: pa.Schema) -> pa.Table:
    """Arrow table of the column lists; text times parsed to timestamps in one vectorised cast."""
    n = len(cols.get("row_id", []))
    arrays = {}
    for f in schema:
        values = cols.get(f.name)
        arr = pa.nulls(n, f.type) if values is None else pa.array(values, pa.string() if f.name in _TIME_COLUMNS else f.type)
        arrays[f.name] = arr.cast(_TIME_COLUMNS[f.name]) if f.name in _TIME_COLUMNS else arr
    return pa.table(arrays)
