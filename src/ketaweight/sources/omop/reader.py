"""Read an OMOP CDM 5.4 into ketaweight's canonical tables.

1. The concept sets of the mapping are resolved in the CDM's own vocabulary (:mod:`.concepts`).
2. The selection is pushed down as SQL into the source database: the persons of the population (by
   default those with major depressive disorder or a ketamine/esketamine exposure) and, for them, only the
   rows whose concepts a canonical table uses.  Per domain table, one aggregate query counts the rest by
   status (concept_id 0, a concept absent from the vocabulary, another concept) and the orphans.
3. The pulled rows are shaped into canonical tables in a local DuckDB: units from ``unit_concept_id``
   (UCUM code) or ``unit_source_value``; dose in mg from ``drug_strength`` × ``quantity`` or from
   ``quantity`` with a dose unit; route from ``route_concept_id``; each row outside an observation period,
   implausible, unconvertible or duplicated is counted with its reason, never handed on.

4. The canonical tables are written, inside that DuckDB, as Parquet files to a folder the caller gives
   (streamed, within DuckDB's memory limit, spilling to disk): no table is ever held whole in Python, so
   the import's memory does not grow with the CDM.

The store then re-validates everything it receives, scanning those files in batches
(:meth:`ketaweight.store.Store.load_frames` with Arrow datasets).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from ketaweight.core.provenance import Provenance
from ketaweight.core.schema import MEASUREMENT_KINDS, TABLES
from ketaweight.sources.import_report import Exclusion, ImportReport
from ketaweight.sources.omop.cdm import CdmConnection, check_tables
from ketaweight.sources.omop.concepts import Resolved, concept_codes, id_list, resolve, sql_str
from ketaweight.sources.omop.ddl import USED_COLUMNS
from ketaweight.sources.omop.mapping import Mapping

PROVENANCE_METADATA = "ketaweight_provenance"
"""``metadata.name`` of the row in which a ketaweight export records the data's provenance (JSON)."""


DOMAIN_CONCEPT = {"measurement": ("measurement_concept_id", "measurement_id"),
                  "observation": ("observation_concept_id", "observation_id"),
                  "drug_exposure": ("drug_concept_id", "drug_exposure_id"),
                  "condition_occurrence": ("condition_concept_id", "condition_occurrence_id"),
                  "procedure_occurrence": ("procedure_concept_id", "procedure_occurrence_id")}


@dataclass(frozen=True)
class OmopImport:
    """Canonical tables (Parquet files in canonical types, as Arrow datasets), their provenance and the import report."""

    tables: dict[str, ds.Dataset]
    provenance: Provenance
    report: ImportReport


def _provenance(cdm: CdmConnection, present: set[str], period: str | None) -> Provenance:
    """Simulated data exported by ketaweight stay simulated; everything else is real records from the CDM."""
    name = None
    if "metadata" in present:
        rows = cdm.query(f"SELECT value_as_string FROM {cdm.table('metadata')} "
                         f"WHERE name = {sql_str(PROVENANCE_METADATA)}").to_pylist()
        if rows and rows[0]["value_as_string"]:
            try:
                d = json.loads(rows[0]["value_as_string"])
                if d.get("origin") in ("simulated", "synthetic"):
                    return Provenance(d["origin"], d["source"], d.get("period"))
            except (ValueError, KeyError, TypeError):
                pass  # a foreign or damaged metadata row: the data are described as real records below
    if "cdm_source" in present:
        rows = cdm.query(f"SELECT cdm_source_name FROM {cdm.table('cdm_source')}").to_pylist()
        name = rows[0]["cdm_source_name"] if rows else None
    what = f"records from the OMOP CDM '{name}' ({cdm.label})" if name else f"records from the OMOP CDM at {cdm.label}"
    return Provenance("real", what, period)


def _population_sql(cdm: CdmConnection, mapping: Mapping, resolved: Resolved, present: set[str]) -> tuple[str, str]:
    """The CTE selecting persons, and a description of the rule."""
    person = cdm.table("person")
    if not mapping.population:
        return f"sel AS (SELECT person_id FROM {person})", "all persons"
    tests = []
    for name in mapping.population:
        group = next(s.group for s in mapping.sets if s.name == name)
        ids = resolved.ids(group, name)
        if not ids:
            continue
        table = {"condition": "condition_occurrence", "drug": "drug_exposure"}.get(group, "observation")
        if table not in present:
            continue
        col = DOMAIN_CONCEPT[table][0]
        tests.append(f"EXISTS (SELECT 1 FROM {cdm.table(table)} x WHERE x.person_id = p.person_id AND x.{col} IN {id_list(ids)})")
    rule = "persons with " + " or ".join(n.replace("_", " ") for n in mapping.population)
    if not tests:
        return f"sel AS (SELECT person_id FROM {person} WHERE 1 = 0)", rule
    return f"sel AS (SELECT p.person_id FROM {person} p WHERE {' OR '.join(tests)})", rule


