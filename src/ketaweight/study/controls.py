"""The study's negative-control outcomes, measured like its outcome, for every patient of the cohort.

For each control kind (``[network] negative_controls`` of the study; glob patterns are resolved
against the kinds the store holds) the change from baseline — the last value in the baseline
window — to the value nearest the outcome horizon within ± ``outcome.window_days`` (ties to the
earlier one), exactly as :func:`ketaweight.study.cohort.build_cohort` measures the outcome.  A
patient without both values has the control missing (censored for that control).  Kept apart
from the cohort SQL so the cohort build stays one job; joined on patient and time zero.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

import pandas as pd

from ketaweight.core.errors import InputError, Location
from ketaweight.store.store import Store
from ketaweight.study.spec import Study


def control_column(kind: str) -> str:
    """The analysis-table column of a control's change."""
    return f"{kind}_change"


def resolve_control_kinds(store: Store, study: Study) -> tuple[str, ...]:
    """The measurement kinds in the store that the study's ``negative_controls`` name (sorted).

    Raises :class:`InputError` when an explicit kind or a pattern matches nothing in the store.
    """
    patterns = study.network.negative_controls
    if not patterns:
        return ()
    present = sorted(store.query("SELECT DISTINCT kind FROM measurements")["kind"].astype(str))
    found: list[str] = []
    problems = []
    for p in patterns:
        hits = [k for k in present if fnmatchcase(k, p)]
        if not hits:
            problems.append((Location(str(store.path), column="measurements.kind"),
                             f"the study's negative control {p!r} matches no measurement kind in the store"))
        found += hits
    if problems:
        raise InputError(problems)
    return tuple(sorted(set(found)))


def control_changes(store: Store, study: Study, cohort: pd.DataFrame, kinds: tuple[str, ...]) -> pd.DataFrame:
    """One column per control kind (:func:`control_column`), aligned with ``cohort``'s rows
    (``patient_id`` and ``t0`` as the cohort build wrote them)."""
    if not kinds:
        return pd.DataFrame(index=cohort.index)
    e, out = study.eligibility, study.outcome
    h, w, b = out.horizon_days, out.window_days, e.baseline_window_days
    kind_list = ", ".join(f"'{k}'" for k in kinds)
    store.con.register("_cohort_t0", cohort[["patient_id", "t0"]])
    try:
        long = store.query(f"""
            WITH m AS (
                SELECT m.patient_id, m.kind, m.value, m.time, date_diff('day', CAST(c.t0 AS DATE), CAST(m.time AS DATE)) AS day
                FROM measurements m JOIN _cohort_t0 c USING (patient_id) WHERE m.kind IN ({kind_list})
            )
            SELECT patient_id, kind,
                arg_max(value, time) FILTER (WHERE day BETWEEN -{b} AND 0) AS base,
                arg_min(value, abs(day - {h}) * 2 + (day > {h})::INT) FILTER (WHERE day BETWEEN {h - w} AND {h + w}) AS last
            FROM m GROUP BY patient_id, kind
        """)
    finally:
        store.con.unregister("_cohort_t0")
    long["change"] = long["last"] - long["base"]
    wide = long.pivot(index="patient_id", columns="kind", values="change")
    wide = wide.reindex(columns=list(kinds))
    wide.columns = [control_column(k) for k in kinds]
    return wide.reindex(cohort["patient_id"].to_numpy()).set_axis(cohort.index)
