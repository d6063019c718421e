"""Observations read in SQL: their JSON lines go to DuckDB in batches, parsed there once into the elements
ketaweight reads, and become measurement rows there.

A bulk export is mostly Observations (a weight, a PHQ-9, a blood pressure every visit), so this is where the
per-resource cost of an import lies: the reader validates each line (:mod:`.validation`) and hands the
line's text on without touching it further; matching codes, choosing the value and unit, parsing the time
and resolving the subject happen here, in DuckDB, in the same way the reader does for the other resource
types (:meth:`ketaweight.sources.fhir.reader._Codes.match`, :func:`~ketaweight.sources.fhir.reader.parse_time`):

* the first coding of ``code`` (and of each ``component.code``) whose system and code a measurement,
  patient or counted concept set of the mapping claims gives the row's concept; an Observation with no
  such coding is counted under its first coding;
* the value is ``valueQuantity.value`` (unit: its UCUM ``code`` when the system is UCUM or absent, else
  ``unit``), else ``valueInteger``, else ``valueBoolean`` as 1/0;
* the time is ``effectiveDateTime``, ``effectiveInstant`` or ``effectivePeriod.start``, its offset dropped;
  a date only to the month or year gives no time.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import pyarrow as pa

from ketaweight.sources.fhir.codes import SYSTEMS

_CODES = '{"coding": [{"system": "VARCHAR", "code": "VARCHAR"}]}'
_VALUES = ('"valueQuantity": {"value": "DOUBLE", "unit": "VARCHAR", "system": "VARCHAR", "code": "VARCHAR"}, '
           '"valueInteger": "DOUBLE", "valueBoolean": "BOOLEAN"')
STRUCTURE = ('{"subject": {"reference": "VARCHAR"}, "effectiveDateTime": "VARCHAR", "effectiveInstant": "VARCHAR", '
             f'"effectivePeriod": {{"start": "VARCHAR"}}, "code": {_CODES}, {_VALUES}, '
             f'"component": [{{"code": {_CODES}, {_VALUES}}}]}}')
"""The elements read, as DuckDB's ``json_transform`` takes them (the validator has checked their types)."""

DATETIME = r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?)?)?$"
"""A FHIR date, dateTime or instant: year, month, day, hour, minute, second, fraction (ASCII digits; the
reader's :func:`~ketaweight.sources.fhir.reader.parse_time` uses it too)."""


