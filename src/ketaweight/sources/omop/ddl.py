"""The OMOP CDM 5.4 tables ketaweight reads and writes, column by column as in the OHDSI DDL
(CommonDataModel v5.4), with the type each column has there.

Types are the DDL's: ``integer``, ``NUMERIC``, ``varchar``/``TEXT``, ``date``, ``TIMESTAMP``.  In DuckDB
``NUMERIC`` alone means DECIMAL(18,3), which would round values and quantities to three decimals, so the
DuckDB files we write use DOUBLE for those columns (:func:`duckdb_type`); CSV and PostgreSQL keep them exact.
"""

from __future__ import annotations

INT, NUM, TEXT, DATE, TS = "integer", "NUMERIC", "varchar", "date", "TIMESTAMP"

CDM_TABLES: dict[str, tuple[tuple[str, str, bool], ...]] = {
    # (column, type, required)
    "person": (("person_id", INT, True), ("gender_concept_id", INT, True), ("year_of_birth", INT, True),
               ("month_of_birth", INT, False), ("day_of_birth", INT, False), ("birth_datetime", TS, False),
               ("race_concept_id", INT, True), ("ethnicity_concept_id", INT, True), ("location_id", INT, False),
               ("provider_id", INT, False), ("care_site_id", INT, False), ("person_source_value", TEXT, False),
               ("gender_source_value", TEXT, False), ("gender_source_concept_id", INT, False),
               ("race_source_value", TEXT, False), ("race_source_concept_id", INT, False),
               ("ethnicity_source_value", TEXT, False), ("ethnicity_source_concept_id", INT, False)),
    "observation_period": (("observation_period_id", INT, True), ("person_id", INT, True),
                           ("observation_period_start_date", DATE, True), ("observation_period_end_date", DATE, True),
                           ("period_type_concept_id", INT, True)),
    "condition_occurrence": (("condition_occurrence_id", INT, True), ("person_id", INT, True),
                             ("condition_concept_id", INT, True), ("condition_start_date", DATE, True),
                             ("condition_start_datetime", TS, False), ("condition_end_date", DATE, False),
                             ("condition_end_datetime", TS, False), ("condition_type_concept_id", INT, True),
                             ("condition_status_concept_id", INT, False), ("stop_reason", TEXT, False),
                             ("provider_id", INT, False), ("visit_occurrence_id", INT, False),
                             ("visit_detail_id", INT, False), ("condition_source_value", TEXT, False),
                             ("condition_source_concept_id", INT, False), ("condition_status_source_value", TEXT, False)),
    "drug_exposure": (("drug_exposure_id", INT, True), ("person_id", INT, True), ("drug_concept_id", INT, True),
                      ("drug_exposure_start_date", DATE, True), ("drug_exposure_start_datetime", TS, False),
                      ("drug_exposure_end_date", DATE, True), ("drug_exposure_end_datetime", TS, False),
                      ("verbatim_end_date", DATE, False), ("drug_type_concept_id", INT, True),
                      ("stop_reason", TEXT, False), ("refills", INT, False), ("quantity", NUM, False),
                      ("days_supply", INT, False), ("sig", TEXT, False), ("route_concept_id", INT, False),
                      ("lot_number", TEXT, False), ("provider_id", INT, False), ("visit_occurrence_id", INT, False),
                      ("visit_detail_id", INT, False), ("drug_source_value", TEXT, False),
                      ("drug_source_concept_id", INT, False), ("route_source_value", TEXT, False),
                      ("dose_unit_source_value", TEXT, False)),
    "procedure_occurrence": (("procedure_occurrence_id", INT, True), ("person_id", INT, True),
                             ("procedure_concept_id", INT, True), ("procedure_date", DATE, True),
                             ("procedure_datetime", TS, False), ("procedure_end_date", DATE, False),
                             ("procedure_end_datetime", TS, False), ("procedure_type_concept_id", INT, True),
                             ("modifier_concept_id", INT, False), ("quantity", INT, False), ("provider_id", INT, False),
                             ("visit_occurrence_id", INT, False), ("visit_detail_id", INT, False),
                             ("procedure_source_value", TEXT, False), ("procedure_source_concept_id", INT, False),
                             ("modifier_source_value", TEXT, False)),
    "measurement": (("measurement_id", INT, True), ("person_id", INT, True), ("measurement_concept_id", INT, True),
                    ("measurement_date", DATE, True), ("measurement_datetime", TS, False),
                    ("measurement_time", TEXT, False), ("measurement_type_concept_id", INT, True),
                    ("operator_concept_id", INT, False), ("value_as_number", NUM, False),
                    ("value_as_concept_id", INT, False), ("unit_concept_id", INT, False), ("range_low", NUM, False),
                    ("range_high", NUM, False), ("provider_id", INT, False), ("visit_occurrence_id", INT, False),
                    ("visit_detail_id", INT, False), ("measurement_source_value", TEXT, False),
                    ("measurement_source_concept_id", INT, False), ("unit_source_value", TEXT, False),
                    ("unit_source_concept_id", INT, False), ("value_source_value", TEXT, False),
                    ("measurement_event_id", INT, False), ("meas_event_field_concept_id", INT, False)),
    "observation": (("observation_id", INT, True), ("person_id", INT, True), ("observation_concept_id", INT, True),
                    ("observation_date", DATE, True), ("observation_datetime", TS, False),
                    ("observation_type_concept_id", INT, True), ("value_as_number", NUM, False),
                    ("value_as_string", TEXT, False), ("value_as_concept_id", INT, False),
                    ("qualifier_concept_id", INT, False), ("unit_concept_id", INT, False), ("provider_id", INT, False),
                    ("visit_occurrence_id", INT, False), ("visit_detail_id", INT, False),
                    ("observation_source_value", TEXT, False), ("observation_source_concept_id", INT, False),
                    ("unit_source_value", TEXT, False), ("qualifier_source_value", TEXT, False),
                    ("value_source_value", TEXT, False), ("observation_event_id", INT, False),
                    ("obs_event_field_concept_id", INT, False)),
    "metadata": (("metadata_id", INT, True), ("metadata_concept_id", INT, True), ("metadata_type_concept_id", INT, True),
                 ("name", TEXT, True), ("value_as_string", TEXT, False), ("value_as_concept_id", INT, False),
                 ("value_as_number", NUM, False), ("metadata_date", DATE, False), ("metadata_datetime", TS, False)),
    "cdm_source": (("cdm_source_name", TEXT, True), ("cdm_source_abbreviation", TEXT, True), ("cdm_holder", TEXT, True),
                   ("source_description", TEXT, False), ("source_documentation_reference", TEXT, False),
                   ("cdm_etl_reference", TEXT, False), ("source_release_date", DATE, True),
                   ("cdm_release_date", DATE, True), ("cdm_version", TEXT, False),
                   ("cdm_version_concept_id", INT, True), ("vocabulary_version", TEXT, True)),
}

