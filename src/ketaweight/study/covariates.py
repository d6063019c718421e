"""The covariate steps of the cohort: each adds one family of columns to the study population from the
store, by a narrow DuckDB query over only the rows that family needs, joined back on patient.

Times are compared at day resolution: "day d" means the calendar day d days after the day of time
zero.  A "last"/"first" value is the latest/earliest record in a window; the value "nearest" a
target day goes, on equal distance, to the earlier day, and on the same day to the earlier record.

The queries are written once, in DuckDB's SQL, and run where the rows are (:data:`RowSource`: the
DuckDB store, or Parquet tables on Spark, transpiled by SQLGlot: :mod:`ketaweight.core.spark`), so
they use only what both engines compute to the same bits: sums of doses and means are sums of exact
integers (micrograms; millionths of a measurement's unit), which no order of addition changes,
divided once at the end (:func:`_exact_sum`, :func:`_exact_mean`); no ``* EXCLUDE``.  Each step
needs the columns named in its ``needs`` (checked on entry) and works on an empty population.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import duckdb
import numpy as np
import pandas as pd

from ketaweight.core.duckdb_connection import connect
from ketaweight.core.schema import MEASUREMENT_KINDS
from ketaweight.store.spark import SparkTables
from ketaweight.store.store import Store
from ketaweight.study.catalogue import BASELINE_KINDS, FOLLOWUP_CHANGES
from ketaweight.study.population import StudyPopulation, require
from ketaweight.study.spec import Study

RowSource = Store | SparkTables
"""Where the cohort's SQL runs: the DuckDB store (the default) or canonical Parquet tables on Spark."""

POPULATION = "_study_population"
"""Name under which a step's population (``_row``, ``patient_id``, ``t0`` …) is visible to its query."""

PRODUCERS: dict[str, str] = {
    **{c: "patients_at_time_zero" for c in ("patient_id", "t0", "age", "female", "height_cm", "atypical_features",
                                            "index_quarter", "index_year")},
    **{c: "with_baselines" for c in (*BASELINE_KINDS.values(), "screening_weight", "outcome_base", "nc_base")},
    **{c: "with_exposures" for c in ("prior_sessions", "grace_sessions", "sessions_to_horizon", "first_session_day",
                                     "first_route", "last_session_day", "dose_mg_to_horizon")},
    **{c: "with_outcomes" for c in ("outcome_end", "outcome_day", "mediator_end", "madrs_week2", "nc_end")},
    **{c: "with_mediators" for c in FOLLOWUP_CHANGES},
    **{c: "with_lifestyle" for c in ("diet_programme", "exercise_programme")},
}
"""Column → the step that adds it (named in the message when a step finds it missing)."""


def _needs(population: StudyPopulation, step: str, columns: Sequence[str]) -> None:
    require(population, step, tuple(columns), PRODUCERS)


