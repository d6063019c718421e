"""Write canonical tables as an OMOP CDM 5.4: DDL-conformant tables with the vocabulary rows the data use.

Where each canonical field goes:

- ``patients`` → ``person`` (``person_source_value`` = patient_id, gender from the Gender vocabulary),
  a height ``measurement`` (LOINC 8302-2, cm) and, when known, an atypical-features ``observation`` (1/0),
  all dated on the first day of the person's observation period; every person also gets a major depressive
  disorder ``condition_occurrence`` (SNOMED 370143000), as every patient in a ketaweight store is a patient
  with depression assessed for ketamine.
- ``measurements`` → ``measurement`` with the kind's code and the UCUM unit concept.
- ``exposures`` → ``drug_exposure``: ketamine as the RxNorm ingredient, esketamine as its nasal-spray drug
  form, the dose in ``quantity`` with ``dose_unit_source_value`` 'mg', the route as a SNOMED route concept and
  the session's end in ``drug_exposure_end_datetime``.
- ``adverse_events`` → ``observation`` with the event's concept and the severity as ``qualifier_concept_id``.
- ``lifestyle`` → ``procedure_occurrence`` with start, end and detail (``procedure_source_value``).
- ``observation_period``: from each person's first to last record.  ``cdm_source`` and ``metadata`` say where
  the data came from: a simulated store stays "simulated" (:data:`~.reader.PROVENANCE_METADATA`).

Concept ids are local (from 2,000,000,000, the range OMOP reserves for site concepts): Athena's ids cannot be
shipped here, and readers that resolve by vocabulary and code (as ketaweight's does) need none.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Literal

import duckdb
import pyarrow as pa

from ketaweight.core.duckdb_connection import connect
from ketaweight.core.provenance import Provenance
from ketaweight.core.schema import MEASUREMENT_KINDS
from ketaweight.core.version import __version__
from ketaweight.sources.omop.ddl import ALL_TABLES, create_sql, duckdb_type
from ketaweight.sources.omop.mapping import Mapping, load_mapping
from ketaweight.sources.omop.reader import PROVENANCE_METADATA

LOCAL_CONCEPT_BASE = 2_000_000_000
UCUM = {"kg": "kg", "g": "g", "lb": "[lb_av]", "score": "{score}", "kcal/d": "kcal/d", "kJ/d": "kJ/d", "min/d": "min/d",
        "h/d": "h/d", "bpm": "/min", "mmHg": "mm[Hg]", "cm": "cm", "mg": "mg", "au": "{au}"}
"""Canonical unit → UCUM code written as the unit concept."""

Layout = Literal["csv", "duckdb"]


def _first_code(mapping: Mapping, group: str, name: str) -> tuple[str, str]:
    s = mapping.get(group, name)
    code = next((c for c in (s.codes if s else ()) if c.code is not None), None)
    if code is None:
        raise ValueError(f"the mapping has no code for {group}.{name}; the OMOP export needs one")
    return code.vocabulary, code.code  # type: ignore[return-value]


def vocabulary_rows(mapping: Mapping, ae_terms: list[str]) -> list[dict]:
    """The concept rows an export uses: (key, concept_id, name, domain, vocabulary, class, code)."""
    rows: list[dict] = [{"key": "none", "concept_id": 0, "concept_name": "No matching concept", "domain_id": "Metadata",
                         "vocabulary_id": "None", "concept_class_id": "Undefined", "concept_code": "No matching concept",
                         "standard_concept": None}]

    def add(key: str, name: str, domain: str, vocabulary: str, cls: str, code: str, standard: str | None = "S") -> None:
        rows.append({"key": key, "concept_id": LOCAL_CONCEPT_BASE + len(rows), "concept_name": name, "domain_id": domain,
                     "vocabulary_id": vocabulary, "concept_class_id": cls, "concept_code": code, "standard_concept": standard})

    add("type", "Record from a ketaweight export", "Type Concept", "ketaweight", "Type Concept", "export_record")
    add("sex:F", "FEMALE", "Gender", "Gender", "Gender", "F")
    add("sex:M", "MALE", "Gender", "Gender", "Gender", "M")
    for kind in MEASUREMENT_KINDS.values():
        vocab, code = _first_code(mapping, "measurement", kind.name)
        add(f"kind:{kind.name}", kind.description, "Measurement", vocab, "Clinical Observation", code)
    add("height", "Body height", "Measurement", *_first_code(mapping, "patient", "height_cm")[:1], "Clinical Observation",
        _first_code(mapping, "patient", "height_cm")[1])
    add("atypical", "Depression with atypical features", "Observation",
        *_first_code(mapping, "patient", "atypical_features")[:1], "Clinical Finding", _first_code(mapping, "patient", "atypical_features")[1])
    add("mdd", "Major depressive disorder", "Condition", *_first_code(mapping, "condition", "major_depressive_disorder")[:1],
        "Clinical Finding", _first_code(mapping, "condition", "major_depressive_disorder")[1])
    add("drug:ketamine", "ketamine", "Drug", *_first_code(mapping, "drug", "ketamine")[:1], "Ingredient",
        _first_code(mapping, "drug", "ketamine")[1])
    add("drug:esketamine", "esketamine Nasal Spray", "Drug", *_first_code(mapping, "drug", "esketamine")[:1],
        "Clinical Drug Form", _first_code(mapping, "drug", "esketamine")[1])
    for s in mapping.group("route"):
        add(f"route:{s.name}", f"{s.name} route", "Route", *_first_code(mapping, "route", s.name)[:1], "Qualifier Value",
            _first_code(mapping, "route", s.name)[1])
    for s in mapping.group("severity"):
        add(f"severity:{s.name}", s.name.capitalize(), "Meas Value", *_first_code(mapping, "severity", s.name)[:1],
            "Qualifier Value", _first_code(mapping, "severity", s.name)[1])
    for s in mapping.group("lifestyle"):
        add(f"lifestyle:{s.name}", s.name.replace("_", " "), "Procedure", *_first_code(mapping, "lifestyle", s.name)[:1],
            "Procedure", _first_code(mapping, "lifestyle", s.name)[1])
    for term in ae_terms:
        if mapping.get("adverse_event", term) is None:
            raise ValueError(f"adverse event term {term!r} has no concept set in the mapping; add [adverse_event.\"{term}\"]")
        vocab, code = _first_code(mapping, "adverse_event", term)
        add(f"ae:{term}", term, "Condition", vocab, "PT" if vocab == "MedDRA" else "Clinical Finding", code,
            None if vocab == "MedDRA" else "S")
    for unit, code in UCUM.items():
        add(f"unit:{unit}", code, "Unit", "UCUM", "Unit", code)
    return rows


def write_omop(con: duckdb.DuckDBPyConnection, out: Path, provenance: Provenance, *, layout: Layout = "csv",
               mapping: Mapping | None = None) -> dict[str, Path]:
    """Write the canonical tables visible on ``con`` (a store's connection) as a CDM 5.4 under ``out``:
    one ``<TABLE>.csv`` per table (``layout="csv"``) or ``out/cdm.duckdb`` (``layout="duckdb"``)."""
    mapping = mapping or load_mapping()
    out.mkdir(parents=True, exist_ok=True)
    ae_terms = [r[0] for r in con.execute("SELECT DISTINCT term FROM adverse_events ORDER BY 1").fetchall()]
    vocab = vocabulary_rows(mapping, ae_terms)
    ids = {r["key"]: r["concept_id"] for r in vocab}
    con.register("_kw_concepts", pa.Table.from_pylist(vocab))
    keyed = lambda prefix: "(SELECT substr(key, " + str(len(prefix) + 1) + ") AS k, concept_id FROM _kw_concepts WHERE key LIKE '" + prefix + "%')"  # noqa: E731
    t = ids["type"]
    today = date.today().isoformat()
    queries = {
        "_kw_person": f"""SELECT row_number() OVER (ORDER BY patient_id) AS person_id, patient_id, sex, birth_year,
                                 height_cm, atypical_features FROM patients""",
        "_kw_dates": """SELECT patient_id, min(d) AS first_day, max(d) AS last_day FROM (
                            SELECT patient_id, CAST(time AS DATE) AS d FROM measurements UNION ALL
                            SELECT patient_id, CAST(time AS DATE) FROM exposures UNION ALL
                            SELECT patient_id, CAST(time + to_microseconds(CAST(round(coalesce(duration_min, 0) * 60e6) AS BIGINT)) AS DATE) FROM exposures UNION ALL
                            SELECT patient_id, CAST(time AS DATE) FROM adverse_events UNION ALL
                            SELECT patient_id, start FROM lifestyle UNION ALL
                            SELECT patient_id, coalesce("end", start) FROM lifestyle) GROUP BY patient_id""",
    }
    for name, sql in queries.items():
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")
    # A patient with no record at all is observed in their birth year's first day (a period must exist).
    cdm = {
        "person": f"""SELECT p.person_id, g.concept_id AS gender_concept_id, p.birth_year AS year_of_birth,
                             0 AS race_concept_id, 0 AS ethnicity_concept_id, p.patient_id AS person_source_value,
                             p.sex AS gender_source_value FROM _kw_person p JOIN {keyed('sex:')} g ON g.k = p.sex""",
        "observation_period": f"""SELECT p.person_id AS observation_period_id, p.person_id,
                             coalesce(d.first_day, make_date(p.birth_year, 1, 1)) AS observation_period_start_date,
                             coalesce(d.last_day, make_date(p.birth_year, 1, 1)) AS observation_period_end_date,
                             {t} AS period_type_concept_id FROM _kw_person p LEFT JOIN _kw_dates d USING (patient_id)""",
        "measurement": f"""SELECT row_number() OVER (ORDER BY src, person_id, time, measurement_concept_id) AS measurement_id, * EXCLUDE (src)
                           FROM (
                             SELECT 1 AS src, p.person_id, k.concept_id AS measurement_concept_id, CAST(m.time AS DATE) AS measurement_date,
                                    m.time AS measurement_datetime, {t} AS measurement_type_concept_id, m.value AS value_as_number,
                                    u.concept_id AS unit_concept_id, m.kind AS measurement_source_value, m.unit AS unit_source_value, m.time
                             FROM measurements m JOIN _kw_person p USING (patient_id) JOIN {keyed('kind:')} k ON k.k = m.kind
                             JOIN {keyed('unit:')} u ON u.k = m.unit
                             UNION ALL
                             SELECT 0, p.person_id, {ids['height']}, o.observation_period_start_date, CAST(o.observation_period_start_date AS TIMESTAMP),
                                    {t}, p.height_cm, {ids['unit:cm']}, 'height', 'cm', CAST(o.observation_period_start_date AS TIMESTAMP)
                             FROM _kw_person p JOIN _obs_period o USING (person_id)) x""",
        "observation": f"""SELECT row_number() OVER (ORDER BY src, person_id, observation_datetime, observation_concept_id) AS observation_id, * EXCLUDE (src)
                           FROM (
                             SELECT 0 AS src, p.person_id, {ids['atypical']} AS observation_concept_id,
                                    o.observation_period_start_date AS observation_date,
                                    CAST(o.observation_period_start_date AS TIMESTAMP) AS observation_datetime,
                                    {t} AS observation_type_concept_id, CAST(p.atypical_features AS INTEGER) AS value_as_number,
                                    CAST(NULL AS BIGINT) AS qualifier_concept_id, 'atypical_features' AS observation_source_value,
                                    CAST(NULL AS VARCHAR) AS qualifier_source_value
                             FROM _kw_person p JOIN _obs_period o USING (person_id) WHERE p.atypical_features IS NOT NULL
                             UNION ALL
                             SELECT 1, p.person_id, e.concept_id, CAST(a.time AS DATE), a.time, {t}, NULL, s.concept_id, a.term, a.severity
                             FROM adverse_events a JOIN _kw_person p USING (patient_id) JOIN {keyed('ae:')} e ON e.k = a.term
                             JOIN {keyed('severity:')} s ON s.k = a.severity) x""",
        "drug_exposure": f"""SELECT row_number() OVER (ORDER BY p.person_id, x.time, x.drug) AS drug_exposure_id, p.person_id,
                             d.concept_id AS drug_concept_id, CAST(x.time AS DATE) AS drug_exposure_start_date,
                             x.time AS drug_exposure_start_datetime,
                             CAST(coalesce(x.time + to_microseconds(CAST(round(x.duration_min * 60e6) AS BIGINT)), x.time) AS DATE) AS drug_exposure_end_date,
                             x.time + to_microseconds(CAST(round(x.duration_min * 60e6) AS BIGINT)) AS drug_exposure_end_datetime,
                             {t} AS drug_type_concept_id, x.dose_mg AS quantity, r.concept_id AS route_concept_id,
                             x.drug AS drug_source_value, x.route AS route_source_value, 'mg' AS dose_unit_source_value
                             FROM exposures x JOIN _kw_person p USING (patient_id) JOIN {keyed('drug:')} d ON d.k = x.drug
                             JOIN {keyed('route:')} r ON r.k = x.route""",
        "condition_occurrence": f"""SELECT p.person_id AS condition_occurrence_id, p.person_id, {ids['mdd']} AS condition_concept_id,
                             o.observation_period_start_date AS condition_start_date,
                             CAST(o.observation_period_start_date AS TIMESTAMP) AS condition_start_datetime,
                             {t} AS condition_type_concept_id, 'major depressive disorder' AS condition_source_value
                             FROM _kw_person p JOIN _obs_period o USING (person_id)""",
        "procedure_occurrence": f"""SELECT row_number() OVER (ORDER BY p.person_id, l.start, l.kind) AS procedure_occurrence_id, p.person_id,
                             k.concept_id AS procedure_concept_id, l.start AS procedure_date, CAST(l.start AS TIMESTAMP) AS procedure_datetime,
                             l."end" AS procedure_end_date, {t} AS procedure_type_concept_id, l.detail AS procedure_source_value
                             FROM lifestyle l JOIN _kw_person p USING (patient_id) JOIN {keyed('lifestyle:')} k ON k.k = l.kind""",
        "cdm_source": f"""SELECT {_lit(provenance.source[:255])} AS cdm_source_name, 'ketaweight' AS cdm_source_abbreviation,
                             'ketaweight export' AS cdm_holder, {_lit(_description(provenance))} AS source_description,
                             DATE '{today}' AS source_release_date, DATE '{today}' AS cdm_release_date, 'v5.4' AS cdm_version,
                             0 AS cdm_version_concept_id, 'ketaweight {__version__}' AS vocabulary_version""",
        "metadata": f"""SELECT 1 AS metadata_id, 0 AS metadata_concept_id, {t} AS metadata_type_concept_id,
                             '{PROVENANCE_METADATA}' AS name,
                             {_lit(json.dumps({'origin': provenance.origin, 'source': provenance.source, 'period': provenance.period}))} AS value_as_string,
                             DATE '{today}' AS metadata_date""",
        "concept": """SELECT concept_id, concept_name, domain_id, vocabulary_id, concept_class_id, standard_concept, concept_code,
                             DATE '1970-01-01' AS valid_start_date, DATE '2099-12-31' AS valid_end_date FROM _kw_concepts""",
        "vocabulary": f"""SELECT DISTINCT vocabulary_id, vocabulary_id AS vocabulary_name, 'ketaweight {__version__}' AS vocabulary_version,
                             0 AS vocabulary_concept_id FROM _kw_concepts""",
        "domain": "SELECT DISTINCT domain_id, domain_id AS domain_name, 0 AS domain_concept_id FROM _kw_concepts",
        "concept_class": "SELECT DISTINCT concept_class_id, concept_class_id AS concept_class_name, 0 AS concept_class_concept_id FROM _kw_concepts",
        "concept_ancestor": """SELECT concept_id AS ancestor_concept_id, concept_id AS descendant_concept_id,
                             0 AS min_levels_of_separation, 0 AS max_levels_of_separation FROM _kw_concepts WHERE concept_id <> 0""",
        "drug_strength": "SELECT * FROM (SELECT 0 AS drug_concept_id, 0 AS ingredient_concept_id) WHERE false",
    }
    con.execute(f"CREATE OR REPLACE TEMP TABLE _obs_period AS {cdm['observation_period']}")
    written: dict[str, Path] = {}
    target_db = out / "cdm.duckdb"
    out_con = None
    if layout == "duckdb":
        # A second connection: the store may be open read-only, and the rows stream across as Arrow batches.
        if target_db.exists():
            target_db.unlink()
        out_con = connect(str(target_db))
    try:
        for table, sql in cdm.items():
            select = _conform(con, table, "_obs_period" if table == "observation_period" else f"({sql})")
            if out_con is not None:
                rel = con.sql(select)
                reader = rel.to_arrow_reader() if hasattr(rel, "to_arrow_reader") else rel.fetch_record_batch()
                out_con.execute(create_sql(table, table))
                out_con.register("_kw_in", reader)
                out_con.execute(f"INSERT INTO {table} SELECT * FROM _kw_in")
                out_con.unregister("_kw_in")
                written[table] = target_db
            else:
                path = out / f"{table.upper()}.csv"
                con.execute(f"COPY ({select}) TO '{_path(path)}' (FORMAT csv, HEADER, TIMESTAMPFORMAT '%Y-%m-%d %H:%M:%S.%f')")
                written[table] = path
    finally:
        if out_con is not None:
            out_con.close()
        for name in ("_kw_person", "_kw_dates", "_obs_period"):
            con.execute(f"DROP TABLE IF EXISTS {name}")
        con.unregister("_kw_concepts")
    return written


def _conform(con: duckdb.DuckDBPyConnection, table: str, relation: str) -> str:
    """SELECT with every DDL column in order (absent ones NULL), cast to the DDL's DuckDB types."""
    have = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {relation} AS src").fetchall()}
    return "SELECT " + ", ".join(
        f"CAST({c} AS {duckdb_type(ty)}) AS {c}" if c in have else f"CAST(NULL AS {duckdb_type(ty)}) AS {c}"
        for c, ty, _r in ALL_TABLES[table]) + f" FROM {relation} AS src"


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _path(path: Path) -> str:
    return str(path).replace("'", "''")


def _description(p: Provenance) -> str:
    if p.synthetic:
        return f"SIMULATED DATA, NOT REAL PATIENTS: {p.label}. Written by ketaweight {__version__}."
    return f"{p.label}. Written by ketaweight {__version__}."


__all__ = ["LOCAL_CONCEPT_BASE", "UCUM", "vocabulary_rows", "write_omop"]
