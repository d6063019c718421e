"""Per-patient monitoring over the store: the alerts a ketamine service watches (``ketaweight monitor``).

The article asks for use "strictly regulated and monitored", watching "for any potential side
effects".  :func:`monitor` applies the rules of a rules file (:mod:`ketaweight.pipelines.monitoring_rules`;
every threshold documented there) to every treated patient and returns one :class:`Alert` per
patient and rule, each citing the rows that triggered it (table, time, values), its rule and its
threshold:

* ``rapid_weight_loss_<D>d`` — a weight more than P% below the highest weight of the D days before it;
* ``low_bmi`` — a weight giving a BMI below the limit;
* ``dose_above_protocol`` — ketamine mg/kg (nearest weight) above the route's ceiling plus tolerance,
  or esketamine above its mg ceiling;
* ``session_frequency`` — more sessions on 7 consecutive calendar days than the course phase allows;
* ``dose_escalation`` — a run of rising doses within a course (a misuse pattern);
* ``blood_pressure_after_dose`` — a reading above the limits within hours after a session;
* ``adverse_event_not_followed_up`` — no record of the patient within N days of a moderate/severe event;
* ``missed_follow_up_weighing`` — more than N days without a weight while on treatment or in follow-up.

An alert's ``alert_id`` is a hash of its rule, patient and cited rows: new evidence makes a new alert
(to acknowledge again); the same data give the same ids.  Alerts name patients — this is the clinic's
own patient-level view; :meth:`MonitoringResult.summary` is the aggregate (counts under 11 masked).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ketaweight.core.privacy import masked_or_exact
from ketaweight.core.results import write_results
from ketaweight.pipelines.monitoring_rules import MonitoringRules, load_rules
from ketaweight.store import Store

MAX_EVIDENCE_ROWS = 50
"""Rows cited per alert (the count of all triggering rows is kept beside them)."""


@dataclass(frozen=True)
class Evidence:
    """One row that triggered an alert: its table, time and the values that matter."""

    table: str
    time: str  # ISO 8601, seconds
    text: str  # e.g. "weight 71.2 kg"
    values: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "time": self.time, "text": self.text, "values": self.values}


@dataclass(frozen=True)
class Alert:
    """One rule that fired for one patient."""

    alert_id: str
    rule: str
    title: str
    threshold: str
    patient_id: str
    first_time: str
    last_time: str
    message: str
    evidence: tuple[Evidence, ...]
    n_triggers: int

    def to_dict(self) -> dict[str, Any]:
        return {"alert_id": self.alert_id, "rule": self.rule, "title": self.title, "threshold": self.threshold,
                "patient_id": self.patient_id, "first_time": self.first_time, "last_time": self.last_time,
                "message": self.message, "n_triggers": self.n_triggers,
                "evidence": [e.to_dict() for e in self.evidence]}


@dataclass(frozen=True)
class MonitoringResult:
    """All alerts of one monitoring run, with the rules and the date they were judged at."""

    as_of: str
    rules: MonitoringRules
    rule_titles: dict[str, str]
    alerts: tuple[Alert, ...]
    patients_checked: int

    def by_rule(self) -> dict[str, list[Alert]]:
        out: dict[str, list[Alert]] = {r: [] for r in self.rule_titles}
        for a in self.alerts:
            out.setdefault(a.rule, []).append(a)
        return out

    def summary(self) -> list[dict[str, Any]]:
        """Alerts and patients per rule, counts 1–10 masked as "<11" (no identifiers): safe to share."""
        return [{"rule": rule, "title": self.rule_titles.get(rule, rule), "alerts": masked_or_exact(len(alerts)),
                 "patients": masked_or_exact(len({a.patient_id for a in alerts}))}
                for rule, alerts in self.by_rule().items()]

    def to_dict(self) -> dict[str, Any]:
        return {"as_of": self.as_of, "rules_file": self.rules.source, "rules": self.rules.model_dump(mode="json"),
                "patients_checked": self.patients_checked, "summary": self.summary(),
                "alerts": [a.to_dict() for a in self.alerts],
                "note": "Patient-level: alerts name the clinic's own patient identifiers; share only the summary."}


# ---------------------------------------------------------------------------------------------- data
def _iso(t: Any) -> str:
    return pd.Timestamp(t).strftime("%Y-%m-%dT%H:%M:%S")


def _fmt(x: float, digits: int = 1) -> str:
    return f"{x:.{digits}f}"


@dataclass
class _Data:
    """The store's rows the rules read (treated patients only), as pandas frames."""

    as_of: pd.Timestamp
    sessions: pd.DataFrame  # patient_id, time, drug, route, dose_mg, weight_kg, weight_time, course, course_start
    weights: pd.DataFrame  # patient_id, time, value
    heights: pd.Series  # patient_id → height_cm