VOCABULARY_TABLES: dict[str, tuple[tuple[str, str, bool], ...]] = {
    "concept": (("concept_id", INT, True), ("concept_name", TEXT, True), ("domain_id", TEXT, True),
                ("vocabulary_id", TEXT, True), ("concept_class_id", TEXT, True), ("standard_concept", TEXT, False),
                ("concept_code", TEXT, True), ("valid_start_date", DATE, True), ("valid_end_date", DATE, True),
                ("invalid_reason", TEXT, False)),
    "vocabulary": (("vocabulary_id", TEXT, True), ("vocabulary_name", TEXT, True), ("vocabulary_reference", TEXT, False),
                   ("vocabulary_version", TEXT, False), ("vocabulary_concept_id", INT, True)),
    "domain": (("domain_id", TEXT, True), ("domain_name", TEXT, True), ("domain_concept_id", INT, True)),
    "concept_class": (("concept_class_id", TEXT, True), ("concept_class_name", TEXT, True),
                      ("concept_class_concept_id", INT, True)),
    "concept_ancestor": (("ancestor_concept_id", INT, True), ("descendant_concept_id", INT, True),
                         ("min_levels_of_separation", INT, True), ("max_levels_of_separation", INT, True)),
    "drug_strength": (("drug_concept_id", INT, True), ("ingredient_concept_id", INT, True), ("amount_value", NUM, False),
                      ("amount_unit_concept_id", INT, False), ("numerator_value", NUM, False),
                      ("numerator_unit_concept_id", INT, False), ("denominator_value", NUM, False),
                      ("denominator_unit_concept_id", INT, False), ("box_size", INT, False),
                      ("valid_start_date", DATE, True), ("valid_end_date", DATE, True), ("invalid_reason", TEXT, False)),
}