class Observations:
    """The Observations of one import, collected in the DuckDB connection ``w`` (table ``obs``)."""

    def __init__(self, w: duckdb.DuckDBPyConnection) -> None:
        self.w = w
        w.execute("CREATE OR REPLACE TEMP TABLE obs (rid BIGINT, o " + _struct_type(w) + ")")

    def add(self, rids: pa.Array, texts: pa.Array, bad_json: Callable[[list[int]], None]) -> None:
        """Parse a batch of Observation lines (row ids and their JSON texts) into ``obs``; ``bad_json``
        receives the row ids of texts DuckDB cannot parse although the validator could (a safety net: no
        such text is known; both parsers refuse, for one, a lone surrogate escape)."""
        batch = pa.table({"rid": rids, "j": texts})
        self.w.register("_obs_batch", batch)
        try:
            self.w.execute(f"INSERT INTO obs SELECT rid, json_transform(j, '{STRUCTURE}') FROM _obs_batch")
        except duckdb.Error:
            bad = [r for (r,) in self.w.execute("SELECT rid FROM _obs_batch WHERE NOT json_valid(j) ORDER BY rid").fetchall()]
            if not bad:
                raise
            bad_json(bad)
        finally:
            self.w.unregister("_obs_batch")

    def references(self) -> list[str]:
        """The distinct subject references of ``obs_rows`` (after :meth:`rows`; the reader resolves them:
        relative, absolute or urn:uuid)."""
        return [r for (r,) in self.w.execute("SELECT DISTINCT ref FROM obs_rows WHERE ref IS NOT NULL").fetchall()]

    def rows(self, codes: dict[tuple[str, str], int]) -> list[tuple[str, int, int]]:
        """Measurement rows as table ``obs_rows`` (rid, item, ref, concept_id, time, value, unit): item 0 is
        the Observation's own code and value, item k its k-th component; ``codes`` maps (system, code) to
        the concept set it belongs to.  Returns the codes of the Observations without a mapped coding
        as (key, count, first row id), in the order first seen."""
        w = self.w
        w.register("_obs_codes", pa.table({"system": [k[0] for k in codes], "code": [k[1] for k in codes],
                                           "sid": pa.array(list(codes.values()), pa.int64())}))
        w.execute(f"""CREATE OR REPLACE TEMP TABLE obs_items AS
            SELECT rid, 0 AS item, o.code AS code, o.valueQuantity AS q, o.valueInteger AS vi, o.valueBoolean AS vb FROM obs
            UNION ALL
            SELECT rid, item, c.code, c.valueQuantity, c.valueInteger, c.valueBoolean FROM (
                SELECT rid, unnest(o.component) AS c, unnest(range(1, len(o.component) + 1)) AS item FROM obs
                WHERE len(o.component) > 0)""")
        w.execute("""CREATE OR REPLACE TEMP TABLE obs_hits AS
            SELECT rid, item, arg_min(k.sid, ci) AS sid FROM (
                SELECT rid, item, unnest(code.coding) AS cd, unnest(range(len(code.coding))) AS ci FROM obs_items
                WHERE len(code.coding) > 0) x
            JOIN _obs_codes k ON k.system = coalesce(x.cd.system, '') AND k.code = coalesce(x.cd.code, '')
            GROUP BY rid, item""")
        w.execute(f"""CREATE OR REPLACE TEMP TABLE obs_rows AS
            SELECT rid, item, ref, concept_id, value, unit,
                   CASE WHEN t.d <> '' THEN TRY_CAST(t.y || '-' || t.mo || '-' || t.d || 'T' || coalesce(nullif(t.hh, ''), '00') || ':'
                        || coalesce(nullif(t.mi, ''), '00') || ':' || coalesce(nullif(t.ss, ''), '00')
                        || CASE WHEN t.fr <> '' THEN left(t.fr || '000000', 7) ELSE '' END AS TIMESTAMP) END AS time
            FROM (SELECT i.rid, i.item, b.o.subject.reference AS ref, h.sid AS concept_id,
                         regexp_extract(coalesce(nullif(b.o.effectiveDateTime, ''), nullif(b.o.effectiveInstant, ''),
                                                 b.o.effectivePeriod.start),
                                        '{DATETIME}', ['y', 'mo', 'd', 'hh', 'mi', 'ss', 'fr']) AS t,
                         CASE WHEN i.q IS NOT NULL THEN i.q.value WHEN i.vi IS NOT NULL THEN i.vi
                              WHEN i.vb IS NOT NULL THEN CASE WHEN i.vb THEN 1.0 ELSE 0.0 END END AS value,
                         CASE WHEN i.q IS NOT NULL THEN
                              CASE WHEN (i.q.system IS NULL OR i.q.system = '{SYSTEMS["UCUM"]}') AND coalesce(i.q.code, '') <> ''
                                   THEN i.q.code ELSE i.q.unit END END AS unit
                  FROM obs_items i JOIN obs_hits h USING (rid, item) JOIN obs b USING (rid))""")
        unknown = w.execute("""
            SELECT CASE WHEN len(o.code.coding) > 0 THEN coalesce(o.code.coding[1].system, '') || '|' || coalesce(o.code.coding[1].code, '')
                        ELSE '(no coding)' END AS key, count(*), min(rid) AS first
            FROM obs ANTI JOIN (SELECT DISTINCT rid FROM obs_hits) USING (rid) GROUP BY key ORDER BY first""").fetchall()
        w.unregister("_obs_codes")
        w.execute("DROP TABLE obs_items; DROP TABLE obs_hits; DROP TABLE obs")
        return unknown


def _struct_type(w: duckdb.DuckDBPyConnection) -> str:
    """The SQL type ``json_transform`` gives :data:`STRUCTURE` (so that ``obs`` can be created empty)."""
    return str(w.execute(f"SELECT typeof(json_transform('{{}}', '{STRUCTURE}'))").fetchall()[0][0])
