"""Write canonical tables as FHIR R4 resources: bulk-export NDJSON (one file per resource type) or one
collection Bundle.

- ``patients`` → Patient (gender, birthDate as the year), an Observation of height (LOINC 8302-2, cm)
  and of atypical features (valueBoolean), and a Condition of major depressive disorder (SNOMED 370143000).
- ``measurements`` → Observation with the kind's code and a UCUM valueQuantity.
- ``exposures`` → MedicationAdministration (RxNorm code, dose in mg, SNOMED route, effectivePeriod from the
  session's start to its end).
- ``adverse_events`` → AdverseEvent (event code, R4 severity); ``lifestyle`` → Procedure (performedPeriod,
  the detail as a note).

Every resource carries the data's provenance as a ``meta.tag`` (:data:`~.codes.PROVENANCE_SYSTEM`) and,
for simulated records, HL7's HTEST "test health data" tag.  Times are written as the canonical (local) wall
time with offset +00:00, as FHIR requires an offset, and read back without it.  The resources are built as
JSON in DuckDB (one pass per table) rather than one Python object per resource, which would be far slower.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import duckdb
import pyarrow as pa

from ketaweight.core.provenance import Provenance
from ketaweight.core.schema import MEASUREMENT_KINDS
from ketaweight.sources.fhir.codes import PROVENANCE_SYSTEM, SEVERITY_SYSTEM, SYSTEMS, TEST_DATA_TAG
from ketaweight.sources.omop.mapping import Mapping, load_mapping
from ketaweight.sources.omop.writer import UCUM

Layout = Literal["ndjson", "bundle"]
BATCH_ROWS = 200_000


def _coding(mapping: Mapping, group: str, name: str, display: str) -> dict[str, str]:
    s = mapping.get(group, name)
    code = next((c for c in (s.codes if s else ()) if c.code is not None and c.vocabulary in SYSTEMS), None)
    if code is None:
        raise ValueError(f"the mapping has no code with a FHIR system for {group}.{name}")
    return {"system": SYSTEMS[code.vocabulary], "code": code.code, "display": display}  # type: ignore[dict-item]


def _lit(value: object) -> str:
    """A JSON value as a DuckDB JSON literal."""
    return "'" + json.dumps(value).replace("'", "''") + "'::JSON"


def _time(col: str) -> str:
    """FHIR dateTime text of a TIMESTAMP column (seconds, or microseconds when there are any)."""
    return (f"CASE WHEN microsecond({col}) % 1000000 = 0 THEN strftime({col}, '%Y-%m-%dT%H:%M:%S+00:00') "
            f"ELSE strftime({col}, '%Y-%m-%dT%H:%M:%S.%f+00:00') END")


def resource_queries(con: duckdb.DuckDBPyConnection, provenance: Provenance, mapping: Mapping) -> dict[str, str]:
    """Resource type → SQL giving one JSON text per resource (column ``r``), from the canonical tables on ``con``."""
    tags = [{"system": PROVENANCE_SYSTEM, "code": provenance.origin, "display": provenance.source}]
    if provenance.synthetic:
        tags.append(TEST_DATA_TAG)
    meta = _lit({"tag": tags})
    subject = "json_object('reference', 'Patient/' || patient_id)"
    ucum = " ".join(f"WHEN '{unit}' THEN '{code}'" for unit, code in UCUM.items())
    kinds = {k.name: _coding(mapping, "measurement", k.name, k.description) for k in MEASUREMENT_KINDS.values()}
    kind_case = " ".join(f"WHEN '{k}' THEN {_lit(c)}" for k, c in kinds.items())
    height = _coding(mapping, "patient", "height_cm", "Body height")
    atypical = _coding(mapping, "patient", "atypical_features", "Depression with atypical features")
    mdd = _coding(mapping, "condition", "major_depressive_disorder", "Major depressive disorder")
    drugs = " ".join(f"WHEN '{d}' THEN {_lit(_coding(mapping, 'drug', d, d))}" for d in ("ketamine", "esketamine"))
    routes = " ".join(f"WHEN '{s.name}' THEN {_lit(_coding(mapping, 'route', s.name, s.name + ' route'))}"
                      for s in mapping.group("route"))
    terms = [r[0] for r in con.execute("SELECT DISTINCT term FROM adverse_events ORDER BY 1").fetchall()]
    for term in terms:
        if mapping.get("adverse_event", term) is None:
            raise ValueError(f"adverse event term {term!r} has no concept set in the mapping; add [adverse_event.\"{term}\"]")
    ae_case = " ".join(f"WHEN '{t.replace(chr(39), chr(39) * 2)}' THEN {_lit(_coding(mapping, 'adverse_event', t, t))}"
                       for t in terms) or "WHEN NULL THEN NULL"
    lifestyle = " ".join(f"WHEN '{s.name}' THEN {_lit(_coding(mapping, 'lifestyle', s.name, s.name.replace('_', ' ')))}"
                         for s in mapping.group("lifestyle"))
    first_day = ("(SELECT patient_id, min(d) AS d FROM (SELECT patient_id, CAST(time AS DATE) AS d FROM measurements "
                 "UNION ALL SELECT patient_id, CAST(time AS DATE) FROM exposures UNION ALL SELECT patient_id, start FROM lifestyle) "
                 "GROUP BY patient_id)")
    first = "coalesce(f.d, make_date(p.birth_year, 1, 1))"
    return {
        "Patient": f"""SELECT json_object('resourceType', 'Patient', 'id', patient_id, 'meta', {meta},
                           'gender', CASE sex WHEN 'F' THEN 'female' ELSE 'male' END, 'birthDate', CAST(birth_year AS VARCHAR)) AS r
                       FROM patients ORDER BY patient_id""",
        "Observation": f"""SELECT r FROM (
            SELECT 0 AS part, p.patient_id, 0 AS n, json_object('resourceType', 'Observation', 'id', 'height-' || p.patient_id, 'meta', {meta},
                'status', 'final', 'code', json_object('coding', json_array({_lit(height)})), 'subject', {subject.replace('patient_id', 'p.patient_id')},
                'effectiveDateTime', strftime({first}, '%Y-%m-%d'),
                'valueQuantity', json_object('value', p.height_cm, 'unit', 'cm', 'system', '{SYSTEMS["UCUM"]}', 'code', 'cm')) AS r
            FROM patients p LEFT JOIN {first_day} f USING (patient_id)
            UNION ALL
            SELECT 1, p.patient_id, 0, json_object('resourceType', 'Observation', 'id', 'atypical-' || p.patient_id, 'meta', {meta},
                'status', 'final', 'code', json_object('coding', json_array({_lit(atypical)})), 'subject', {subject.replace('patient_id', 'p.patient_id')},
                'effectiveDateTime', strftime({first}, '%Y-%m-%d'), 'valueBoolean', p.atypical_features)
            FROM patients p LEFT JOIN {first_day} f USING (patient_id) WHERE p.atypical_features IS NOT NULL
            UNION ALL
            SELECT 2, patient_id, row_number() OVER (ORDER BY patient_id, time, kind),
                json_object('resourceType', 'Observation', 'id', 'm' || row_number() OVER (ORDER BY patient_id, time, kind), 'meta', {meta},
                'status', 'final', 'code', json_object('coding', json_array(CASE kind {kind_case} END)), 'subject', {subject},
                'effectiveDateTime', {_time('time')},
                'valueQuantity', json_object('value', value, 'unit', unit, 'system', '{SYSTEMS["UCUM"]}', 'code', CASE unit {ucum} END))
            FROM measurements) ORDER BY part, patient_id, n""",
        "Condition": f"""SELECT json_object('resourceType', 'Condition', 'id', 'mdd-' || p.patient_id, 'meta', {meta},
                'clinicalStatus', json_object('coding', json_array(json_object('system', 'http://terminology.hl7.org/CodeSystem/condition-clinical', 'code', 'active'))),
                'code', json_object('coding', json_array({_lit(mdd)})), 'subject', {subject.replace('patient_id', 'p.patient_id')},
                'onsetDateTime', strftime({first}, '%Y-%m-%d')) AS r
            FROM patients p LEFT JOIN {first_day} f USING (patient_id) ORDER BY p.patient_id""",
        "MedicationAdministration": f"""SELECT json_object('resourceType', 'MedicationAdministration',
                'id', 'x' || row_number() OVER (ORDER BY patient_id, time, drug), 'meta', {meta}, 'status', 'completed',
                'medicationCodeableConcept', json_object('coding', json_array(CASE drug {drugs} END)), 'subject', {subject},
                'effectivePeriod', CASE WHEN duration_min IS NULL THEN json_object('start', {_time('time')})
                    ELSE json_object('start', {_time('time')}, 'end', {_time("(time + to_microseconds(CAST(round(duration_min * 60e6) AS BIGINT)))")}) END,
                'dosage', json_object('route', json_object('coding', json_array(CASE route {routes} END)),
                    'dose', json_object('value', dose_mg, 'unit', 'mg', 'system', '{SYSTEMS["UCUM"]}', 'code', 'mg'))) AS r
            FROM exposures ORDER BY patient_id, time, drug""",
        "AdverseEvent": f"""SELECT json_object('resourceType', 'AdverseEvent', 'id', 'ae' || row_number() OVER (ORDER BY patient_id, time, term),
                'meta', {meta}, 'actuality', 'actual', 'event', json_object('coding', json_array(CASE term {ae_case} END)),
                'subject', {subject}, 'date', {_time('time')},
                'severity', json_object('coding', json_array(json_object('system', '{SEVERITY_SYSTEM}', 'code', severity)))) AS r
            FROM adverse_events ORDER BY patient_id, time, term""",
        "Procedure": f"""SELECT CASE WHEN detail IS NULL THEN j ELSE json_merge_patch(j, json_object('note', json_array(json_object('text', detail)))) END AS r
            FROM (SELECT patient_id, start, kind, detail, json_object('resourceType', 'Procedure',
                'id', 'l' || row_number() OVER (ORDER BY patient_id, start, kind), 'meta', {meta}, 'status', 'completed',
                'code', json_object('coding', json_array(CASE kind {lifestyle} END)), 'subject', {subject},
                'performedPeriod', CASE WHEN "end" IS NULL THEN json_object('start', strftime(start, '%Y-%m-%d'))
                    ELSE json_object('start', strftime(start, '%Y-%m-%d'), 'end', strftime("end", '%Y-%m-%d')) END) AS j
            FROM lifestyle) ORDER BY patient_id, start, kind""",
    }


def write_fhir(con: duckdb.DuckDBPyConnection, out: Path, provenance: Provenance, *, layout: Layout = "ndjson",
               mapping: Mapping | None = None) -> dict[str, Path]:
    """Write the canonical tables on ``con`` as ``out/<Type>.ndjson`` files or one ``out/bundle.json``."""
    mapping = mapping or load_mapping()
    out.mkdir(parents=True, exist_ok=True)
    queries = resource_queries(con, provenance, mapping)
    written: dict[str, Path] = {}
    if layout == "bundle":
        path = out / "bundle.json"
        tags = json.dumps({"tag": [{"system": PROVENANCE_SYSTEM, "code": provenance.origin, "display": provenance.source}]
                           + ([TEST_DATA_TAG] if provenance.synthetic else [])})
        with path.open("w", encoding="utf-8") as fh:
            fh.write('{"resourceType": "Bundle", "type": "collection", "meta": ' + tags + ', "entry": [\n')
            first = True
            for sql in queries.values():
                for batch in _batches(con, sql):
                    for text in batch:
                        fh.write(("" if first else ",\n") + '{"resource": ' + text + "}")
                        first = False
            fh.write("\n]}\n")
        return {"Bundle": path}
    for rtype, sql in queries.items():
        path = out / f"{rtype}.ndjson"
        with path.open("w", encoding="utf-8") as fh:
            for batch in _batches(con, sql):
                if batch:
                    fh.write("\n".join(batch) + "\n")
        written[rtype] = path
    return written


def _batches(con: duckdb.DuckDBPyConnection, sql: str):
    """The JSON texts of a query, in batches (bounded memory at a million patients)."""
    rel = con.sql(f"SELECT CAST(r AS VARCHAR) AS r FROM ({sql})")
    reader = rel.to_arrow_reader(BATCH_ROWS) if hasattr(rel, "to_arrow_reader") else rel.fetch_record_batch(BATCH_ROWS)
    for batch in reader:
        yield pa.array(batch.column(0)).to_pylist()