ALL_TABLES = {**CDM_TABLES, **VOCABULARY_TABLES}

REQUIRED_TABLES = ("person", "observation_period", "concept")
"""Without these nothing can be imported; the other tables are read when present."""


def duckdb_type(ddl_type: str) -> str:
    """The DuckDB column type for a DDL type (NUMERIC → DOUBLE; see the module docstring)."""
    return {INT: "BIGINT", NUM: "DOUBLE", TEXT: "VARCHAR", DATE: "DATE", TS: "TIMESTAMP"}[ddl_type]


def category(sql_type: str) -> str:
    """'int', 'number', 'text', 'date' or 'timestamp' for a type name as a database reports it."""
    t = sql_type.lower()
    if any(k in t for k in ("timestamp", "datetime")):
        return "timestamp"
    if t == "date":
        return "date"
    if any(k in t for k in ("int", "serial")):
        return "int"
    if any(k in t for k in ("numeric", "decimal", "double", "float", "real", "number")):
        return "number"
    return "text"


ACCEPTS = {INT: {"int", "number"}, NUM: {"int", "number"}, TEXT: {"text"}, DATE: {"date", "timestamp"},
           TS: {"timestamp", "date"}}
"""Database column categories that a DDL type may arrive as (numbers as numbers, dates as dates or timestamps)."""


def create_sql(table: str, qualified: str) -> str:
    """CREATE TABLE for a DuckDB file (DDL column order and NOT NULLs)."""
    cols = ",\n  ".join(f"{c} {duckdb_type(t)}{' NOT NULL' if req else ''}" for c, t, req in ALL_TABLES[table])
    return f"CREATE TABLE {qualified} (\n  {cols}\n)"


USED_COLUMNS: dict[str, tuple[str, ...]] = {
    "person": ("person_id", "gender_concept_id", "year_of_birth", "person_source_value"),
    "observation_period": ("person_id", "observation_period_start_date", "observation_period_end_date"),
    "concept": ("concept_id", "vocabulary_id", "concept_code", "concept_name", "concept_class_id"),
    "concept_ancestor": ("ancestor_concept_id", "descendant_concept_id"),
    "drug_strength": ("drug_concept_id", "ingredient_concept_id", "amount_value", "amount_unit_concept_id",
                      "numerator_value", "numerator_unit_concept_id", "denominator_value"),
    "measurement": ("measurement_id", "person_id", "measurement_concept_id", "measurement_date", "measurement_datetime",
                    "value_as_number", "unit_concept_id", "unit_source_value"),
    "observation": ("observation_id", "person_id", "observation_concept_id", "observation_date", "observation_datetime",
                    "value_as_number", "unit_concept_id", "unit_source_value", "qualifier_concept_id",
                    "qualifier_source_value", "observation_source_value"),
    "drug_exposure": ("drug_exposure_id", "person_id", "drug_concept_id", "drug_exposure_start_date",
                      "drug_exposure_start_datetime", "drug_exposure_end_datetime", "quantity", "route_concept_id",
                      "route_source_value", "dose_unit_source_value"),
    "condition_occurrence": ("condition_occurrence_id", "person_id", "condition_concept_id", "condition_start_date",
                             "condition_start_datetime", "condition_end_date", "condition_status_source_value",
                             "condition_source_value"),
    "procedure_occurrence": ("procedure_occurrence_id", "person_id", "procedure_concept_id", "procedure_date",
                             "procedure_datetime", "procedure_end_date", "procedure_source_value"),
}
"""The columns of each table the import reads: a CDM without one of them is refused (a DuckDB or PostgreSQL CDM by
:func:`~ketaweight.sources.omop.cdm.check_tables`, a CSV file by its header), never read as empty."""
