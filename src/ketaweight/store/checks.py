"""Validation of incoming rows against the canonical schema, in DuckDB SQL, in two passes.

**Screening** (:func:`screen`): a few queries per incoming table over its rows in their
canonical types say whether *any* row may break a rule: the per-row rules (missing, unparsable,
not allowed, out of range, end before start, unknown patient, before the birth year, a key
already in the store) as one filter; the unit rules on the (kind, unit) summary with each
pair's extreme values; duplicate keys as equal key hashes, found by sorting the hashes
(duplicates always have equal hashes; a collision of different keys merely sends the table to
the second pass).  Valid data — the common case, and the large one — are read a few times for
screening and once for inserting, with no copy of the rows as text.

**Reporting** (:func:`validate_staged`), only for a table the screening flagged: every rule as
its own query over rows *staged* with a ``_line`` column (the line of the CSV file, header =
line 1; for Parquet and data frames the 1-based row) and, for files, text values trimmed (an
empty value becomes NULL), so that a bad value is reported as it was written.  Each query returns
the offending ``_line`` values; all problems are collected (up to a limit per rule) before
anything is written.  Both passes take their per-row rules from :func:`row_checks`, so the
screening can never pass a row that the report would name.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from ketaweight.core.errors import Location
from ketaweight.core.schema import MEASUREMENT_KINDS, TABLES, Table

MAX_REPORTED_PER_CHECK = 20
"""Bad rows listed per check; a count of the rest follows."""

Problem = tuple[Location, str]

PARSE_FLAG = "_unparsed"
"""Boolean column of a typed staging of text: some value of the row did not parse."""


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def typed_expr(table: Table, column: str, alias: str = "s", *, text: bool = True) -> str:
    """SQL for a staged column in its canonical type: parsed from text (NULL if unparsable or
    empty), or the column itself when it was staged typed."""
    return text_to_typed(table.column(column).sql_type, f"{alias}.{_q(column)}") if text else f"{alias}.{_q(column)}"


def text_to_typed(sql_type: str, raw: str) -> str:
    """SQL parsing the text ``raw`` into ``sql_type`` (NULL when it does not parse)."""
    if sql_type == "BOOLEAN":
        return (f"CASE lower({raw}) WHEN 'true' THEN TRUE WHEN '1' THEN TRUE WHEN 'yes' THEN TRUE "
                f"WHEN 'false' THEN FALSE WHEN '0' THEN FALSE WHEN 'no' THEN FALSE END")
    if sql_type == "VARCHAR":
        return raw
    if sql_type in ("TIMESTAMP", "DATE"):  # 'infinity' casts to a time no record can have: not a valid value
        return f"CASE WHEN isfinite(TRY_CAST({raw} AS {sql_type})) THEN TRY_CAST({raw} AS {sql_type}) END"
    return f"TRY_CAST({raw} AS {sql_type})"


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


@dataclass(frozen=True)
class RowCheck:
    """One per-row rule: rows of alias ``s`` (with the unit row ``u`` when ``units``) where
    ``where`` holds are reported under ``column`` with ``reason``, or with the SQL text ``detail``."""

    column: str | None
    where: str
    detail: str = "NULL"
    reason: str | None = None
    units: bool = False
    after_keys: bool = False  # reported after the key and patient checks
    allowed: tuple[str, ...] | None = None
    """The allowed values when the rule is that ``column`` holds one of them (screened as a hash join)."""


def row_checks(table: Table, *, text: bool) -> list[RowCheck]:
    """The per-row rules of ``table`` over staged alias ``s``: text columns (parsed here) when
    ``text``, else columns already in their canonical types (nothing left to parse)."""
    checks: list[RowCheck] = []

    def typed(column: str) -> str:
        return typed_expr(table, column, text=text)

    for col in table.columns:
        raw = f"s.{_q(col.name)}"
        value = typed(col.name)
        if col.required:
            checks.append(RowCheck(col.name, f"{raw} IS NULL", reason="missing value (required column; a truncated line?)"))
        if text and col.sql_type != "VARCHAR":
            checks.append(RowCheck(col.name, f"{raw} IS NOT NULL AND {value} IS NULL",
                                   f"'not a valid ' || '{col.sql_type.lower()}: ' || {raw}"))
        if col.sql_type in ("TIMESTAMP", "DATE") and not text:  # typed sources (Parquet, frames) may hold ±infinity
            checks.append(RowCheck(col.name, f"NOT isfinite({value})", reason=f"not a valid {col.sql_type.lower()}: infinity"))
        if col.allowed is not None:
            allowed = ", ".join(f"'{a}'" for a in col.allowed)
            checks.append(RowCheck(col.name, f"{raw} NOT IN ({allowed})",
                                   f"'unknown value ' || {raw} || ' (allowed: {', '.join(col.allowed)})'", allowed=col.allowed))
        if col.minimum is not None or col.maximum is not None:
            lo, hi = col.minimum, col.maximum
            unit = f" {col.unit}" if col.unit else ""
            conds = []
            if lo is not None:
                conds.append(f"{value} {'<=' if col.minimum_exclusive else '<'} {lo}")
            if hi is not None:
                conds.append(f"{value} > {hi}")
            bounds = f"{'>' if col.minimum_exclusive else '≥'} {lo:g} and ≤ {hi:g}{unit}"
            checks.append(RowCheck(col.name, " OR ".join(conds),
                                   f"'impossible value ' || {raw} || '{unit} (must be {bounds})'"))
    if table.name == "measurements":
        known_kinds = ", ".join(repr(k) for k in MEASUREMENT_KINDS)
        checks.append(RowCheck("unit", f"s.kind IN ({known_kinds}) AND u.kind IS NULL",
                               "'unknown unit ' || coalesce(s.unit, '(empty)') || ' for kind ' || s.kind", units=True))
        value = typed("value")
        checks.append(RowCheck("value", f"{value} * u.factor < u.minimum OR {value} * u.factor > u.maximum",
                               "'impossible ' || u.kind || ' value ' || s.value || ' ' || s.unit", units=True))
    if table.name == "lifestyle":
        checks.append(RowCheck("end", f"{typed('end')} < {typed('start')}", reason="end before start", after_keys=True))
    return checks


def _known_patients(con: duckdb.DuckDBPyConnection, staged_patients: str | None, birth_year: str) -> str:
    """SQL relation (patient_id, birth_year) of the patients rows may reference: the store's and
    those loaded in the same batch (``birth_year``: SQL for the staged birth year, alias ``p``)."""
    known = "SELECT patient_id, birth_year FROM patients"
    if staged_patients is not None:
        known += f" UNION ALL SELECT patient_id, {birth_year} FROM {_q(staged_patients)} p"
    return known


def _time_column(table: Table) -> str:
    return "start" if table.name == "lifestyle" else "time"


def _has_rows(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return con.execute(f"SELECT EXISTS (SELECT 1 FROM {_q(table)})").fetchall()[0][0]


UnitStats = list[tuple[str | None, str | None, int, float | None, float | None]]
"""Per (kind, unit) of a measurements relation: rows, smallest and largest value (:func:`unit_stats`)."""


def unit_stats(con: duckdb.DuckDBPyConnection, relation: str) -> UnitStats:
    """(kind, unit, rows, min value, max value) of a typed measurements relation, ordered by kind and unit."""
    return con.execute(f"SELECT kind, unit, count(*), min(value), max(value) FROM {_q(relation)} GROUP BY 1, 2 ORDER BY 1, 2").fetchall()


def units_flagged(stats: UnitStats) -> bool:
    """The two unit rules of :func:`row_checks` on the (kind, unit) summary: a known kind in a unit it
    does not accept, or a value outside the kind's range once converted (the factor is positive, so
    the extremes decide; NaN counts as outside, as it compares above everything in DuckDB)."""
    for kind, unit, _n, lo, hi in stats:
        k = MEASUREMENT_KINDS.get(kind)  # type: ignore[arg-type]
        if k is None:
            continue  # an unknown kind is the allowed-values rule's
        if unit not in k.accepted_units:
            return True
        factor = k.accepted_units[unit]
        if lo is not None and not (lo * factor >= k.minimum and hi * factor <= k.maximum):  # NaN fails both
            return True
    return False


def screen(con: duckdb.DuckDBPyConnection, table: Table, relation: str, *, staged_patients: str | None = None,
           unparsed_flag: bool = False, units: UnitStats | None = None, store_keys: bool = True) -> bool:
    """Whether :func:`validate_staged` may find a problem in ``relation`` (every column of
    ``table`` in its canonical type, plus the boolean :data:`PARSE_FLAG` when ``unparsed_flag``).

    ``staged_patients`` names the typed relation of patients loaded in the same batch; ``units``
    is the measurements' :func:`unit_stats`.  ``store_keys=False`` when ``relation`` is the store's
    own table holding only this load's rows (inserted into an empty table, inside the load's
    transaction): its keys are then not looked up among themselves as keys already in the store.
    False means there is none; True means the table needs the detailed report (which may still
    find nothing, after a key-hash collision)."""
    s = f"{_q(relation)} s"
    checks = row_checks(table, text=False)
    if any(c.units for c in checks):
        if units_flagged(units if units is not None else unit_stats(con, relation)):
            return True
    # A value against a list of tens of allowed ones, row by row, costs as much as the insert itself
    # (DuckDB evaluates an IN list inside FILTER one comparison at a time); a hash join costs little.
    for c in checks:
        if c.allowed is not None:
            col = f"s.{_q(c.column or '')}"
            values = ", ".join(f"('{a}')" for a in c.allowed)
            if con.execute(f"SELECT EXISTS (SELECT 1 FROM {s} ANTI JOIN (VALUES {values}) a(v) ON a.v = {col} "
                           f"WHERE {col} IS NOT NULL)").fetchall()[0][0]:
                return True
    conditions = [f"({c.where})" for c in checks if not c.units and c.allowed is None]
    if unparsed_flag:
        conditions.append(f"s.{PARSE_FLAG}")
    joins = ""
    if table.references_patients:
        known = _known_patients(con, staged_patients, "p.birth_year")
        joins += f" LEFT JOIN ({known}) k ON k.patient_id = s.patient_id"
        conditions.append(f"k.patient_id IS NULL OR year(s.{_q(_time_column(table))}) < k.birth_year")
    keys = ", ".join(f"s.{_q(k)}" for k in table.key)
    if store_keys and _has_rows(con, table.name):
        existing = " AND ".join(f"t.{_q(k)} = s.{_q(k)}" for k in table.key)
        conditions.append(f"EXISTS (SELECT 1 FROM {_q(table.name)} t WHERE {existing})")
    if con.execute(f"SELECT count(*) FILTER (WHERE {' OR '.join(conditions)}) FROM {s} {joins}").fetchall()[0][0]:
        return True
    if _keys_increase(con, table, relation):
        return False
    # Equal key hashes, found by sorting them (cheaper here than counting distinct hashes).
    return bool(con.execute(f"SELECT count(*) FROM (SELECT h = lag(h) OVER (ORDER BY h) AS repeated "
                            f"FROM (SELECT hash({keys}) AS h FROM {s})) WHERE repeated").fetchall()[0][0])


def _keys_increase(con: duckdb.DuckDBPyConnection, table: Table, relation: str) -> bool:
    """Whether every row's key is greater than the one before it in the relation's own order (a file
    sorted by key, as an export writes it), so that no key repeats: one streaming pass, no sort.

    ``lag(...) OVER ()`` pairs each row with the one before it in one sequence of all rows (exactly
    one row, the first, has none); a strictly increasing sequence holds no value twice.  Rows with
    an empty key value never pass (they are the required-value rule's)."""
    keys = [_q(k) for k in table.key]

    def greater(i: int) -> str:
        rest = f" OR (s.{keys[i]} = s._p{i} AND {greater(i + 1)})" if i + 1 < len(keys) else ""
        return f"(s.{keys[i]} > s._p{i}{rest})"

    lags = ", ".join(f"lag({k}) OVER () AS _p{i}" for i, k in enumerate(keys))
    return con.execute(f"SELECT count(*) FILTER (WHERE _p0 IS NULL) = 1 AND count(*) FILTER (WHERE NOT {greater(0)}) = 0 "
                       f"AND count(*) FILTER (WHERE {' OR '.join(f's.{k} IS NULL' for k in keys)}) = 0 "
                       f"FROM (SELECT {', '.join(keys)}, {lags} FROM {_q(relation)}) s").fetchall()[0][0]


def any_unparsed(con: duckdb.DuckDBPyConnection, relation: str) -> bool:
    """Whether a typed staging of text has a row with a value that did not parse (:data:`PARSE_FLAG`);
    a relation whose flag is constant FALSE (a Parquet file read natively) is not read at all."""
    return con.execute(f"SELECT EXISTS (SELECT 1 FROM {_q(relation)} WHERE {PARSE_FLAG})").fetchall()[0][0]


def _collect(con: duckdb.DuckDBPyConnection, sql: str, label: str, column: str | None,
             reason: str | None, line_label: str) -> list[Problem]:
    """Run a check returning (_line, detail) rows and turn them into located problems."""
    rows = con.execute(f"SELECT _line, detail FROM ({sql}) ORDER BY _line LIMIT {MAX_REPORTED_PER_CHECK + 1}").fetchall()
    if not rows:
        return []
    total = rows if len(rows) <= MAX_REPORTED_PER_CHECK else con.execute(f"SELECT count(*) FROM ({sql})").fetchall()[0]
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
    """Every problem of a staged table (columns + ``_line``) against ``table``'s schema and the store.

    ``text`` says whether the staged columns are text (files) or already typed.
    ``staged_patients`` names a staged patients relation loaded in the same batch, so rows may
    reference patients that are being added together with them.
    """
    problems: list[Problem] = []
    s = f"{_q(staged)} s"

    def check(sql: str, column: str | None, reason: str | None = None) -> None:
        problems.extend(_collect(con, sql, label, column, reason, line_label))

    def typed(column: str, alias: str = "s") -> str:
        return typed_expr(table, column, alias, text=text)

    row_rules = row_checks(table, text=text)
    for rule in (r for r in row_rules if not r.after_keys):
        check(f"SELECT s._line, {rule.detail} AS detail FROM {s} {_with_units() if rule.units else ''} WHERE {rule.where}",
              rule.column, rule.reason)

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
        time_col = _time_column(table)
        births = _known_patients(con, staged_patients, typed_expr(TABLES["patients"], "birth_year", "p", text=text))
        check(f"SELECT s._line, 'date before the patient''s birth year ' || b.birth_year AS detail FROM {s} "
              f"JOIN ({births}) b ON b.patient_id = s.patient_id "
              f"WHERE year({typed(time_col)}) < b.birth_year", time_col)
    for rule in (r for r in row_rules if r.after_keys):
        check(f"SELECT s._line, {rule.detail} AS detail FROM {s} WHERE {rule.where}", rule.column, rule.reason)
    return problems


def insert_sql(table: Table, staged: str, *, text: bool = True, convert_units: bool = True) -> str:
    """INSERT … SELECT that parses staged columns into canonical types (and units for measurements;
    ``convert_units=False`` when every row is already in its kind's canonical unit)."""
    exprs = []
    convert = table.name == "measurements" and convert_units
    for col in table.columns:
        if convert and col.name == "value":
            exprs.append(f"{typed_expr(table, 'value', text=text)} * u.factor")
        elif convert and col.name == "unit":
            exprs.append("u.canonical_unit")
        elif col.sql_type == "VARCHAR":
            exprs.append(f"s.{_q(col.name)}")
        else:
            exprs.append(typed_expr(table, col.name, text=text))
    cols = ", ".join(_q(c.name) for c in table.columns)
    join = _with_units() if convert else ""
    return f"INSERT INTO {_q(table.name)} ({cols}) SELECT {', '.join(exprs)} FROM {_q(staged)} s {join}"


def unit_conversions(stats: UnitStats) -> dict[str, int]:
    """Rows not in their kind's canonical unit (from :func:`unit_stats` of valid rows), by 'kind: from → to'."""
    return {
        f"{kind}: {unit} → {MEASUREMENT_KINDS[kind].unit} (× {MEASUREMENT_KINDS[kind].accepted_units[unit]:.8g})": n
        for kind, unit, n, _lo, _hi in stats if unit != MEASUREMENT_KINDS[kind].unit  # type: ignore[index]
    }


__all__ = ["MAX_REPORTED_PER_CHECK", "PARSE_FLAG", "Problem", "RowCheck", "UnitStats", "any_unparsed", "create_units_table", "insert_sql",
           "row_checks", "screen", "text_to_typed", "typed_expr", "unit_conversions", "unit_stats", "units_flagged", "validate_staged"]
