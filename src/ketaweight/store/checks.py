"""Validation of incoming rows against the canonical schema, in DuckDB SQL.

Rows are first *staged* with a ``_line`` column and text values trimmed (an empty value
becomes NULL) (the line of the CSV file, header = line 1;
for Parquet and data frames the 1-based row).  Files are staged as text, so that a value
that does not parse is reported as written; typed data frames (the simulator's Arrow
tables) are staged in their canonical types and skip the parse checks.  Each check is one
SQL query that returns the offending ``_line`` values, so one implementation serves CSV,
Parquet and the simulator.  All problems are collected (up to a limit per check) before
anything is written.
"""

from __future__ import annotations

import duckdb

from ketaweight.core.errors import Location
from ketaweight.core.schema import MEASUREMENT_KINDS, TABLES, Table

MAX_REPORTED_PER_CHECK = 20
"""Bad rows listed per check; a count of the rest follows."""

Problem = tuple[Location, str]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def typed_expr(table: Table, column: str, alias: str = "s", *, text: bool = True) -> str:
    """SQL for a staged column in its canonical type: parsed from text (NULL if unparsable or
    empty), or the column itself when it was staged typed."""
    col = table.column(column)
    raw = f"{alias}.{_q(column)}"
    if not text:
        return raw
    if col.sql_type == "BOOLEAN":
        return (f"CASE lower({raw}) WHEN 'true' THEN TRUE WHEN '1' THEN TRUE WHEN 'yes' THEN TRUE "
                f"WHEN 'false' THEN FALSE WHEN '0' THEN FALSE WHEN 'no' THEN FALSE END")
    return f"TRY_CAST({raw} AS {col.sql_type})"


UNITS_TABLE = "_measurement_units"


def create_units_table(con: duckdb.DuckDBPyConnection) -> None:
    """A temporary table of (kind, unit, factor to canonical, canonical unit, minimum, maximum).

    Joining on it is much faster than a CASE over every kind and unit on tens of millions of rows.
    """
    rows = [
        (k.name, unit, factor, k.unit, k.minimum, k.maximum)
        for k in MEASUREMENT_KINDS.values() for unit, factor in k.accepted_units.items()
    ]
    con.execute(f"CREATE OR REPLACE TEMP TABLE {UNITS_TABLE} (kind VARCHAR, unit VARCHAR, factor DOUBLE, "
                "canonical_unit VARCHAR, minimum DOUBLE, maximum DOUBLE)")
    con.executemany(f"INSERT INTO {UNITS_TABLE} VALUES (?, ?, ?, ?, ?, ?)", rows)


