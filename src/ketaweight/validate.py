"""Validation of incoming rows against the canonical schema, in DuckDB SQL.

Rows are first *staged*: every column as text plus a ``_line`` column (the line of the CSV
file, header = line 1; for Parquet and data frames the 1-based row).  Each check is one SQL
query that returns the offending ``_line`` values, so one implementation serves CSV, Parquet
and the simulator, and ten million rows are checked in seconds.  All problems are collected
(up to a limit per check) before anything is written.
"""

from __future__ import annotations

import duckdb

from ketaweight.exceptions import Location
from ketaweight.schema import MEASUREMENT_KINDS, TABLES, Table

MAX_REPORTED_PER_CHECK = 20
"""Bad rows listed per check; a count of the rest follows."""

Problem = tuple[Location, str]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def typed_expr(table: Table, column: str, alias: str = "s") -> str:
    """SQL that parses a staged text column into its canonical type (NULL if unparsable or empty)."""
    col = table.column(column)
    raw = f"{alias}.{_q(column)}"
    if col.sql_type == "BOOLEAN":
        return (f"CASE lower(trim({raw})) WHEN 'true' THEN TRUE WHEN '1' THEN TRUE WHEN 'yes' THEN TRUE "
                f"WHEN 'false' THEN FALSE WHEN '0' THEN FALSE WHEN 'no' THEN FALSE END")
    return f"TRY_CAST(NULLIF(trim({raw}), '') AS {col.sql_type})"


def measurement_value_expr(alias: str = "s") -> str:
    """SQL for a measurement value converted to its kind's canonical unit (NULL if unit unknown)."""
    cases = []
    for kind in MEASUREMENT_KINDS.values():
        for unit, factor in kind.accepted_units.items():
            cases.append(
                f"WHEN trim({alias}.kind) = '{kind.name}' AND trim({alias}.unit) = '{unit}' "
                f"THEN {typed_expr(TABLES['measurements'], 'value', alias)} * {factor!r}"
            )
    return "CASE " + " ".join(cases) + " END"


def _collect(con: duckdb.DuckDBPyConnection, sql: str, label: str, column: str | None,
             reason: str | None, line_label: str) -> list[Problem]:
    """Run a check returning (_line, detail) rows and turn them into located problems."""
    rows = con.execute(f"SELECT _line, detail FROM ({sql}) ORDER BY _line LIMIT {MAX_REPORTED_PER_CHECK + 1}").fetchall()
    if not rows:
        return []
    total = rows if len(rows) <= MAX_REPORTED_PER_CHECK else con.execute(f"SELECT count(*) FROM ({sql})").fetchone()
    problems = [(Location(label, int(line), column, line_label), reason or str(detail)) for line, detail in rows[:MAX_REPORTED_PER_CHECK]]
    if len(rows) > MAX_REPORTED_PER_CHECK:
        extra = int(total[0]) - MAX_REPORTED_PER_CHECK
        problems.append((Location(label, None, column, line_label), f"... and {extra} more row(s) with the same problem"))
    return problems