def read_omop(cdm: CdmConnection, mapping: Mapping, out_dir: Path) -> OmopImport:
    """Read the CDM behind ``cdm`` into canonical tables, written as Parquet files to the folder ``out_dir``
    (raises InputError naming the table and column of any structural problem; row-level problems are
    counted in the report)."""
    found = check_tables(cdm, USED_COLUMNS)
    present = set(found)
    report = ImportReport("OMOP CDM 5.4", cdm.label)
    if "concept_ancestor" not in present:
        report.notes.append("the vocabulary has no concept_ancestor table: only the listed concepts themselves are used, "
                            "not their descendants")
    if "drug_strength" not in present:
        report.notes.append("the vocabulary has no drug_strength table: doses come from quantity and dose_unit_source_value only")
    resolved = resolve(cdm, mapping, "concept_ancestor" in present)
    report.concepts = resolved.notes
    for group, ids in resolved.ambiguous.items():
        report.notes.append(f"{len(ids)} concept(s) belong to two {group} sets and are used by neither")
    sel, rule = _population_sql(cdm, mapping, resolved, present)
    report.population = rule
    if cdm.kind not in ("postgresql", "spark"):  # a local source: select the persons once, not in every scan of its rows
        cdm.work.execute(f"CREATE OR REPLACE TEMP TABLE _selected AS WITH {sel} SELECT person_id FROM sel")
        sel = "sel AS (SELECT person_id FROM _selected)"
    report.persons_in_source = int(cdm.query(f"SELECT count(*) AS n FROM {cdm.table('person')}").column(0)[0].as_py())

    w = cdm.work
    _pull(cdm, sel, resolved, present, report)
    report.persons_selected = w.execute("SELECT count(*) FROM persons").fetchall()[0][0]
    _register_lookups(w, cdm, mapping, resolved)
    tables = shape_canonical(w, mapping, report, out_dir)
    period_row = w.execute("SELECT min(start_date), max(end_date) FROM periods JOIN patients_ok USING (person_id)").fetchall()[0]
    period = f"{period_row[0]} to {period_row[1]}" if period_row and period_row[0] is not None else None
    provenance = _provenance(cdm, present, period)
    return OmopImport(tables, provenance, report)


EMPTY = {
    "meas": "src VARCHAR, row_id BIGINT, person_id BIGINT, concept_id BIGINT, time TIMESTAMP, value DOUBLE, "
            "unit_concept_id BIGINT, unit_source_value VARCHAR",
    "drugs": "row_id BIGINT, person_id BIGINT, concept_id BIGINT, time TIMESTAMP, end_time TIMESTAMP, quantity DOUBLE, "
             "route_concept_id BIGINT, route_source_value VARCHAR, dose_unit_source_value VARCHAR",
    "events": "src VARCHAR, row_id BIGINT, person_id BIGINT, concept_id BIGINT, time TIMESTAMP, end_date DATE, "
              "qualifier_concept_id BIGINT, qualifier_source_value VARCHAR, source_value VARCHAR",
}
"""Columns of the pulled relations (as created when a source has no such rows)."""