def _with_units(staged_alias: str = "s") -> str:
    """LEFT JOIN clause attaching the unit row ``u`` to each staged measurement."""
    return f"LEFT JOIN {UNITS_TABLE} u ON u.kind = {staged_alias}.kind AND u.unit = {staged_alias}.unit"


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
    text: bool = True,
) -> list[Problem]:
    """Check a staged table (columns + ``_line``) against ``table``'s schema and the store.

    ``text`` says whether the staged columns are text (files) or already typed.
    ``staged_patients`` names a staged patients table loaded in the same batch, so rows may
    reference patients that are being added together with them.
    """
    problems: list[Problem] = []
    s = f"{_q(staged)} s"

    def check(sql: str, column: str | None, reason: str | None = None) -> None:
        problems.extend(_collect(con, sql, label, column, reason, line_label))

    def typed(column: str, alias: str = "s") -> str:
        return typed_expr(table, column, alias, text=text)

    for col in table.columns:
        raw = f"s.{_q(col.name)}"
        value = typed(col.name)
        if col.required:
            check(f"SELECT _line, NULL AS detail FROM {s} WHERE {raw} IS NULL", col.name,
                  "missing value (required column; a truncated line?)")
        if text and col.sql_type != "VARCHAR":
            check(f"SELECT _line, 'not a valid ' || '{col.sql_type.lower()}: ' || {raw} AS detail FROM {s} "
                  f"WHERE {raw} IS NOT NULL AND {value} IS NULL", col.name)
        if col.allowed is not None:
            allowed = ", ".join(f"'{a}'" for a in col.allowed)
            check(f"SELECT _line, 'unknown value ' || {raw} || ' (allowed: {', '.join(col.allowed)})' AS detail "
                  f"FROM {s} WHERE {raw} NOT IN ({allowed})", col.name)
        if col.minimum is not None or col.maximum is not None:
            lo, hi = col.minimum, col.maximum
            unit = f" {col.unit}" if col.unit else ""
            conds = []
            if lo is not None:
                conds.append(f"{value} {'<=' if col.minimum_exclusive else '<'} {lo}")
            if hi is not None:
                conds.append(f"{value} > {hi}")
            bounds = f"{'>' if col.minimum_exclusive else '≥'} {lo:g} and ≤ {hi:g}{unit}"
            check(f"SELECT _line, 'impossible value ' || {raw} || '{unit} (must be {bounds})' AS detail "
                  f"FROM {s} WHERE {' OR '.join(conds)}", col.name)

    if table.name == "measurements":
        create_units_table(con)
        known_kinds = ", ".join(repr(k) for k in MEASUREMENT_KINDS)
        check(f"SELECT s._line, 'unknown unit ' || coalesce(s.unit, '(empty)') || ' for kind ' || s.kind AS detail "
              f"FROM {s} {_with_units()} WHERE s.kind IN ({known_kinds}) AND u.kind IS NULL", "unit")
        value = typed("value")
        check(f"SELECT s._line, 'impossible ' || u.kind || ' value ' || s.value || ' ' || s.unit AS detail "
              f"FROM {s} {_with_units()} WHERE {value} * u.factor < u.minimum OR {value} * u.factor > u.maximum", "value")

    # Aggregate first (cheap hash group-by); only duplicated keys are joined back for their lines.
    key_cols = ", ".join(f"{typed(k)} AS k{i}" for i, k in enumerate(table.key))
    key_join = " AND ".join(f"d.k{i} = {typed(k)}" for i, k in enumerate(table.key))
    group = ", ".join(f"k{i}" for i in range(len(table.key)))
    check(f"SELECT s._line, 'duplicate key ({', '.join(table.key)}) also on {line_label} ' || d.first_line AS detail "
          f"FROM {s} JOIN (SELECT {group}, min(_line) AS first_line FROM (SELECT _line, {key_cols} FROM {s}) "
          f"GROUP BY {group} HAVING count(*) > 1) d ON {key_join} WHERE s._line <> d.first_line", None)
    existing_keys = " AND ".join(f"t.{_q(k)} = {typed(k)}" for k in table.key)
    check(f"SELECT _line, 'key already in the store' AS detail FROM {s} "
          f"WHERE EXISTS (SELECT 1 FROM {_q(table.name)} t WHERE {existing_keys})", None)

    if table.references_patients:
        known = "SELECT patient_id FROM patients"
        if staged_patients is not None:
            known += f" UNION ALL SELECT patient_id FROM {_q(staged_patients)}"
        check(f"SELECT s._line, 'unknown patient (not in patients)' AS detail FROM {s} "
              f"ANTI JOIN ({known}) k ON k.patient_id = s.patient_id", "patient_id")
        time_col = "start" if table.name == "lifestyle" else "time"
        births = "SELECT patient_id, birth_year FROM patients"
        if staged_patients is not None:
            births += (f" UNION ALL SELECT patient_id, {typed_expr(TABLES['patients'], 'birth_year', 'p', text=text)} "
                       f"FROM {_q(staged_patients)} p")
        check(f"SELECT s._line, 'date before the patient''s birth year ' || b.birth_year AS detail FROM {s} "
              f"JOIN ({births}) b ON b.patient_id = s.patient_id "
              f"WHERE year({typed(time_col)}) < b.birth_year", time_col)
    if table.name == "lifestyle":
        check(f"SELECT _line, 'end before start' AS detail FROM {s} "
              f"WHERE {typed('end')} < {typed('start')}", "end")
    return problems


def insert_sql(table: Table, staged: str, *, text: bool = True) -> str:
    """INSERT … SELECT that parses staged columns into canonical types (and units for measurements)."""
    exprs = []
    for col in table.columns:
        if table.name == "measurements" and col.name == "value":
            exprs.append(f"{typed_expr(table, 'value', text=text)} * u.factor")
        elif table.name == "measurements" and col.name == "unit":
            exprs.append("u.canonical_unit")
        elif col.sql_type == "VARCHAR":
            exprs.append(f"s.{_q(col.name)}")
        else:
            exprs.append(typed_expr(table, col.name, text=text))
    cols = ", ".join(_q(c.name) for c in table.columns)
    join = _with_units() if table.name == "measurements" else ""
    return f"INSERT INTO {_q(table.name)} ({cols}) SELECT {', '.join(exprs)} FROM {_q(staged)} s {join}"


def unit_conversions(con: duckdb.DuckDBPyConnection, staged: str) -> dict[str, int]:
    """Rows of a staged measurements table that are not in their canonical unit, by 'kind: from → to'."""
    canonical = " OR ".join(f"(kind = '{k.name}' AND unit = '{k.unit}')" for k in MEASUREMENT_KINDS.values())
    rows = con.execute(
        f"SELECT kind, unit, count(*) FROM {_q(staged)} WHERE NOT ({canonical}) GROUP BY 1, 2 ORDER BY 1, 2"
    ).fetchall()
    return {
        f"{kind}: {unit} → {MEASUREMENT_KINDS[kind].unit} (× {MEASUREMENT_KINDS[kind].accepted_units[unit]:.8g})": n
        for kind, unit, n in rows
    }