_TREATED = "SELECT patient_id, min(time) AS t0, max(time) AS t_last FROM exposures GROUP BY patient_id"


def _load(store: Store, rules: MonitoringRules, as_of: pd.Timestamp | None) -> _Data:
    if as_of is None:
        latest = store.query("SELECT greatest((SELECT max(time) FROM exposures), (SELECT max(time) FROM measurements), "
                             "(SELECT max(time) FROM adverse_events)) AS t").iloc[0, 0]
        as_of = pd.Timestamp(latest) if latest is not None and not pd.isna(latest) else pd.Timestamp.now().floor("s")
    within = rules.dose_above_protocol.weight_within_days * 86400
    sessions = store.query(f"""
        SELECT e.patient_id, e.time, e.drug, e.route, e.dose_mg,
               arg_min(m.value, abs(epoch(m.time) - epoch(e.time))) AS weight_kg,
               arg_min(m.time, abs(epoch(m.time) - epoch(e.time))) AS weight_time
        FROM exposures e LEFT JOIN measurements m
          ON m.patient_id = e.patient_id AND m.kind = 'weight' AND abs(epoch(m.time) - epoch(e.time)) <= {within}
        WHERE e.time <= ?
        GROUP BY e.patient_id, e.time, e.drug, e.route, e.dose_mg
        ORDER BY e.patient_id, e.time""", [as_of.to_pydatetime()])
    gap = pd.Timedelta(days=rules.courses.new_course_after_days)
    new = sessions["patient_id"].ne(sessions["patient_id"].shift()) | (sessions["time"] - sessions["time"].shift() > gap)
    sessions["course"] = new.cumsum()
    sessions["course_start"] = sessions.groupby("course")["time"].transform("min")
    weights = store.query(f"""
        SELECT m.patient_id, m.time, m.value FROM measurements m JOIN ({_TREATED}) f USING (patient_id)
        WHERE m.kind = 'weight' AND m.time <= ? ORDER BY m.patient_id, m.time""", [as_of.to_pydatetime()])
    heights = store.query(f"SELECT p.patient_id, p.height_cm FROM patients p JOIN ({_TREATED}) f USING (patient_id)")
    return _Data(as_of, sessions, weights, heights.set_index("patient_id")["height_cm"])


def _session_evidence(row: Any, extra: str = "") -> Evidence:
    text = f"{row.drug} {row.route} {_fmt(row.dose_mg)} mg"
    values: dict[str, Any] = {"drug": row.drug, "route": row.route, "dose_mg": float(row.dose_mg)}
    if row.weight_kg is not None and not pd.isna(row.weight_kg):
        values["mg_per_kg"] = round(float(row.dose_mg) / float(row.weight_kg), 3)
        values["weight_kg"] = float(row.weight_kg)
        if row.drug == "ketamine":
            text += f" ({values['mg_per_kg']:.2f} mg/kg at {_fmt(row.weight_kg)} kg)"
    return Evidence("exposures", _iso(row.time), text + extra, values)


def _weight_evidence(time: Any, value: float, extra: str = "") -> Evidence:
    return Evidence("measurements", _iso(time), f"weight {_fmt(value)} kg{extra}", {"kind": "weight", "value": float(value)})


def _alert(rule: str, title: str, threshold: str, patient: str, evidence: list[Evidence], message: str,
           n_triggers: int | None = None) -> Alert:
    evidence = sorted(evidence, key=lambda e: (e.time, e.table))
    key = "|".join([rule, patient, *(f"{e.table}@{e.time}:{e.text}" for e in evidence)])
    return Alert(hashlib.sha256(key.encode()).hexdigest()[:16], rule, title, threshold, patient,
                 evidence[0].time, evidence[-1].time, message, tuple(evidence[:MAX_EVIDENCE_ROWS]),
                 n_triggers if n_triggers is not None else len(evidence))


# --------------------------------------------------------------------------------------------- rules
Rule = Callable[[Store, _Data, MonitoringRules], list[Alert]]