def _pull(cdm: CdmConnection, sel: str, resolved: Resolved, present: set[str], report: ImportReport) -> None:
    """The pushed-down queries, their results as tables ``persons``, ``periods``, ``meas``, ``drugs`` and
    ``events`` of the local DuckDB (:attr:`CdmConnection.work`): persons, their observation periods, and the
    rows of used concepts, with only the columns the shaping reads."""
    t = cdm.table
    in_sel = "person_id IN (SELECT person_id FROM sel)"
    w = cdm.work
    cdm.into("persons", 
        f"WITH {sel} SELECT CAST(person_id AS BIGINT) AS person_id, CAST(gender_concept_id AS BIGINT) AS gender_concept_id, "
        f"CAST(year_of_birth AS BIGINT) AS year_of_birth, person_source_value, CAST(person_id AS BIGINT) AS row_id "
        f"FROM {t('person')} WHERE {in_sel}")
    cdm.into("periods", 
        f"WITH {sel} SELECT CAST(person_id AS BIGINT) AS person_id, CAST(observation_period_start_date AS DATE) AS start_date, "
        f"CAST(observation_period_end_date AS DATE) AS end_date FROM {t('observation_period')} WHERE {in_sel}")
    meas_ids = resolved.ids("measurement") | resolved.ids("patient") | resolved.ids("counted")
    event_ids = resolved.ids("adverse_event") | resolved.ids("lifestyle") | resolved.ids("condition")
    drug_ids = resolved.ids("drug")
    used: dict[str, set[int]] = {"measurement": meas_ids, "observation": meas_ids | event_ids, "drug_exposure": drug_ids,
                                 "condition_occurrence": event_ids, "procedure_occurrence": event_ids}
    parts = []
    if "measurement" in present and meas_ids:
        parts.append(f"SELECT 'measurement' AS src, CAST(measurement_id AS BIGINT) AS row_id, CAST(person_id AS BIGINT) AS person_id, "
                     f"CAST(measurement_concept_id AS BIGINT) AS concept_id, "
                     f"COALESCE(CAST(measurement_datetime AS TIMESTAMP), CAST(measurement_date AS TIMESTAMP)) AS time, "
                     f"CAST(value_as_number AS DOUBLE PRECISION) AS value, CAST(unit_concept_id AS BIGINT) AS unit_concept_id, "
                     f"unit_source_value FROM {t('measurement')} WHERE measurement_concept_id IN {id_list(meas_ids)} AND {in_sel}")
    if "observation" in present and meas_ids:
        parts.append(f"SELECT 'observation' AS src, CAST(observation_id AS BIGINT) AS row_id, CAST(person_id AS BIGINT) AS person_id, "
                     f"CAST(observation_concept_id AS BIGINT) AS concept_id, "
                     f"COALESCE(CAST(observation_datetime AS TIMESTAMP), CAST(observation_date AS TIMESTAMP)) AS time, "
                     f"CAST(value_as_number AS DOUBLE PRECISION) AS value, CAST(unit_concept_id AS BIGINT) AS unit_concept_id, "
                     f"unit_source_value FROM {t('observation')} WHERE observation_concept_id IN {id_list(meas_ids)} AND {in_sel}")
    if parts:
        cdm.into("meas", f"WITH {sel} " + " UNION ALL ".join(parts))
    else:
        w.execute(f"CREATE OR REPLACE TEMP TABLE meas ({EMPTY['meas']})")
    if "drug_exposure" in present and drug_ids:
        cdm.into("drugs", 
            f"WITH {sel} SELECT CAST(drug_exposure_id AS BIGINT) AS row_id, CAST(person_id AS BIGINT) AS person_id, "
            f"CAST(drug_concept_id AS BIGINT) AS concept_id, "
            f"COALESCE(CAST(drug_exposure_start_datetime AS TIMESTAMP), CAST(drug_exposure_start_date AS TIMESTAMP)) AS time, "
            f"CAST(drug_exposure_end_datetime AS TIMESTAMP) AS end_time, CAST(quantity AS DOUBLE PRECISION) AS quantity, "
            f"CAST(route_concept_id AS BIGINT) AS route_concept_id, route_source_value, dose_unit_source_value "
            f"FROM {t('drug_exposure')} WHERE drug_concept_id IN {id_list(drug_ids)} AND {in_sel}")
    else:
        w.execute(f"CREATE OR REPLACE TEMP TABLE drugs ({EMPTY['drugs']})")
    parts = []
    if event_ids:
        if "condition_occurrence" in present:
            parts.append(f"SELECT 'condition_occurrence' AS src, CAST(condition_occurrence_id AS BIGINT) AS row_id, "
                         f"CAST(person_id AS BIGINT) AS person_id, CAST(condition_concept_id AS BIGINT) AS concept_id, "
                         f"COALESCE(CAST(condition_start_datetime AS TIMESTAMP), CAST(condition_start_date AS TIMESTAMP)) AS time, "
                         f"CAST(condition_end_date AS DATE) AS end_date, CAST(NULL AS BIGINT) AS qualifier_concept_id, "
                         f"condition_status_source_value AS qualifier_source_value, condition_source_value AS source_value "
                         f"FROM {t('condition_occurrence')} WHERE condition_concept_id IN {id_list(event_ids)} AND {in_sel}")
        if "observation" in present:
            parts.append(f"SELECT 'observation' AS src, CAST(observation_id AS BIGINT) AS row_id, CAST(person_id AS BIGINT) AS person_id, "
                         f"CAST(observation_concept_id AS BIGINT) AS concept_id, "
                         f"COALESCE(CAST(observation_datetime AS TIMESTAMP), CAST(observation_date AS TIMESTAMP)) AS time, "
                         f"CAST(NULL AS DATE) AS end_date, CAST(qualifier_concept_id AS BIGINT) AS qualifier_concept_id, "
                         f"qualifier_source_value, observation_source_value AS source_value "
                         f"FROM {t('observation')} WHERE observation_concept_id IN {id_list(event_ids)} AND {in_sel}")
        if "procedure_occurrence" in present:
            parts.append(f"SELECT 'procedure_occurrence' AS src, CAST(procedure_occurrence_id AS BIGINT) AS row_id, "
                         f"CAST(person_id AS BIGINT) AS person_id, CAST(procedure_concept_id AS BIGINT) AS concept_id, "
                         f"COALESCE(CAST(procedure_datetime AS TIMESTAMP), CAST(procedure_date AS TIMESTAMP)) AS time, "
                         f"CAST(procedure_end_date AS DATE) AS end_date, CAST(NULL AS BIGINT) AS qualifier_concept_id, "
                         f"CAST(NULL AS VARCHAR(50)) AS qualifier_source_value, procedure_source_value AS source_value "
                         f"FROM {t('procedure_occurrence')} WHERE procedure_concept_id IN {id_list(event_ids)} AND {in_sel}")
    if parts:
        cdm.into("events", f"WITH {sel} " + " UNION ALL ".join(parts))
    else:
        w.execute(f"CREATE OR REPLACE TEMP TABLE events ({EMPTY['events']})")
    _count_unused(cdm, sel, used, present, report)


def _count_unused(cdm: CdmConnection, sel: str, used: dict[str, set[int]], present: set[str], report: ImportReport) -> None:
    """Count, in the source database, the selected persons' rows that no canonical table uses, by reason,
    and the rows of used concepts whose person is not in the person table."""
    concept = cdm.table("concept")
    for table, ids in used.items():
        if table not in present:
            continue
        col, _id = DOMAIN_CONCEPT[table]
        rows = cdm.query(
            f"WITH {sel} SELECT CASE WHEN x.{col} = 0 OR x.{col} IS NULL THEN 'unmapped' "
            f"WHEN NOT EXISTS (SELECT 1 FROM {concept} k WHERE k.concept_id = x.{col}) THEN 'absent' "
            f"WHEN x.{col} IN {id_list(ids)} THEN 'used' ELSE 'other' END AS status, count(*) AS n "
            f"FROM {cdm.table(table)} x WHERE x.person_id IN (SELECT person_id FROM sel) GROUP BY 1").to_pylist()
        counts = {r["status"]: int(r["n"]) for r in rows}
        report.exclude(table, "rows with concept_id 0 (no standard concept: unmapped)", counts.get("unmapped", 0))
        report.exclude(table, "rows whose concept_id is not in the vocabulary's concept table", counts.get("absent", 0))
        report.exclude(table, "rows of other concepts (not used by ketaweight)", counts.get("other", 0))
        if ids:
            orphans = cdm.query(f"SELECT count(*) AS n FROM {cdm.table(table)} x WHERE x.{col} IN {id_list(ids)} "
                                f"AND NOT EXISTS (SELECT 1 FROM {cdm.table('person')} p WHERE p.person_id = x.person_id)")
            report.exclude(table, "rows whose person_id is not in the person table (orphans)", int(orphans.column(0)[0].as_py()))


