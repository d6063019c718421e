"""Patient-level data for the pages and the API alike: the patient list, one patient's record and
alerts, acknowledging an alert, and the aggregate monitoring counts.

Every function takes the signed-in :class:`~ketaweight.app.deps.Auth` and applies the visibility rule
itself (:func:`~ketaweight.app.deps.visible_patient`); a patient the user may not see is reported as
not found, exactly like a patient that does not exist, so ids cannot be probed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session as DBSession

from ketaweight.app.audit import audit
from ketaweight.app.cache import VersionedCache
from ketaweight.app.config import AppConfig
from ketaweight.app.db import Acknowledgement, Alert, Clinic, PatientClinic, User, bump_state, open_alert
from ketaweight.app.deps import Auth, clinic_filter, visible_clinic, visible_patient
from ketaweight.app.storelock import ReadAnchor
from ketaweight.core.privacy import masked_or_exact
from ketaweight.pipelines.monitoring import rule_titles
from ketaweight.pipelines.monitoring_rules import MonitoringRules
from ketaweight.pipelines.patient_record import PatientRecord

MAX_LIST = 500
"""Patients listed on one page."""


def patient_rows(db: DBSession, auth: Auth, *, only_open: bool) -> tuple[list[dict[str, Any]], bool]:
    """The visible patients, most open alerts first, with the titles of their open alerts; (rows, truncated)."""
    n_open = (select(Alert.patient_id, func.count().label("n")).where(open_alert())
              .group_by(Alert.patient_id).subquery())
    q = (select(PatientClinic.patient_id, Clinic.name, n_open.c.n)
         .join(Clinic, Clinic.id == PatientClinic.clinic_id)
         .outerjoin(n_open, n_open.c.patient_id == PatientClinic.patient_id)
         .where(clinic_filter(auth)))
    if only_open:
        q = q.where(n_open.c.n > 0)
    q = q.order_by(func.coalesce(n_open.c.n, 0).desc(), PatientClinic.patient_id).limit(MAX_LIST + 1)
    found = db.execute(q).all()[: MAX_LIST + 1]
    titles: dict[str, list[str]] = defaultdict(list)
    ids = [pid for pid, _, n in found[:MAX_LIST] if n]
    for pid, title in db.execute(select(Alert.patient_id, Alert.title).where(open_alert(), Alert.patient_id.in_(ids))
                                 .order_by(Alert.title)) if ids else ():
        titles[pid].append(title)
    rows = [{"patient_id": pid, "clinic": clinic, "open": int(n or 0), "rules": "; ".join(titles.get(pid, []))}
            for pid, clinic, n in found[:MAX_LIST]]
    return rows, len(found) > MAX_LIST


def alerts_for(db: DBSession, patient_id: str) -> list[dict[str, Any]]:
    """Every alert of a patient (open first), each with its acknowledgements and who made them (one query)."""
    rows = db.execute(
        select(Alert.alert_id, Alert.rule, Alert.title, Alert.threshold, Alert.message, Alert.first_time, Alert.last_time,
               Alert.evidence, Alert.n_triggers, Alert.active, User.username, Acknowledgement.comment, Acknowledgement.at)
        .outerjoin(Acknowledgement, Acknowledgement.alert_id == Alert.alert_id)
        .outerjoin(User, User.id == Acknowledgement.user_id)
        .where(Alert.patient_id == patient_id)
        .order_by(Alert.active.desc(), Alert.last_time.desc(), Alert.alert_id, Acknowledgement.at)).all()
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        alert = out.setdefault(r.alert_id, {
            "alert_id": r.alert_id, "rule": r.rule, "title": r.title, "threshold": r.threshold, "message": r.message,
            "first_time": r.first_time, "last_time": r.last_time, "evidence": r.evidence, "n_triggers": r.n_triggers,
            "active": r.active, "acks": []})
        if r.at is not None:
            alert["acks"].append({"username": r.username, "comment": r.comment, "at": r.at})
    return list(out.values())


@dataclass(frozen=True)
class PatientView:
    """What a patient page or the patient API shows: the record (with the store version it was read at), the
    clinic and the alerts."""

    record: PatientRecord
    store_version: tuple[int, ...]
    clinic: str
    alerts: list[dict[str, Any]]


def load_patient(db: DBSession, auth: Auth, config: AppConfig, patient_id: str, client: str, anchor: ReadAnchor,
                 cache: VersionedCache) -> PatientView | None:
    """The record and alerts of a patient the user may see (the view is audited), or None.

    The record is read once per store version and process (:mod:`ketaweight.app.cache`); the visibility
    check, the alerts and the audit entry are done on every request."""
    clinic = visible_clinic(db, auth, patient_id)
    if clinic is None or not config.store_path.exists():
        return None
    with anchor.reading() as reading:
        if reading is None:
            return None
        record = cache.get_or_make(("record", reading.version, patient_id), lambda: reading.reader.record(patient_id))
    if record is None:
        return None
    audit(db, auth.user, "view patient", target=patient_id, client=client)
    db.commit()
    return PatientView(record, reading.version, clinic, alerts_for(db, patient_id))


def acknowledge(db: DBSession, auth: Auth, alert_id: str, comment: str, client: str) -> Alert | None:
    """Record an acknowledgement with its comment (who and when are kept); None if the alert is not visible."""
    alert = db.get(Alert, alert_id)
    if alert is None or not visible_patient(db, auth, alert.patient_id):
        return None
    comment = comment.strip()
    if not comment:
        raise ValueError("say in a comment what was done about the alert")
    db.add(Acknowledgement(alert_id=alert_id, user_id=auth.user.id, comment=comment[:2000]))
    bump_state(db)
    audit(db, auth.user, "acknowledge alert", target=f"{alert.patient_id} {alert.rule} {alert_id}", detail=comment[:500],
          client=client)
    db.commit()
    return alert


def monitoring_counts(db: DBSession, auth: Auth, rules: MonitoringRules) -> list[dict[str, Any]]:
    """Open alerts and patients per rule, masked below 11; scope: the user's clinic, all clinics otherwise."""
    q = select(Alert.rule, func.count(), func.count(func.distinct(Alert.patient_id))).where(open_alert())
    if auth.role == "clinician":
        q = q.where(Alert.patient_id.in_(select(PatientClinic.patient_id).where(clinic_filter(auth))))
    counts = {rule: (n, p) for rule, n, p in db.execute(q.group_by(Alert.rule))}
    return [{"rule": rule, "title": title, "alerts": masked_or_exact(counts.get(rule, (0, 0))[0]),
             "patients": masked_or_exact(counts.get(rule, (0, 0))[1])} for rule, title in rule_titles(rules).items()]