def rapid_weight_loss(store: Store, data: _Data, rules: MonitoringRules) -> list[Alert]:
    """Weights (from the first session on) more than P% below the highest weight of the D days before."""
    out: list[Alert] = []
    for w in rules.rapid_weight_loss.windows:
        rows = store.query(f"""
            WITH f AS ({_TREATED}),
            w AS (SELECT m.patient_id, m.time, m.value FROM measurements m JOIN f USING (patient_id)
                  WHERE m.kind = 'weight' AND m.time <= ?),
            cur AS (SELECT w.* FROM w JOIN f USING (patient_id) WHERE w.time >= f.t0)
            -- the reference is the highest earlier weight in the window, the latest one on ties
            SELECT c.patient_id, c.time, c.value, arg_max(r.time, (r.value, r.time)) AS ref_time, max(r.value) AS ref_value
            FROM cur c JOIN w r ON r.patient_id = c.patient_id AND r.time < c.time
                                 AND r.time >= c.time - to_days(CAST(? AS INTEGER))
            GROUP BY c.patient_id, c.time, c.value
            HAVING (max(r.value) - c.value) / max(r.value) * 100 > ?
            ORDER BY c.patient_id, c.time""", [data.as_of.to_pydatetime(), w.days, w.percent])
        rule, title = f"rapid_weight_loss_{w.days}d", f"Rapid weight loss (> {w.percent:g}% in {w.days} days)"
        threshold = f"loss > {w.percent:g}% of the highest weight in the previous {w.days} days"
        for pid, g in rows.groupby("patient_id", sort=True):
            worst = g.assign(loss=(g.ref_value - g.value) / g.ref_value * 100).sort_values("loss").iloc[-1]
            ev: list[Evidence] = []
            for r in g.itertuples():
                ev.append(_weight_evidence(r.ref_time, r.ref_value, " (reference)"))
                ev.append(_weight_evidence(r.time, r.value, f" (−{(r.ref_value - r.value) / r.ref_value * 100:.1f}%)"))
            ev = list({(e.time, e.text): e for e in ev}.values())
            out.append(_alert(rule, title, threshold, str(pid), ev,
                              f"weight fell {worst.loss:.1f}% from {worst.ref_value:.1f} kg to {worst.value:.1f} kg "
                              f"within {(worst.time - worst.ref_time).days} days", len(g)))
    return out


def low_bmi(store: Store, data: _Data, rules: MonitoringRules) -> list[Alert]:
    """Weights from the first session on whose BMI (weight / height²) is below the limit."""
    r = rules.low_bmi
    first = data.sessions.groupby("patient_id")["time"].min()
    w = data.weights.join(first.rename("t0"), on="patient_id").join(data.heights, on="patient_id")
    w = w[(w["time"] >= w["t0"]) & w["height_cm"].notna()]
    w = w.assign(bmi=w["value"] / (w["height_cm"] / 100) ** 2)
    hits = w[w["bmi"] < r.below_kg_per_m2]
    out = []
    for pid, g in hits.groupby("patient_id", sort=True):
        ev = [Evidence("measurements", _iso(x.time), f"weight {_fmt(x.value)} kg, BMI {x.bmi:.1f} kg/m² "
                       f"(height {_fmt(x.height_cm)} cm)", {"kind": "weight", "value": float(x.value), "bmi": round(float(x.bmi), 2)})
              for x in g.itertuples()]
        out.append(_alert("low_bmi", f"BMI below {r.below_kg_per_m2:g}", f"BMI < {r.below_kg_per_m2:g} kg/m²", str(pid), ev,
                          f"lowest BMI {g['bmi'].min():.1f} kg/m²"))
    return out


def dose_above_protocol(store: Store, data: _Data, rules: MonitoringRules) -> list[Alert]:
    """Ketamine sessions above the route's mg/kg ceiling (+ tolerance); esketamine sessions above the mg ceiling."""
    r = rules.dose_above_protocol
    s = data.sessions
    factor = 1 + r.tolerance_pct / 100
    ceiling = s["route"].map(r.ketamine_max_mg_per_kg).astype(float)
    mgkg = s["dose_mg"] / s["weight_kg"]
    high_ket = (s["drug"] == "ketamine") & (mgkg > ceiling * factor)
    high_esk = (s["drug"] == "esketamine") & (s["dose_mg"] > r.esketamine_max_mg)
    hits = s[high_ket | high_esk]
    ceilings = ", ".join(f"{k} {v:g}" for k, v in r.ketamine_max_mg_per_kg.items())
    threshold = (f"ketamine mg/kg above the route ceiling ({ceilings} mg/kg) + {r.tolerance_pct:g}%; "
                 f"esketamine above {r.esketamine_max_mg:g} mg")
    out = []
    for pid, g in hits.groupby("patient_id", sort=True):
        ev = [_session_evidence(x) for x in g.itertuples()]
        out.append(_alert("dose_above_protocol", "Dose above protocol", threshold, str(pid), ev,
                          f"{len(g)} session(s) above the protocol dose"))
    return out