def _register_lookups(w: duckdb.DuckDBPyConnection, cdm: CdmConnection, mapping: Mapping, resolved: Resolved) -> None:
    """Small lookup tables in the local DuckDB: concept → set, units, genders, routes, strengths, kinds."""
    w.register("cmap", resolved.frame(("measurement", "patient", "counted", "drug", "condition", "route", "severity",
                                       "adverse_event", "lifestyle")))
    unit_ids = {r[0] for r in w.execute("SELECT DISTINCT unit_concept_id FROM meas WHERE unit_concept_id <> 0").fetchall()}
    strengths = _strengths(cdm, resolved, {r[0] for r in w.execute("SELECT DISTINCT concept_id FROM drugs").fetchall()})
    unit_ids |= set(strengths.column("amount_unit_concept_id").drop_null().to_pylist())
    unit_ids |= set(strengths.column("numerator_unit_concept_id").drop_null().to_pylist())
    codes = concept_codes(cdm, None, ids=unit_ids)
    w.register("unit_codes", pa.table({"unit_concept_id": pa.array(list(codes), pa.int64()),
                                       "code": pa.array(list(codes.values()), pa.string())}))
    register_common(w, mapping)
    gender = concept_codes(cdm, "Gender", ["F", "M"])
    w.register("genders", pa.table({"gender_concept_id": pa.array(list(gender), pa.int64()),
                                    "sex": pa.array(list(gender.values()), pa.string())}))
    w.register("strengths", strengths)


def register_common(w: duckdb.DuckDBPyConnection, mapping: Mapping) -> None:
    """Lookups every source shares: unit and dose-unit tables, the kinds' accepted units and ranges, and the
    route/severity source values."""
    w.register("units", pa.table({"code": pa.array(list(mapping.units), pa.string()),
                                  "store_unit": pa.array([u for u, _f in mapping.units.values()], pa.string()),
                                  "factor": pa.array([f for _u, f in mapping.units.values()], pa.float64())}))
    w.register("dose_units", pa.table({"code": pa.array(list(mapping.dose_units), pa.string()),
                                       "factor": pa.array(list(mapping.dose_units.values()), pa.float64())}))
    rows = [(k.name, unit, factor, k.minimum, k.maximum) for k in MEASUREMENT_KINDS.values()
            for unit, factor in k.accepted_units.items()]
    w.register("canonical_units", pa.table({"kind": list(MEASUREMENT_KINDS),
                                            "unit": [k.unit for k in MEASUREMENT_KINDS.values()]}))
    w.register("kinds", pa.table({"kind": [r[0] for r in rows], "store_unit": [r[1] for r in rows],
                                  "kind_factor": [r[2] for r in rows], "minimum": [float(r[3]) for r in rows],
                                  "maximum": [float(r[4]) for r in rows]}))
    sv = [(v, s.name, s.group) for s in mapping.sets if s.group in ("route", "severity") for v in s.source_values]
    w.register("source_values", pa.table({"value": [r[0] for r in sv], "name": [r[1] for r in sv], "grp": [r[2] for r in sv]}))


def _strengths(cdm: CdmConnection, resolved: Resolved, drug_ids: set[int]) -> pa.Table:
    """drug_strength rows of the exposed drugs for their ketamine/esketamine ingredient."""
    ingredients = set().union(*resolved.ingredients.values()) if resolved.ingredients else set()
    empty = pa.table({"drug_concept_id": pa.array([], pa.int64()), "ingredient_concept_id": pa.array([], pa.int64()),
                      "amount_value": pa.array([], pa.float64()), "amount_unit_concept_id": pa.array([], pa.int64()),
                      "numerator_value": pa.array([], pa.float64()), "numerator_unit_concept_id": pa.array([], pa.int64())})
    if not drug_ids or not ingredients or not resolved.descendants_resolved:
        return empty
    try:
        table = cdm.table("drug_strength")
    except KeyError:
        return empty
    return cdm.query(
        f"SELECT CAST(drug_concept_id AS BIGINT) AS drug_concept_id, CAST(ingredient_concept_id AS BIGINT) AS ingredient_concept_id, "
        f"CAST(amount_value AS DOUBLE PRECISION) AS amount_value, CAST(amount_unit_concept_id AS BIGINT) AS amount_unit_concept_id, "
        f"CAST(numerator_value AS DOUBLE PRECISION) AS numerator_value, "
        f"CAST(numerator_unit_concept_id AS BIGINT) AS numerator_unit_concept_id FROM {table} "
        f"WHERE drug_concept_id IN {id_list(drug_ids)} AND ingredient_concept_id IN {id_list(ingredients)}")


Locate = Callable[[str, int], str]
"""(source table or resource type, row id) → how the owner's receipt names that record."""


def _cdm_locate(table: str, row_id: int) -> str:
    return f"{_ID_COLUMN.get(table, 'row id')} {row_id}"


