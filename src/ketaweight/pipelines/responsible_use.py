"""Responsible use: adverse events per session, rapid weight loss and over-protocol dosing, computed
from the store.

The article asks for "regulated and monitored" use; these are the monitoring views a ketamine
service would run, per cohort (never per patient in the output).  All counts are masked below
11 (``ketaweight.core.privacy``) before they leave this module.

Flags (thresholds are keyword settings of :class:`SafetyRules`, documented in docs/report.md):

* rapid weight loss: a treated patient's weight falls by more than 5% of the last weight on
  or before the first session within the 28 days after it;
* over-protocol dose: a ketamine IV or IM session above 1 mg/kg plus 5% for rounding and
  weighing noise (mg/kg from the nearest weight), or an esketamine session above 84 mg;
* over-protocol frequency: more than 2 sessions in any 7 days after the 28-day induction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from ketaweight.core.privacy import masked_or_exact
from ketaweight.core.results import write_result
from ketaweight.pipelines.results import AdverseEventRate, MonitoringFlag, ResponsibleUse, RouteCount
from ketaweight.store import Store


@dataclass(frozen=True, kw_only=True)
class SafetyRules:
    """Monitoring thresholds (units in the names)."""

    rapid_loss_pct: float = 5.0
    rapid_loss_window_days: int = 28
    max_mg_per_kg_parenteral: float = 1.0
    dose_tolerance_pct: float = 5.0
    """Allowance above the mg/kg ceiling for dose rounding and weighing noise (a 1.0 mg/kg dose of the
    baseline weight reads 1.02 mg/kg after a 2% weight loss), percent."""
    max_esketamine_mg: float = 84.0
    induction_days: int = 28
    max_sessions_per_7_days: int = 2


_GROUP = "CASE WHEN drug = 'esketamine' THEN 'esketamine (intranasal)' ELSE drug || ' (' || route || ')' END"

_SESSIONS_SQL = f"""
SELECT {_GROUP} AS grp, count(*) AS sessions, count(DISTINCT patient_id) AS patients FROM exposures GROUP BY grp
"""

_AE_SQL = f"""
WITH s AS (SELECT DISTINCT patient_id, CAST(time AS DATE) AS day, {_GROUP} AS grp FROM exposures),
ae AS (SELECT DISTINCT patient_id, CAST(time AS DATE) AS day, term FROM adverse_events)
SELECT s.grp, ae.term, count(*) AS events FROM s JOIN ae USING (patient_id, day) GROUP BY s.grp, ae.term
"""

_RAPID_SQL = """
WITH first AS (SELECT patient_id, min(time) AS t0 FROM exposures GROUP BY patient_id),
base AS (SELECT f.patient_id, f.t0, arg_max(m.value, m.time) AS w0
         FROM first f JOIN measurements m ON m.patient_id = f.patient_id AND m.kind = 'weight' AND m.time <= f.t0
         GROUP BY f.patient_id, f.t0),
after AS (SELECT b.patient_id, b.w0, min(m.value) AS wmin
          FROM base b JOIN measurements m ON m.patient_id = b.patient_id AND m.kind = 'weight'
               AND m.time > b.t0 AND m.time <= b.t0 + to_days(CAST(? AS INTEGER))
          GROUP BY b.patient_id, b.w0)
SELECT count(*) AS patients_checked, count(*) FILTER (WHERE wmin < w0 * (1 - ? / 100.0)) AS flagged FROM after
"""

_DOSE_SQL = """
WITH s AS (SELECT e.patient_id, e.time, e.drug, e.route, e.dose_mg,
                  (SELECT m.value FROM measurements m WHERE m.patient_id = e.patient_id AND m.kind = 'weight'
                   ORDER BY abs(epoch(m.time) - epoch(e.time)) LIMIT 1) AS weight_kg
           FROM exposures e)