def session_frequency(store: Store, data: _Data, rules: MonitoringRules) -> list[Alert]:
    """Sessions on 7 consecutive calendar days above the limit of the course phase (induction or after)."""
    r = rules.session_frequency
    s = data.sessions
    if s.empty:
        return []
    codes = pd.factorize(s["patient_id"])[0].astype(np.int64)
    day = (s["time"].dt.normalize() - pd.Timestamp("1970-01-01")).dt.days.to_numpy(np.int64)
    key = codes * 10_000_000 + day  # sorted: sessions are ordered by patient, then time
    in7 = np.searchsorted(key, key, "right") - np.searchsorted(key, key - 6, "left")
    induction = (s["time"] - s["course_start"]).dt.days < r.induction_days
    limit = np.where(induction, r.induction_max_per_7_days, r.maintenance_max_per_7_days)
    over = in7 > limit
    threshold = (f"more than {r.induction_max_per_7_days} sessions in 7 days during the first {r.induction_days} days "
                 f"of a course, more than {r.maintenance_max_per_7_days} after")
    out = []
    for pid in pd.unique(s.loc[over, "patient_id"]):
        idx = np.flatnonzero((s["patient_id"] == pid).to_numpy())
        cited: set[int] = set()
        for i in idx[over[idx]]:
            cited.update(j for j in idx if key[i] - 6 <= key[j] <= key[i])
        rows = s.iloc[sorted(cited)]
        ev = [_session_evidence(x) for x in rows.itertuples()]
        worst = int(in7[idx].max())
        out.append(_alert("session_frequency", "Sessions more often than the protocol allows", threshold, str(pid), ev,
                          f"up to {worst} sessions in 7 days", int(over[idx].sum())))
    return out


def dose_escalation(store: Store, data: _Data, rules: MonitoringRules) -> list[Alert]:
    """Runs of rising doses within one course and drug (see the rules file for the definition)."""
    r = rules.dose_escalation
    s = data.sessions.assign(level=np.where(data.sessions["drug"] == "ketamine",
                                            data.sessions["dose_mg"] / data.sessions["weight_kg"], data.sessions["dose_mg"]))
    s = s[s["level"].notna()]
    step = r.step_pct / 100
    threshold = (f"≥ {r.min_increases} rises of > {r.step_pct:g}% each within a course, totalling ≥ "
                 f"{r.min_total_increase_pct:g}% (mg/kg for ketamine, mg for esketamine)")
    found: dict[str, list[Evidence]] = {}
    messages: dict[str, str] = {}
    # Courses are short (a few to tens of sessions); a plain loop over each course reads clearly.
    for (pid, _course, _drug), g in s.groupby(["patient_id", "course", "drug"], sort=True):
        levels = g["level"].to_numpy()
        start, ups = 0, 0
        for i in range(1, len(levels) + 1):
            falls = i < len(levels) and levels[i] < levels[i - 1] * (1 - step)
            if i == len(levels) or falls:
                total = (levels[start:i].max() / levels[start] - 1) * 100
                if ups >= r.min_increases and total >= r.min_total_increase_pct:
                    found.setdefault(str(pid), []).extend(_session_evidence(x) for x in g.iloc[start:i].itertuples())
                    messages[str(pid)] = f"dose rose {total:.0f}% over {i - start} sessions ({ups} rises)"
                start, ups = i, 0
            elif levels[i] > levels[i - 1] * (1 + step):
                ups += 1
    return [_alert("dose_escalation", "Dose escalation across a course", threshold, pid, ev, messages[pid])
            for pid, ev in sorted(found.items())]