def _count(w: duckdb.DuckDBPyConnection, report: ImportReport, relation: str, label_sql: str, locate: Locate) -> None:
    """Add exclusions from ``relation`` (columns reason, src/table label, row_id) to the report."""
    rows = w.execute(f"SELECT {label_sql} AS tbl, reason, count(*) AS n, min(row_id, 5) AS ex "
                     f"FROM {relation} WHERE reason IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2").fetchall()
    for table, reason, n, examples in rows:
        report.exclude(table, reason, n, tuple(locate(table, int(e)) for e in examples))


_ID_COLUMN = {t: id_col for t, (_c, id_col) in DOMAIN_CONCEPT.items()} | {"person": "person_id"}


def shape_canonical(w: duckdb.DuckDBPyConnection, mapping: Mapping, report: ImportReport, out_dir: Path,
                    *, locate: Locate = _cdm_locate, person_table: str = "person") -> dict[str, ds.Dataset]:
    """Canonical tables from the pulled rows (relations persons, periods, meas, drugs, events and the lookups
    registered on ``w``), written as ``<table>.parquet`` to ``out_dir``; every row left out is counted with
    its reason."""
    n_persons, n_unique = w.execute("SELECT count(*), count(DISTINCT nullif(trim(person_source_value), '')) FROM persons").fetchall()[0]
    use_source = n_persons > 0 and n_unique == n_persons
    pid = "p.person_source_value" if use_source else "CAST(p.person_id AS VARCHAR)"
    if n_persons and not use_source:
        report.notes.append("patient_id is the CDM person_id (person_source_value is missing or not unique)")
    plausible_height = "h.v BETWEEN 100 AND 250"

    # --- measurement-like rows, with their set, unit and reason
    w.execute("""
        CREATE OR REPLACE TEMP VIEW m AS
        SELECT x.*, c.grp, c.name,
            CASE WHEN x.unit_concept_id IS NOT NULL AND x.unit_concept_id <> 0 THEN uc.code
                 ELSE coalesce(nullif(trim(x.unit_source_value), ''), s.unit_if_missing) END AS unit_code
        FROM meas x JOIN cmap c ON c.concept_id = x.concept_id AND c.grp IN ('measurement', 'patient', 'counted')
        LEFT JOIN unit_codes uc ON uc.unit_concept_id = x.unit_concept_id
        LEFT JOIN set_defaults s ON s.grp = c.grp AND s.name = c.name
    """.replace("set_defaults", _defaults_relation(w, mapping)))
    w.execute("""
        CREATE OR REPLACE TEMP VIEW m2 AS SELECT m.*, u.store_unit, u.factor, m.value * u.factor AS v FROM m
        LEFT JOIN units u ON u.code = m.unit_code
    """)
    # heights (cm) → patients; the most recent plausible one
    w.execute(f"""
        CREATE OR REPLACE TEMP TABLE heights AS SELECT person_id, arg_max(h.v, (h.time, h.row_id)) AS height_cm
        FROM m2 h WHERE h.grp = 'patient' AND h.name = 'height_cm' AND h.store_unit = 'cm' AND {plausible_height}
        GROUP BY person_id
    """)
    w.execute("""
        CREATE OR REPLACE TEMP TABLE atypical AS SELECT person_id, arg_max(value, (time, row_id)) AS flag
        FROM m2 WHERE grp = 'patient' AND name = 'atypical_features' AND value IN (0, 1) GROUP BY person_id
    """)
    w.execute(f"""
        CREATE OR REPLACE TEMP TABLE patients_all AS
        SELECT p.person_id, {pid} AS patient_id, g.sex, p.year_of_birth AS birth_year, h.height_cm,
            CASE WHEN a.flag IS NULL THEN NULL ELSE a.flag = 1 END AS atypical_features,
            CASE WHEN g.sex IS NULL THEN 'gender is not female or male (the store needs F or M)'
                 WHEN p.year_of_birth IS NULL OR p.year_of_birth < 1900 OR p.year_of_birth > 2030 THEN 'year of birth missing or outside 1900–2030'
                 WHEN h.height_cm IS NULL THEN 'no plausible height (100–250 cm) recorded: height is required'
                 WHEN NOT EXISTS (SELECT 1 FROM periods o WHERE o.person_id = p.person_id) THEN 'no observation period'
            END AS reason, p.row_id
        FROM persons p LEFT JOIN genders g USING (gender_concept_id)
        LEFT JOIN heights h USING (person_id) LEFT JOIN atypical a USING (person_id)
    """)
    _count(w, report, "patients_all", f"'{person_table}'", locate)
    w.execute("CREATE OR REPLACE TEMP TABLE patients_ok AS SELECT *, CAST(row_number() OVER (ORDER BY patient_id) - 1 AS INTEGER) AS pidx "
              "FROM patients_all WHERE reason IS NULL")
    report.persons_imported = w.execute("SELECT count(*) FROM patients_ok").fetchall()[0][0]
    # Overlapping periods merged first (gaps and islands), so a range join finds at most one period per row.
    w.execute("""
        CREATE OR REPLACE TEMP TABLE periods_m AS
        WITH o AS (SELECT person_id, start_date, end_date, max(end_date) OVER (PARTITION BY person_id ORDER BY start_date
                       ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end FROM periods),
             g AS (SELECT *, sum(CASE WHEN prev_end IS NULL OR start_date > prev_end THEN 1 ELSE 0 END)
                       OVER (PARTITION BY person_id ORDER BY start_date) AS island FROM o)
        SELECT person_id, min(start_date) AS start_date, max(end_date) AS end_date FROM g GROUP BY person_id, island
    """)

    def period_join(a: str, col: str) -> str:
        return (f"LEFT JOIN periods_m o ON o.person_id = {a}.person_id "
                f"AND CAST({a}.{col} AS DATE) BETWEEN o.start_date AND o.end_date")

    # --- measurements: a view, scanned once per use, so tens of millions of rows are never copied here
    w.execute(f"""
        CREATE OR REPLACE TEMP VIEW meas_r AS
        SELECT m2.src, m2.row_id, m2.person_id, p.patient_id, p.pidx, m2.time, m2.name AS kind, m2.v AS value, m2.store_unit AS unit,
            CASE WHEN m2.time IS NULL THEN 'no usable date (missing, or only to the month or year)'
                 WHEN m2.value IS NULL THEN 'no numeric value'
                 WHEN m2.unit_code IS NULL THEN 'no unit (unit_concept_id 0 and no unit_source_value)'
                 WHEN m2.store_unit IS NULL OR k.kind IS NULL THEN 'unit ' || m2.unit_code || ' not convertible to ' || kc.unit
                 WHEN m2.v * k.kind_factor < k.minimum OR m2.v * k.kind_factor > k.maximum
                      THEN 'implausible value (outside ' || k.minimum || '–' || k.maximum || ' ' || kc.unit || ')'
                 WHEN p.person_id IS NULL THEN 'person left out (see {person_table})'
                 WHEN o.person_id IS NULL THEN 'outside an observation period'
                 WHEN year(m2.time) < p.birth_year THEN 'dated before the year of birth'
            END AS reason
        FROM m2 LEFT JOIN patients_ok p USING (person_id) {period_join('m2', 'time')}
        LEFT JOIN kinds k ON k.kind = m2.name AND k.store_unit = m2.store_unit
        LEFT JOIN canonical_units kc ON kc.kind = m2.name
        WHERE m2.grp = 'measurement'
    """)
    _count(w, report, "meas_r", "src", locate)
    # Duplicated keys are rare: they are looked for in the written measurements file (sorted by the key, so a
    # duplicate is next to its twin), and only when there are some is the file written again without them.
    dups_at = len(report.excluded)
    w.execute("CREATE OR REPLACE TEMP TABLE meas_dups AS SELECT person_id, time, kind, "
              "struct_pack(src := src, row_id := row_id) AS first, CAST(0 AS BIGINT) AS n FROM meas_r LIMIT 0")
    n_bmi = w.execute("SELECT count(*) FROM m2 WHERE grp = 'counted'").fetchall()[0][0]
    report.exclude("measurement", "BMI rows (counted, not imported: BMI is derived from weight and height)", n_bmi)
    n_bad_height = w.execute(f"SELECT count(*) FROM m2 h WHERE grp = 'patient' AND name = 'height_cm' "
                             f"AND NOT (h.store_unit = 'cm' AND coalesce({plausible_height}, false))").fetchall()[0][0]
    report.exclude("measurement", "height rows without a plausible value in cm (100–250)", n_bad_height)

    # --- exposures
    w.execute(f"""
        CREATE OR REPLACE TEMP TABLE expo_r AS
        WITH d AS (
            SELECT x.*, c.name AS drug, s.amount_value, s.numerator_value,
                coalesce(au.code, nu.code) AS strength_unit,
                s.drug_concept_id IS NOT NULL AS has_strength, r.name AS route_c, sv.name AS route_s
            FROM drugs x JOIN cmap c ON c.concept_id = x.concept_id AND c.grp = 'drug'
            LEFT JOIN strengths s ON s.drug_concept_id = x.concept_id
            LEFT JOIN unit_codes au ON au.unit_concept_id = s.amount_unit_concept_id
            LEFT JOIN unit_codes nu ON nu.unit_concept_id = s.numerator_unit_concept_id
            LEFT JOIN cmap r ON r.concept_id = x.route_concept_id AND r.grp = 'route'
            LEFT JOIN source_values sv ON sv.grp = 'route' AND sv.value = lower(trim(x.route_source_value))
        ), dd AS (
            SELECT d.*, coalesce(route_c, route_s) AS route,
                CASE WHEN has_strength AND amount_value IS NOT NULL THEN quantity * amount_value * sf.factor
                     WHEN has_strength THEN quantity * numerator_value * sf.factor
                     ELSE quantity * df.factor END AS dose_mg,
                CASE WHEN end_time > time AND date_diff('second', time, end_time) <= 86400
                     THEN date_diff('microsecond', time, end_time) / 60e6 END AS duration_min,
                CASE WHEN has_strength THEN sf.factor IS NOT NULL ELSE df.factor IS NOT NULL END AS dose_known
            FROM d LEFT JOIN dose_units sf ON sf.code = lower(d.strength_unit)
            LEFT JOIN dose_units df ON df.code = lower(trim(d.dose_unit_source_value))
        )
        SELECT 'drug_exposure' AS src, dd.row_id, dd.person_id, p.patient_id, dd.time, dd.drug, dd.dose_mg, dd.route, dd.duration_min,
            CASE WHEN dd.time IS NULL THEN 'no usable date (missing, or only to the month or year)'
                 WHEN dd.quantity IS NULL OR dd.quantity <= 0 THEN 'no quantity'
                 WHEN NOT dd.dose_known THEN 'dose not computable (no drug_strength in mg and no dose unit in dose_unit_source_value)'
                 WHEN dd.dose_mg <= 0 OR dd.dose_mg > 2000 THEN 'implausible dose (must be > 0 and ≤ 2000 mg)'
                 WHEN dd.route IS NULL THEN 'route not mapped (route_concept_id ' || coalesce(CAST(dd.route_concept_id AS VARCHAR), 'empty')
                      || ', route_source_value ' || coalesce(dd.route_source_value, 'empty') || ')'
                 WHEN p.person_id IS NULL THEN 'person left out (see {person_table})'
                 WHEN o.person_id IS NULL THEN 'outside an observation period'
                 WHEN year(dd.time) < p.birth_year THEN 'dated before the year of birth'
            END AS reason
        FROM dd LEFT JOIN patients_ok p USING (person_id) {period_join('dd', 'time')}
    """)
    _dedupe(w, "expo_r", "patient_id, time, drug", "same person, start time and drug")
    _count(w, report, "expo_r", "src", locate)

    # --- adverse events and lifestyle
    w.execute(f"""
        CREATE OR REPLACE TEMP TABLE ae_r AS
        SELECT e.src, e.row_id, e.person_id, p.patient_id, e.time, c.name AS term, coalesce(q.name, sv.name) AS severity,
            CASE WHEN p.person_id IS NULL THEN 'person left out (see {person_table})'
                 WHEN e.time IS NULL THEN 'no usable date (missing, or only to the month or year)'
                 WHEN NOT EXISTS (SELECT 1 FROM expo_r x WHERE x.reason IS NULL AND x.person_id = e.person_id
                                  AND date_diff('day', CAST(x.time AS DATE), CAST(e.time AS DATE)) BETWEEN 0 AND {int(mapping.ae_window_days)})
                      THEN 'not within {int(mapping.ae_window_days)} day(s) after a ketamine or esketamine session (not an adverse event of it)'
                 WHEN coalesce(q.name, sv.name) IS NULL THEN 'adverse event without a severity'
                 WHEN o.person_id IS NULL THEN 'outside an observation period'
            END AS reason
        FROM events e JOIN cmap c ON c.concept_id = e.concept_id AND c.grp = 'adverse_event'
        LEFT JOIN patients_ok p USING (person_id) {period_join('e', 'time')}
        LEFT JOIN cmap q ON q.concept_id = e.qualifier_concept_id AND q.grp = 'severity'
        LEFT JOIN source_values sv ON sv.grp = 'severity' AND sv.value = lower(trim(e.qualifier_source_value))
    """)
    _dedupe(w, "ae_r", "patient_id, time, term", "same person, time and term")
    _count(w, report, "ae_r", "src", locate)
    w.execute(f"""
        CREATE OR REPLACE TEMP TABLE life_r AS
        SELECT e.src, e.row_id, e.person_id, p.patient_id, CAST(e.time AS DATE) AS start, e.end_date AS "end", c.name AS kind,
            e.source_value AS detail,
            CASE WHEN p.person_id IS NULL THEN 'person left out (see {person_table})'
                 WHEN e.time IS NULL THEN 'no usable date (missing, or only to the month or year)'
                 WHEN e.end_date < CAST(e.time AS DATE) THEN 'end before start'
                 WHEN o.person_id IS NULL THEN 'outside an observation period'
                 WHEN year(e.time) < p.birth_year THEN 'dated before the year of birth'
            END AS reason
        FROM events e JOIN cmap c ON c.concept_id = e.concept_id AND c.grp = 'lifestyle'
        LEFT JOIN patients_ok p USING (person_id) {period_join('e', 'time')}
    """)
    _dedupe(w, "life_r", "patient_id, start, kind", "same person, start and kind")
    _count(w, report, "life_r", "src", locate)
    for s in mapping.group("condition"):
        for label, join in (("selected", "persons"), ("imported", "patients_ok")):
            n = w.execute("SELECT count(DISTINCT e.person_id) FROM events e JOIN cmap c ON c.concept_id = e.concept_id "
                          f"AND c.grp = 'condition' AND c.name = ? JOIN {join} USING (person_id)", [s.name]).fetchall()[0][0]
            report.found[f"{label} persons with {s.name.replace('_', ' ')}"] = n

    selects = {
        "patients": "SELECT patient_id, sex, CAST(birth_year AS INTEGER) AS birth_year, height_cm, atypical_features, pidx FROM patients_ok",
        "exposures": "SELECT patient_id, time, drug, dose_mg, route, duration_min, pidx FROM expo_r JOIN patients_ok USING (patient_id) "
                     "WHERE expo_r.reason IS NULL",
        "measurements": "SELECT r.patient_id, r.time, r.kind, r.value, r.unit, r.pidx FROM meas_r r "
                        "LEFT JOIN meas_dups d ON d.person_id = r.person_id AND d.time = r.time AND d.kind = r.kind "
                        "WHERE r.reason IS NULL AND (d.first IS NULL OR d.first = struct_pack(src := r.src, row_id := r.row_id))",
        "lifestyle": 'SELECT patient_id, start, "end", kind, detail, pidx FROM life_r JOIN patients_ok USING (patient_id) '
                     "WHERE life_r.reason IS NULL",
        "adverse_events": "SELECT patient_id, time, term, severity, pidx FROM ae_r JOIN patients_ok USING (patient_id) "
                          "WHERE ae_r.reason IS NULL",
    }
    tables = {name: _write_parquet(w, name, sql, out_dir, report) for name, sql in selects.items()}
    if _has_adjacent_keys(tables["measurements"]):
        w.execute("""CREATE OR REPLACE TEMP TABLE meas_dups AS
                     WITH k AS (SELECT person_id, time, kind FROM meas_r WHERE reason IS NULL GROUP BY ALL HAVING count(*) > 1)
                     SELECT r.person_id, r.time, r.kind, min(struct_pack(src := r.src, row_id := r.row_id)) AS first, count(*) - 1 AS n
                     FROM meas_r r JOIN k USING (person_id, time, kind) WHERE r.reason IS NULL GROUP BY ALL""")
        found = w.execute("SELECT first.src, sum(n) FROM meas_dups GROUP BY 1").fetchall()
        report.excluded[dups_at:dups_at] = [Exclusion(src, "duplicate (same person, time and kind); the first by row id is kept",
                                                      int(n)) for src, n in found if n]
        tables["measurements"] = _write_parquet(w, "measurements", selects["measurements"], out_dir, report)
    return tables