SELECT count(*) FILTER (WHERE drug = 'ketamine' AND route IN ('iv', 'im') AND dose_mg / weight_kg > ?) AS sessions_high_mgkg,
       count(DISTINCT patient_id) FILTER (WHERE drug = 'ketamine' AND route IN ('iv', 'im') AND dose_mg / weight_kg > ?) AS patients_high_mgkg,
       count(*) FILTER (WHERE drug = 'esketamine' AND dose_mg > ?) AS sessions_high_esk,
       count(*) FILTER (WHERE drug = 'ketamine' AND route IN ('iv', 'im')) AS parenteral_sessions,
       count(*) FILTER (WHERE drug = 'esketamine') AS esketamine_sessions
FROM s
"""

_FREQ_SQL = """
WITH s AS (SELECT patient_id, time, min(time) OVER (PARTITION BY patient_id) AS t0 FROM exposures),
w AS (SELECT patient_id, time, t0,
             count(*) OVER (PARTITION BY patient_id ORDER BY time RANGE BETWEEN INTERVAL 6 DAYS PRECEDING AND CURRENT ROW) AS in7
      FROM s)
SELECT count(DISTINCT patient_id) FILTER (WHERE time > t0 + to_days(CAST(? AS INTEGER)) AND in7 > ?) AS flagged,
       count(DISTINCT patient_id) AS treated
FROM w
"""


def responsible_use(store_path: str | Path, rules: SafetyRules | None = None, *,
                    out_path: str | Path | None = None) -> ResponsibleUse:
    """Cohort-level monitoring views from the store; every count masked below 11.
    With ``out_path``, also written there as a ``kind = "responsible_use"`` results file."""
    rules = rules or SafetyRules()
    with Store(store_path, read_only=True) as store:
        provenance = store.provenance()
        totals = store.query(_SESSIONS_SQL).set_index("grp").sort_index()
        events = store.query(_AE_SQL).sort_values(["grp", "term"])
        rapid = store.query(_RAPID_SQL, [rules.rapid_loss_window_days, rules.rapid_loss_pct]).iloc[0]
        ceiling = rules.max_mg_per_kg_parenteral * (1 + rules.dose_tolerance_pct / 100)
        dose = store.query(_DOSE_SQL, [ceiling, ceiling, rules.max_esketamine_mg]).iloc[0]
        freq = store.query(_FREQ_SQL, [rules.induction_days, rules.max_sessions_per_7_days]).iloc[0]
    ae_rows = []
    for _, r in events.iterrows():
        n_sessions, k = int(totals.loc[r["grp"], "sessions"]), int(r["events"])
        ae_rows.append(AdverseEventRate(r["grp"], r["term"], masked_or_exact(k), masked_or_exact(n_sessions),
                                        round(100 * k / n_sessions, 1) if k >= 11 else None))
    routes = [RouteCount(g, masked_or_exact(int(t["sessions"])), masked_or_exact(int(t["patients"])))
              for g, t in totals.iterrows()]

    def flag(text: str, unit: str, k: int, n: int) -> MonitoringFlag:
        percent = round(100 * k / n, 1) if n and (k == 0 or k >= 11) else None
        return MonitoringFlag(text, unit, masked_or_exact(k), masked_or_exact(n), percent)

    flags = [
        flag(f"weight loss > {rules.rapid_loss_pct:g}% within {rules.rapid_loss_window_days} days of the first session",
             "patients", int(rapid["flagged"]), int(rapid["patients_checked"])),
        flag(f"ketamine IV/IM session above {rules.max_mg_per_kg_parenteral:g} mg/kg "
             f"(+{rules.dose_tolerance_pct:g}% for rounding and weighing)", "sessions",
             int(dose["sessions_high_mgkg"]), int(dose["parenteral_sessions"])),
        flag(f"esketamine session above {rules.max_esketamine_mg:g} mg", "sessions",
             int(dose["sessions_high_esk"]), int(dose["esketamine_sessions"])),
        flag(f"more than {rules.max_sessions_per_7_days} sessions in 7 days after a {rules.induction_days}-day induction",
             "patients", int(freq["flagged"]), int(freq["treated"])),
    ]
    result = ResponsibleUse(asdict(rules), tuple(routes), tuple(ae_rows), tuple(flags),
                            "Adverse events are counted once per term on a session day, by the route of that day's "
                            "session. Counts from 1 to 10 are shown as <11.")
    if out_path is not None:
        write_result(out_path, result, provenance, store=Path(store_path).name)
    return result