def blood_pressure_after_dose(store: Store, data: _Data, rules: MonitoringRules) -> list[Alert]:
    """Systolic or diastolic readings above the limits within hours after the start of a session."""
    r = rules.blood_pressure_after_dose
    rows = store.query("""
        SELECT e.patient_id, e.time AS session_time, e.drug, e.route, e.dose_mg, m.time, m.kind, m.value
        FROM exposures e JOIN measurements m ON m.patient_id = e.patient_id
          AND m.kind IN ('systolic_bp', 'diastolic_bp') AND m.time >= e.time
          AND epoch(m.time) - epoch(e.time) <= ? * 3600
        WHERE m.time <= ? AND ((m.kind = 'systolic_bp' AND m.value > ?) OR (m.kind = 'diastolic_bp' AND m.value > ?))
        ORDER BY e.patient_id, m.time""",
        [r.within_hours, data.as_of.to_pydatetime(), r.systolic_above_mmhg, r.diastolic_above_mmhg])
    threshold = f"above {r.systolic_above_mmhg:g}/{r.diastolic_above_mmhg:g} mmHg within {r.within_hours:g} h of a session"
    out = []
    for pid, g in rows.groupby("patient_id", sort=True):
        ev = {}
        for x in g.itertuples():
            ev[("s", x.session_time)] = Evidence("exposures", _iso(x.session_time), f"{x.drug} {x.route} {_fmt(x.dose_mg)} mg",
                                                 {"drug": x.drug, "route": x.route, "dose_mg": float(x.dose_mg)})
            name = "systolic" if x.kind == "systolic_bp" else "diastolic"
            ev[("m", x.time, x.kind)] = Evidence("measurements", _iso(x.time), f"{name} blood pressure {x.value:.0f} mmHg",
                                                 {"kind": x.kind, "value": float(x.value)})
        out.append(_alert("blood_pressure_after_dose", "Blood pressure above limit after dosing", threshold, str(pid),
                          list(ev.values()), f"highest reading after dosing: {g['value'].max():.0f} mmHg", len(g)))
    return out


def adverse_event_not_followed_up(store: Store, data: _Data, rules: MonitoringRules) -> list[Alert]:
    """Adverse events of the listed severities with no later record of the patient within N days."""
    r = rules.adverse_event_follow_up
    if not r.severities:
        return []
    marks = ", ".join("?" for _ in r.severities)
    rows = store.query(f"""
        WITH f AS ({_TREATED}),
        ae AS (SELECT a.* FROM adverse_events a JOIN f USING (patient_id)
               WHERE a.severity IN ({marks}) AND a.time + to_days(CAST(? AS INTEGER)) <= ?),
        contact AS (SELECT patient_id, time FROM measurements UNION ALL SELECT patient_id, time FROM exposures)
        SELECT ae.patient_id, ae.time, ae.term, ae.severity FROM ae
        WHERE NOT EXISTS (SELECT 1 FROM contact c WHERE c.patient_id = ae.patient_id AND c.time > ae.time
                          AND c.time <= ae.time + to_days(CAST(? AS INTEGER)))
        ORDER BY ae.patient_id, ae.time""",
        [*r.severities, r.within_days, data.as_of.to_pydatetime(), r.within_days])
    threshold = f"{' or '.join(r.severities)} adverse event without a record of the patient within {r.within_days} days"
    out = []
    for pid, g in rows.groupby("patient_id", sort=True):
        ev = [Evidence("adverse_events", _iso(x.time), f"{x.term} ({x.severity}), no follow-up within {r.within_days} days",
                       {"term": x.term, "severity": x.severity}) for x in g.itertuples()]
        out.append(_alert("adverse_event_not_followed_up", "Adverse event not followed up", threshold, str(pid), ev,
                          f"{len(g)} adverse event(s) without follow-up"))
    return out


def missed_follow_up_weighing(store: Store, data: _Data, rules: MonitoringRules) -> list[Alert]:
    """Gaps longer than the limit without a weight, from the first session to the end of follow-up."""
    r = rules.follow_up_weighing
    limit = pd.Timedelta(days=r.max_gap_days)
    span = data.sessions.groupby("patient_id")["time"].agg(["min", "max"])
    weights = dict(tuple(data.weights.groupby("patient_id")))
    threshold = (f"more than {r.max_gap_days} days without a weight between the first session and "
                 f"{r.monitor_days_after_last_session} days after the last")
    out = []
    for pid, (t0, t_last) in span.iterrows():
        end = min(t_last + pd.Timedelta(days=r.monitor_days_after_last_session), data.as_of)
        g = weights.get(pid)
        times = [] if g is None else g.loc[(g["time"] > t0) & (g["time"] <= end), ["time", "value"]].itertuples(index=False)
        points: list[tuple[pd.Timestamp, Evidence]] = [(t0, Evidence("exposures", _iso(t0), "first session", {}))]
        points += [(t, _weight_evidence(t, v)) for t, v in times]
        points.append((end, Evidence("monitoring", _iso(end), "end of follow-up" if end < data.as_of else "monitoring date", {})))
        gaps = [(a, b) for a, b in zip(points, points[1:]) if b[0] - a[0] > limit]
        if gaps:
            longest = max((b[0] - a[0]).days for a, b in gaps)
            ev = list({e.time + e.text: e for pair in gaps for _, e in pair}.values())
            out.append(_alert("missed_follow_up_weighing", "Missed follow-up weighing", threshold, str(pid), ev,
                              f"{len(gaps)} gap(s) without a weight, longest {longest} days", len(gaps)))
    return out