def query_frame(source: RowSource, sql: str, views: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """``sql`` (DuckDB dialect) run where ``source`` lives, with ``views`` (name → frame) visible by
    name; the Arrow result as pandas, converted the one way DuckDB converts (nullable integers,
    dates as datetimes) whichever engine computed it."""
    table = source.arrow(sql, views=views)
    return _converter().from_arrow(table).df()


_local = threading.local()


def _converter() -> duckdb.DuckDBPyConnection:
    """This thread's in-memory DuckDB connection for Arrow → pandas (cohorts may be built in several
    threads at once; a new connection per query would cost ≈ 20 ms of CPU each)."""
    if getattr(_local, "con", None) is None:
        _local.con = connect()
    return _local.con


def _query(store: RowSource, population: StudyPopulation, sql: str, columns: Sequence[str] = ("patient_id", "t0")) -> pd.DataFrame:
    """Run ``sql`` with the population's ``columns`` (and its row number ``_row``) visible as
    :data:`POPULATION`; time zero is a DATE there, as in the store's day arithmetic."""
    frame = pd.DataFrame({"_row": np.arange(population.n, dtype=np.int64),
                          **{c: population.table[c].to_numpy() for c in columns}})
    return query_frame(store, sql, {POPULATION: frame})


MICROGRAMS_PER_MG = 1000
"""Resolution of the exact dose sums: micrograms."""

MILLIONTHS = 1_000_000
"""Resolution of the exact sums behind a mean: a millionth of the measurement's unit."""


def _exact_sum(column: str, scale: int, where: str) -> str:
    """SQL aggregate: the sum of ``column`` over the rows ``where`` holds, as the exact integer sum of
    ``round(column * scale)`` (BIGINT) — the same bits in any order of addition and on any engine."""
    return f"sum(CAST(round({column} * {scale}) AS BIGINT)) FILTER (WHERE {where})"


def _exact_mean(column: str, where: str) -> str:
    """SQL aggregate: the mean of ``column`` over the rows ``where`` holds, from the exact sum of its
    millionths divided once by (count × 10⁶): correctly rounded, whatever the order of the rows."""
    return (f"CAST({_exact_sum(column, MILLIONTHS, where)} AS DOUBLE) / "
            f"CAST(count({column}) FILTER (WHERE {where}) * {MILLIONTHS} AS DOUBLE)")


def _population_cte(columns: Sequence[str] = ()) -> str:
    extra = "".join(f", {c}" for c in columns)
    return f"p AS (SELECT _row, patient_id, CAST(t0 AS DATE) AS t0{extra} FROM {POPULATION})"


def _day(time: str = "m.time") -> str:
    return f"date_diff('day', p.t0, CAST({time} AS DATE))"


def _kinds(values: Sequence[str]) -> str:
    return ", ".join(f"'{k}'" for k in values)


def patients_at_time_zero(store: RowSource, study: Study) -> StudyPopulation:
    """Every patient of the store (attrition step "patients"), with time zero ``t0`` (the day of the
    first ``time_zero.kind`` record; missing when there is none) and what is known then: ``age``
    (years: calendar year of t0 − birth year), ``female`` (1/0), ``height_cm``, ``atypical_features``
    (1/0), ``index_quarter`` (1-4) and ``index_year``."""
    table = query_frame(store, f"""
        WITH t0 AS (
            SELECT patient_id, CAST(min(time) AS DATE) AS t0
            FROM measurements WHERE kind = '{study.time_zero.kind}' GROUP BY patient_id
        )
        SELECT p.patient_id, t0.t0,
            year(t0.t0) - p.birth_year AS age,
            (p.sex = 'F')::INT AS female,
            p.height_cm,
            p.atypical_features::INT AS atypical_features,
            quarter(t0.t0) AS index_quarter,
            year(t0.t0) AS index_year
        FROM patients p LEFT JOIN t0 USING (patient_id)
        ORDER BY p.patient_id""")
    return StudyPopulation(table).keep(pd.Series(True, index=table.index), "patients", "patients in the store")


def baseline_kinds(study: Study) -> list[str]:
    """Measurement kinds whose baseline the cohort computes: the catalogue's, the outcome's and the
    negative control's."""
    nc = study.analysis.negative_control_kind
    return sorted({*BASELINE_KINDS, study.outcome.kind, *([nc] if nc else [])})


def with_baselines(population: StudyPopulation, store: RowSource, study: Study) -> StudyPopulation:
    """The last record of each baseline kind in the baseline window (days −``baseline_window_days``
    … 0): the catalogue's ``baseline_*`` columns (their kinds' canonical units), ``outcome_base``,
    ``nc_base`` (when the study names a negative control), and ``screening_weight``, the *first*
    weight in the window (kg)."""
    _needs(population, "with_baselines", ("patient_id", "t0"))
    window = study.eligibility.baseline_window_days
    kinds = baseline_kinds(study)
    lasts = "".join(f", arg_max(m.value, m.time) FILTER (WHERE m.kind = '{k}') AS \"{k}\"" for k in kinds)
    columns = ", ".join([*(f'b."{k}"' for k in kinds), "b.screening_weight"])
    frame = _query(store, population, f"""
        WITH {_population_cte()},
        b AS (
            SELECT p._row {lasts}, arg_min(m.value, m.time) FILTER (WHERE m.kind = 'weight') AS screening_weight
            FROM measurements m JOIN p USING (patient_id)
            WHERE m.kind IN ({_kinds(kinds)}) AND {_day()} BETWEEN -{window} AND 0
            GROUP BY p._row
        )
        SELECT {columns} FROM {POPULATION} pop LEFT JOIN b USING (_row) ORDER BY pop._row""")

    def column(name: str) -> np.ndarray:
        return frame[name].to_numpy(dtype=float, na_value=np.nan)

    columns = {col: column(kind) for kind, col in BASELINE_KINDS.items()}
    columns["screening_weight"] = column("screening_weight")
    columns["outcome_base"] = column(study.outcome.kind)
    if study.analysis.negative_control_kind:
        columns["nc_base"] = column(study.analysis.negative_control_kind)
    return population.with_columns(columns)


def with_exposures(population: StudyPopulation, store: RowSource, study: Study) -> StudyPopulation:
    """Sessions of the study's drugs (and routes) relative to time zero: ``prior_sessions`` (in the
    washout, days −``washout_days`` … −1), ``grace_sessions`` (days 0 … ``grace_days``),
    ``sessions_to_horizon`` (days 0 … horizon), ``first_session_day`` and ``first_route`` (the first
    session from day 0), ``last_session_day`` (to the horizon) and ``dose_mg_to_horizon`` (mg)."""
    _needs(population, "with_exposures", ("patient_id", "t0"))
    e, tr, h = study.eligibility, study.treatment, study.outcome.horizon_days
    routes = f"AND e.route IN ({_kinds(tr.routes)})" if tr.routes else ""
    frame = _query(store, population, f"""
        WITH {_population_cte()},
        x AS (
            SELECT p._row, e.route, e.dose_mg, e.time, {_day('e.time')} AS day
            FROM exposures e JOIN p USING (patient_id) WHERE e.drug IN ({_kinds(tr.drugs)}) {routes}
        ),
        ex AS (
            SELECT _row,
                count(*) FILTER (WHERE day BETWEEN -{e.washout_days} AND -1) AS prior_sessions,
                count(*) FILTER (WHERE day BETWEEN 0 AND {tr.grace_days}) AS grace_sessions,
                count(*) FILTER (WHERE day BETWEEN 0 AND {h}) AS sessions_to_horizon,
                min(day) FILTER (WHERE day >= 0) AS first_session_day,
                arg_min(route, time) FILTER (WHERE day >= 0) AS first_route,
                CAST({_exact_sum('dose_mg', MICROGRAMS_PER_MG, f'day BETWEEN 0 AND {h}')} AS DOUBLE) / {MICROGRAMS_PER_MG}
                    AS dose_mg_to_horizon,
                max(day) FILTER (WHERE day BETWEEN 0 AND {h}) AS last_session_day
            FROM x GROUP BY _row
        )
        SELECT coalesce(ex.prior_sessions, 0) AS prior_sessions,
            coalesce(ex.grace_sessions, 0) AS grace_sessions,
            coalesce(ex.sessions_to_horizon, 0) AS sessions_to_horizon,
            ex.first_session_day, ex.first_route, ex.last_session_day,
            coalesce(ex.dose_mg_to_horizon, 0) AS dose_mg_to_horizon
        FROM {POPULATION} pop LEFT JOIN ex USING (_row) ORDER BY pop._row""", columns=("patient_id", "t0"))
    frame = frame.astype({"first_session_day": "Int64", "last_session_day": "Int64"})
    return population.with_columns({c: frame[c] for c in frame.columns})


def _nearest(kind: str, day: int, window: int, column: str = "value") -> str:
    """SQL aggregate: ``column`` of the ``kind`` record nearest ``day`` within ± ``window`` days."""
    return (f"arg_min({column}, (abs(day - {day}) * 2 + (day > {day})::INT, time)) "
            f"FILTER (WHERE kind = '{kind}' AND day BETWEEN {day - window} AND {day + window})")


def with_outcomes(population: StudyPopulation, store: RowSource, study: Study) -> StudyPopulation:
    """The records nearest the targets after time zero: ``outcome_end`` (the outcome kind nearest
    the horizon within ± ``window_days``) and its ``outcome_day``; ``madrs_week2`` (nearest day 14
    ± 4; for censoring models only); ``nc_end`` (the negative control nearest the horizon); and
    ``mediator_end``, the last day mediators may count: the outcome's day, or the horizon when the
    outcome was measured later or not at all."""
    _needs(population, "with_outcomes", ("patient_id", "t0"))
    out, nc = study.outcome, study.analysis.negative_control_kind
    targets = [(out.kind, out.horizon_days, out.window_days), ("madrs", 14, 4), *([(nc, out.horizon_days, out.window_days)] if nc else [])]
    windows = " OR ".join(f"(m.kind = '{k}' AND {_day()} BETWEEN {d - w} AND {d + w})" for k, d, w in targets)
    nc_col = f", {_nearest(nc, out.horizon_days, out.window_days)} AS nc_end" if nc else ""
    frame = _query(store, population, f"""
        WITH {_population_cte()},
        x AS (
            SELECT p._row, m.kind, m.value, m.time, {_day()} AS day
            FROM measurements m JOIN p USING (patient_id)
            WHERE m.kind IN ({_kinds(sorted({k for k, _d, _w in targets}))}) AND ({windows})
        ),
        o AS (
            SELECT _row,
                {_nearest(out.kind, out.horizon_days, out.window_days)} AS outcome_end,
                {_nearest(out.kind, out.horizon_days, out.window_days, column="day")} AS outcome_day,
                {_nearest('madrs', 14, 4)} AS madrs_week2
                {nc_col}
            FROM x GROUP BY _row
        )
        SELECT o.outcome_end, o.outcome_day, o.madrs_week2{', o.nc_end' if nc else ''}
        FROM {POPULATION} pop LEFT JOIN o USING (_row) ORDER BY pop._row""")
    h = out.horizon_days
    day = frame["outcome_day"].to_numpy(dtype=float, na_value=np.nan)
    columns = {c: frame[c].to_numpy(dtype=float, na_value=np.nan) for c in ("outcome_end", "madrs_week2", *(["nc_end"] if nc else []))}
    columns["outcome_day"] = day
    columns["mediator_end"] = np.minimum(np.where(np.isnan(day), h, day), h).astype(np.int64)
    return population.with_columns(columns)


def with_mediators(population: StudyPopulation, store: RowSource, study: Study) -> StudyPopulation:
    """The mediators of :data:`~ketaweight.study.catalogue.FOLLOWUP_CHANGES`: the mean of a kind's
    records from time zero up to the outcome measurement, minus the kind's baseline (its unit).
    The window is the days that can move the outcome: point records dated day 1 … ``mediator_end`` − 1,
    p-day summaries dated day p … ``mediator_end`` (covering days 0 … ``mediator_end`` − 1).
    Nothing measured after the outcome is a mediator."""
    baselines = [BASELINE_KINDS[k] for k in FOLLOWUP_CHANGES.values()]
    _needs(population, "with_mediators", ("patient_id", "t0", "mediator_end", *baselines))
    windows = []
    for kind in sorted(set(FOLLOWUP_CHANGES.values())):
        period = MEASUREMENT_KINDS[kind].period_days
        first, last = (period, "p.mediator_end") if period else (1, "p.mediator_end - 1")
        windows.append(f"(m.kind = '{kind}' AND {_day()} BETWEEN {first} AND {last})")
    kinds = sorted(set(FOLLOWUP_CHANGES.values()))
    means = ", ".join(_exact_mean("m.value", f"m.kind = '{k}'") + f' AS "{k}"' for k in kinds)
    frame = _query(store, population, f"""
        WITH {_population_cte(['mediator_end'])},
        f AS (
            SELECT p._row, {means}
            FROM measurements m JOIN p USING (patient_id)
            WHERE m.kind IN ({_kinds(kinds)}) AND ({' OR '.join(windows)})
            GROUP BY p._row
        )
        SELECT {', '.join(f'f."{k}"' for k in kinds)} FROM {POPULATION} pop LEFT JOIN f USING (_row) ORDER BY pop._row""",
        columns=("patient_id", "t0", "mediator_end"))
    columns = {col: frame[kind].to_numpy(dtype=float, na_value=np.nan) - population.table[BASELINE_KINDS[kind]].to_numpy()
               for col, kind in FOLLOWUP_CHANGES.items()}
    return population.with_columns(columns)


def with_lifestyle(population: StudyPopulation, store: RowSource, study: Study) -> StudyPopulation:
    """``diet_programme`` and ``exercise_programme``: 1 when such a programme is in progress at time
    zero (started on or before that day and not ended before it), else 0."""
    _needs(population, "with_lifestyle", ("patient_id", "t0"))

    def active(kind: str) -> str:
        return f"max((l.kind = '{kind}' AND l.start <= p.t0 AND (l.\"end\" IS NULL OR l.\"end\" >= p.t0))::INT) AS {kind}"

    frame = _query(store, population, f"""
        WITH {_population_cte()},
        ls AS (SELECT p._row, {active('diet_programme')}, {active('exercise_programme')}
               FROM lifestyle l JOIN p USING (patient_id) GROUP BY p._row)
        SELECT coalesce(ls.diet_programme, 0) AS diet_programme, coalesce(ls.exercise_programme, 0) AS exercise_programme
        FROM {POPULATION} pop LEFT JOIN ls USING (_row) ORDER BY pop._row""")
    return population.with_columns({c: frame[c] for c in frame.columns})
