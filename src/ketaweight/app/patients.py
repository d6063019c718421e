"""Patient-level data for the pages and the API alike: the patient list, one patient's record and
alerts, acknowledging an alert, and the aggregate monitoring counts.

Every function takes the signed-in :class:`~ketaweight.app.deps.Auth` and applies the visibility rule
itself (:func:`~ketaweight.app.deps.visible_patient`); a patient the user may not see is reported as
not found, exactly like a patient that does not exist, so ids cannot be probed.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session as DBSession

from ketaweight.app.audit import audit
from ketaweight.app.config import AppConfig
from ketaweight.app.db import Acknowledgement, Alert, Clinic, PatientClinic, User, open_alert
from ketaweight.app.deps import Auth, clinic_filter, visible_patient
from ketaweight.app.storelock import ReadAnchor, store_lock
from ketaweight.core.privacy import masked_or_exact
from ketaweight.pipelines.monitoring import rule_titles
from ketaweight.pipelines.monitoring_rules import MonitoringRules
from ketaweight.pipelines.patient_record import PatientRecord, patient_record

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
    """Every alert of a patient (open first), each with its acknowledgements and who made them."""
    alerts = db.scalars(select(Alert).where(Alert.patient_id == patient_id)
                        .order_by(Alert.active.desc(), Alert.last_time.desc())).all()
    acks: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if alerts:
        for ack, username in db.execute(select(Acknowledgement, User.username).join(User, User.id == Acknowledgement.user_id)
                                        .where(Acknowledgement.alert_id.in_([a.alert_id for a in alerts]))
                                        .order_by(Acknowledgement.at)):
            acks[ack.alert_id].append({"username": username, "comment": ack.comment, "at": ack.at})
    return [{"alert_id": a.alert_id, "rule": a.rule, "title": a.title, "threshold": a.threshold, "message": a.message,
             "first_time": a.first_time, "last_time": a.last_time, "evidence": a.evidence, "n_triggers": a.n_triggers,
             "active": a.active, "acks": acks.get(a.alert_id, [])} for a in alerts]


def load_patient(db: DBSession, auth: Auth, config: AppConfig, patient_id: str, client: str,
                 anchor: ReadAnchor | None = None) -> tuple[PatientRecord, dict[str, Any]] | None:
    """The record and alerts of a patient the user may see (the view is audited), or None."""
    if not visible_patient(db, auth, patient_id) or not config.store_path.exists():
        return None
    with store_lock(config.store_path):
        if anchor is not None:
            anchor.ensure()
        record = patient_record(config.store_path, patient_id)
    if record is None:
        return None
    clinic = db.get(Clinic, db.get(PatientClinic, patient_id).clinic_id).name
    audit(db, auth.user, "view patient", target=patient_id, client=client)
    db.commit()
    return record, {"clinic": clinic, "alerts": alerts_for(db, patient_id)}


def acknowledge(db: DBSession, auth: Auth, alert_id: str, comment: str, client: str) -> Alert | None:
    """Record an acknowledgement with its comment (who and when are kept); None if the alert is not visible."""
    alert = db.get(Alert, alert_id)
    if alert is None or not visible_patient(db, auth, alert.patient_id):
        return None
    comment = comment.strip()
    if not comment:
        raise ValueError("say in a comment what was done about the alert")
    db.add(Acknowledgement(alert_id=alert_id, user_id=auth.user.id, comment=comment[:2000]))
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