def _has_adjacent_keys(dataset: ds.Dataset) -> bool:
    """Whether two consecutive rows of a measurements file sorted by its key have the same key (patient, time,
    kind): one streamed pass over three columns, comparing each row with the one before it."""
    previous = None
    for batch in dataset.to_batches(columns=["patient_id", "time", "kind"]):
        if batch.num_rows == 0:
            continue
        cols = [_codes(batch.column(i)) for i in range(3)]
        same = pc.and_(pc.and_(pc.equal(cols[0][1:], cols[0][:-1]), pc.equal(cols[1][1:], cols[1][:-1])),
                       pc.equal(cols[2][1:], cols[2][:-1]))
        if pc.any(same).as_py():
            return True
        first = tuple(batch.column(i)[0].as_py() for i in range(3))
        if first == previous:
            return True
        previous = tuple(batch.column(i)[batch.num_rows - 1].as_py() for i in range(3))
    return False


def _codes(column: pa.Array) -> pa.Array:
    """A column as values that compare equal exactly when its values do: a dictionary array's indices (when its
    dictionary holds each value once), else the column itself."""
    if pa.types.is_dictionary(column.type):
        if len(pc.unique(column.dictionary)) == len(column.dictionary):
            return column.indices
        return column.dictionary_decode()
    return column