def validate_staged(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    staged: str,
    label: str,
    *,
    line_label: str = "line",
    staged_patients: str | None = None,
) -> list[Problem]:
    """Check a staged table (text columns + ``_line``) against ``table``'s schema and the store.

    ``staged_patients`` names a staged patients table loaded in the same batch, so rows may
    reference patients that are being added together with them.
    """
    problems: list[Problem] = []
    s = f"{_q(staged)} s"

    def check(sql: str, column: str | None, reason: str | None = None) -> None:
        problems.extend(_collect(con, sql, label, column, reason, line_label))

    for col in table.columns:
        raw = f"s.{_q(col.name)}"
        typed = typed_expr(table, col.name)
        if col.required:
            check(f"SELECT _line, NULL AS detail FROM {s} WHERE {raw} IS NULL OR trim({raw}) = ''", col.name,
                  "missing value (required column; a truncated line?)")
        if col.sql_type != "VARCHAR":
            check(f"SELECT _line, 'not a valid ' || '{col.sql_type.lower()}: ' || {raw} AS detail FROM {s} "
                  f"WHERE {raw} IS NOT NULL AND trim({raw}) <> '' AND {typed} IS NULL", col.name)
        if col.allowed is not None:
            allowed = ", ".join(f"'{a}'" for a in col.allowed)
            check(f"SELECT _line, 'unknown value ' || {raw} || ' (allowed: {', '.join(col.allowed)})' AS detail "
                  f"FROM {s} WHERE trim({raw}) <> '' AND trim({raw}) NOT IN ({allowed})", col.name)
        if col.minimum is not None or col.maximum is not None:
            lo, hi = col.minimum, col.maximum
            unit = f" {col.unit}" if col.unit else ""
            conds = []
            if lo is not None:
                conds.append(f"{typed} {'<=' if col.minimum_exclusive else '<'} {lo}")
            if hi is not None:
                conds.append(f"{typed} > {hi}")
            bounds = f"{'>' if col.minimum_exclusive else '≥'} {lo:g} and ≤ {hi:g}{unit}"
            check(f"SELECT _line, 'impossible value ' || {raw} || '{unit} (must be {bounds})' AS detail "
                  f"FROM {s} WHERE {' OR '.join(conds)}", col.name)

    if table.name == "measurements":
        units = " OR ".join(
            f"(trim(s.kind) = '{k.name}' AND trim(s.unit) IN ({', '.join(repr(u) for u in k.accepted_units)}))"
            for k in MEASUREMENT_KINDS.values()
        )
        check(f"SELECT _line, 'unknown unit ' || coalesce(s.unit, '(empty)') || ' for kind ' || s.kind AS detail "
              f"FROM {s} WHERE trim(s.kind) IN ({', '.join(repr(k) for k in MEASUREMENT_KINDS)}) AND NOT ({units})", "unit")
        ranges = " OR ".join(
            f"(trim(s.kind) = '{k.name}' AND (v < {k.minimum} OR v > {k.maximum}))" for k in MEASUREMENT_KINDS.values()
        )
        check(f"SELECT _line, 'impossible ' || trim(s.kind) || ' value ' || s.value || ' ' || s.unit AS detail FROM "
              f"(SELECT *, {measurement_value_expr()} AS v FROM {s}) s WHERE v IS NOT NULL AND ({ranges})", "value")

    key_typed = ", ".join(typed_expr(table, k) for k in table.key)
    check(f"SELECT _line, 'duplicate key (' || '{', '.join(table.key)}' || ') also on ' || "
          f"'{line_label} ' || first_line AS detail FROM (SELECT _line, min(_line) OVER (PARTITION BY {key_typed}) AS first_line "
          f"FROM {s}) WHERE _line <> first_line", None)
    existing_keys = " AND ".join(f"t.{_q(k)} = {typed_expr(table, k)}" for k in table.key)
    check(f"SELECT _line, 'key already in the store' AS detail FROM {s} "
          f"WHERE EXISTS (SELECT 1 FROM {_q(table.name)} t WHERE {existing_keys})", None)

    if table.references_patients:
        known = "SELECT patient_id FROM patients"
        if staged_patients is not None:
            known += f" UNION ALL SELECT trim(patient_id) FROM {_q(staged_patients)}"
        check(f"SELECT _line, 'unknown patient (not in patients)' AS detail FROM {s} "
              f"WHERE trim(s.patient_id) <> '' AND trim(s.patient_id) NOT IN ({known})", "patient_id")
        time_col = "start" if table.name == "lifestyle" else "time"
        births = "SELECT patient_id, birth_year FROM patients"
        if staged_patients is not None:
            births += (f" UNION ALL SELECT trim(patient_id), TRY_CAST(NULLIF(trim(birth_year), '') AS INTEGER) "
                       f"FROM {_q(staged_patients)}")
        check(f"SELECT s._line, 'date before the patient''s birth year ' || b.birth_year AS detail FROM {s} "
              f"JOIN ({births}) b ON b.patient_id = trim(s.patient_id) "
              f"WHERE year({typed_expr(table, time_col)}) < b.birth_year", time_col)
    if table.name == "lifestyle":
        check(f"SELECT _line, 'end before start' AS detail FROM {s} "
              f"WHERE {typed_expr(table, 'end')} < {typed_expr(table, 'start')}", "end")
    return problems


def insert_sql(table: Table, staged: str) -> str:
    """INSERT … SELECT that parses staged text into canonical types (and units for measurements)."""
    exprs = []
    for col in table.columns:
        if table.name == "measurements" and col.name == "value":
            exprs.append(measurement_value_expr())
        elif table.name == "measurements" and col.name == "unit":
            exprs.append("CASE " + " ".join(
                f"WHEN trim(s.kind) = '{k.name}' THEN '{k.unit}'" for k in MEASUREMENT_KINDS.values()) + " END")
        elif col.sql_type == "VARCHAR":
            exprs.append(f"NULLIF(trim(s.{_q(col.name)}), '')")
        else:
            exprs.append(typed_expr(table, col.name))
    cols = ", ".join(_q(c.name) for c in table.columns)
    return f"INSERT INTO {_q(table.name)} ({cols}) SELECT {', '.join(exprs)} FROM {_q(staged)} s"


def unit_conversions(con: duckdb.DuckDBPyConnection, staged: str) -> dict[str, int]:
    """Rows of a staged measurements table that are not in their canonical unit, by 'kind: from → to'."""
    canonical = " OR ".join(f"(trim(kind) = '{k.name}' AND trim(unit) = '{k.unit}')" for k in MEASUREMENT_KINDS.values())
    rows = con.execute(
        f"SELECT trim(kind), trim(unit), count(*) FROM {_q(staged)} WHERE NOT ({canonical}) GROUP BY 1, 2 ORDER BY 1, 2"
    ).fetchall()
    return {
        f"{kind}: {unit} → {MEASUREMENT_KINDS[kind].unit} (× {MEASUREMENT_KINDS[kind].accepted_units[unit]:.8g})": n
        for kind, unit, n in rows
    }