RULES: dict[str, tuple[Rule, Callable[[MonitoringRules], bool]]] = {
    "rapid_weight_loss": (rapid_weight_loss, lambda r: r.rapid_weight_loss.enabled),
    "low_bmi": (low_bmi, lambda r: r.low_bmi.enabled),
    "dose_above_protocol": (dose_above_protocol, lambda r: r.dose_above_protocol.enabled),
    "session_frequency": (session_frequency, lambda r: r.session_frequency.enabled),
    "dose_escalation": (dose_escalation, lambda r: r.dose_escalation.enabled),
    "blood_pressure_after_dose": (blood_pressure_after_dose, lambda r: r.blood_pressure_after_dose.enabled),
    "adverse_event_not_followed_up": (adverse_event_not_followed_up, lambda r: r.adverse_event_follow_up.enabled),
    "missed_follow_up_weighing": (missed_follow_up_weighing, lambda r: r.follow_up_weighing.enabled),
}
"""Every rule, in the order alerts are listed, with the switch that turns it on."""


def rule_titles(rules: MonitoringRules) -> dict[str, str]:
    """Alert rule id → title for every enabled rule (the rapid-loss rule has one id per window)."""
    titles = {}
    for name, (_fn, on) in RULES.items():
        if not on(rules):
            continue
        if name == "rapid_weight_loss":
            for w in rules.rapid_weight_loss.windows:
                titles[f"rapid_weight_loss_{w.days}d"] = f"Rapid weight loss (> {w.percent:g}% in {w.days} days)"
        else:
            titles[name] = {"low_bmi": f"BMI below {rules.low_bmi.below_kg_per_m2:g}",
                            "dose_above_protocol": "Dose above protocol",
                            "session_frequency": "Sessions more often than the protocol allows",
                            "dose_escalation": "Dose escalation across a course",
                            "blood_pressure_after_dose": "Blood pressure above limit after dosing",
                            "adverse_event_not_followed_up": "Adverse event not followed up",
                            "missed_follow_up_weighing": "Missed follow-up weighing"}[name]
    return titles


def monitor(store: Store | str | Path, rules: MonitoringRules | str | Path | None = None, *,
            as_of: dt.datetime | str | None = None, out_path: str | Path | None = None) -> MonitoringResult:
    """Apply every enabled rule to every treated patient of the store (an open Store or a path).

    ``as_of`` is the monitoring date (default: the latest record in the store); records after it are
    ignored.  With ``out_path``, the alerts are also written there (``kind = "monitoring_alerts"``; the
    file names patients, so keep it inside the clinic)."""
    if not isinstance(rules, MonitoringRules):
        rules = load_rules(rules)
    when = pd.Timestamp(as_of) if as_of is not None else None
    if isinstance(store, Store):
        result, provenance = _run(store, rules, when), store.provenance()
        store_name = store.path.name
    else:
        with Store(store, read_only=True) as opened:
            result, provenance = _run(opened, rules, when), opened.provenance()
        store_name = Path(store).name
    if out_path is not None:
        write_results(out_path, "monitoring_alerts", result.to_dict(), {**provenance.to_dict(), "store": store_name})
    return result


def _run(store: Store, rules: MonitoringRules, as_of: pd.Timestamp | None) -> MonitoringResult:
    data = _load(store, rules, as_of)
    alerts: list[Alert] = []
    for _name, (fn, on) in RULES.items():
        if on(rules):
            alerts.extend(fn(store, data, rules))
    order = {r: i for i, r in enumerate(rule_titles(rules))}
    alerts.sort(key=lambda a: (a.patient_id, order.get(a.rule, math.inf), a.first_time))
    return MonitoringResult(_iso(data.as_of), rules, rule_titles(rules), tuple(alerts),
                            int(data.sessions["patient_id"].nunique()))