CATEGORICAL = ("patient_id", "sex", "drug", "route", "kind", "unit", "term", "severity")
"""Text columns read back as Arrow dictionaries: tens of millions of measurements then take a few bytes per
value in the store's scans instead of a string each."""


def _write_parquet(w: duckdb.DuckDBPyConnection, name: str, sql: str, out_dir: Path, report: ImportReport) -> ds.Dataset:
    """Write the rows of ``sql`` (canonical columns + ``pidx``), in the order of the table's key, to
    ``out_dir/<name>.parquet`` inside DuckDB (streamed, bounded by its memory limit, spilling to disk) and
    return the file as an Arrow dataset, which the store scans in batches as often as it needs."""
    order = ", ".join("pidx" if k == "patient_id" else f'"{k}"' for k in TABLES[name].key)
    path = out_dir / f"{name}.parquet"
    # Kept in the order of the key (as the canonical tables have always been handed to the store).
    w.execute("SET preserve_insertion_order = true")
    w.sql(f"SELECT * EXCLUDE (pidx) FROM ({sql}) ORDER BY {order}").write_parquet(str(path), compression="lz4")
    dataset = ds.dataset(path, format=ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(
        dictionary_columns=[c for c in CATEGORICAL if c in TABLES[name].column_names])))
    report.rows[name] = dataset.count_rows()
    if name == "measurements":
        kinds = w.execute("SELECT kind, count(*) FROM read_parquet(?) GROUP BY 1 ORDER BY 1", [str(path)]).fetchall()
        report.kinds = {k: int(n) for k, n in kinds}
    return dataset


def _defaults_relation(w: duckdb.DuckDBPyConnection, mapping: Mapping) -> str:
    rows = [(s.group, s.name, s.unit_if_missing) for s in mapping.sets]
    w.register("set_defaults_t", pa.table({"grp": [r[0] for r in rows], "name": [r[1] for r in rows],
                                           "unit_if_missing": pa.array([r[2] for r in rows], pa.string())}))
    return "set_defaults_t"


def _dedupe(w: duckdb.DuckDBPyConnection, table: str, key: str, what: str) -> None:
    """Mark all but the first (by source table and row id) of rows sharing a canonical key as duplicates.

    Duplicated keys are found by one hash aggregate first (they are rare); only their rows are then updated,
    so a clean table of tens of millions of rows costs one GROUP BY, not a sort."""
    cols = [c.strip() for c in key.split(",")]
    group = ", ".join(cols)
    w.execute(f"""CREATE OR REPLACE TEMP TABLE _dups AS SELECT {group}, min(struct_pack(src := src, row_id := row_id)) AS first FROM {table}
                  WHERE reason IS NULL GROUP BY {group} HAVING count(*) > 1""")
    if w.execute("SELECT count(*) FROM _dups").fetchall()[0][0]:
        match = " AND ".join(f'{table}.{c} = d.{c}' for c in cols)
        w.execute(f"""UPDATE {table} SET reason = 'duplicate ({what}); the first by row id is kept' FROM _dups d
                      WHERE {table}.reason IS NULL AND {match} AND struct_pack(src := {table}.src, row_id := {table}.row_id) <> d.first""")
    w.execute("DROP TABLE _dups")
