"""Pages: the patient list, one patient (alerts, trajectories), acknowledging an alert, monitoring counts."""

from __future__ import annotations

import datetime as dt
import math

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup
from sqlalchemy.orm import Session as DBSession

from ketaweight.app.audit import audit
from ketaweight.app.charts import line_chart
from ketaweight.app.db import Clinic
from ketaweight.app.cache import scope, state_cached
from ketaweight.app.deps import ALL_ROLES, PATIENT_LEVEL, Auth, client_of, fragment, get_db, render, require
from ketaweight.app.patients import acknowledge, load_patient, monitoring_counts, patient_rows
from ketaweight.pipelines.monitoring import rule_titles
from ketaweight.pipelines.patient_record import PatientRecord

router = APIRouter(include_in_schema=False)


def _clinic_name(db: DBSession, auth: Auth) -> str | None:
    return db.get(Clinic, auth.user.clinic_id).name if auth.user.clinic_id is not None else None


@router.get("/patients", response_class=HTMLResponse)
def patients_page(request: Request, alerts: str = Query("", max_length=10), auth: Auth = Depends(require(*PATIENT_LEVEL)),
                  db: DBSession = Depends(get_db)) -> Response:
    """The patients of the user's clinic (admins: every clinic), most open alerts first."""
    only_open = alerts == "open"

    def table() -> Markup:
        rows, truncated = patient_rows(db, auth, only_open=only_open)
        return fragment("patients_table.html", rows=rows, truncated=truncated, clinic=_clinic_name(db, auth))

    html = state_cached(request.app.state.cache, db, ("patients", *scope(auth), only_open), table)
    audit(db, auth.user, "view patient list", target="open alerts" if only_open else "all", client=client_of(request))
    db.commit()
    return render(request, "patients.html", auth, title="Patients", table=html, only_open=only_open)


def _fmt_time(t: dt.datetime) -> str:
    return f"{t:%Y-%m-%d %H:%M}"


def trajectories(record: PatientRecord) -> Markup:
    """A patient's weight, dose and MADRS charts and the same data as tables (from the store only)."""
    session_times = [s.time for s in record.sessions]
    mgkg = [(s.time, s.mg_per_kg) for s in record.sessions if not math.isnan(s.mg_per_kg)]
    charts = {
        "weight": line_chart(record.weights, title="Weight", unit="kg", chart_id="ch-weight", markers=session_times),
        "dose": line_chart(mgkg, title="Dose per kg of body weight", unit="mg/kg", chart_id="ch-dose"),
        "madrs": line_chart([(r.time, r.value) for r in record.scores("madrs")], title="MADRS score", unit="points",
                            chart_id="ch-madrs", markers=session_times),
    }
    return fragment(
        "patient_trajectories.html", charts=charts,
        sessions=[{"time": _fmt_time(s.time), "drug": s.drug, "route": s.route, "dose": f"{s.dose_mg:.1f}",
                   "mgkg": "—" if math.isnan(s.mg_per_kg) else f"{s.mg_per_kg:.2f}"} for s in record.sessions],
        weights=[{"time": _fmt_time(w.time), "value": f"{w.kg:.1f}"} for w in record.weights],
        events=[{"time": _fmt_time(e.time), "term": e.term, "severity": e.severity} for e in record.adverse_events])


@router.get("/patients/{patient_id}", response_class=HTMLResponse)
def patient_page(request: Request, patient_id: str, flash: str = Query("", max_length=100),
                 auth: Auth = Depends(require(*PATIENT_LEVEL)), db: DBSession = Depends(get_db)) -> Response:
    """One patient: alerts with the rows behind them, weight, dose and MADRS over time (charts and tables)."""
    state = request.app.state
    view = load_patient(db, auth, state.config, patient_id, client_of(request), state.anchor, state.cache)
    if view is None:
        raise HTTPException(404, "no such patient in your clinic")
    html = state.cache.get_or_make(("trajectories", view.store_version, patient_id), lambda: trajectories(view.record))
    return render(request, "patient.html", auth, title=f"Patient {patient_id}", record=view.record, clinic=view.clinic,
                  alerts=view.alerts, trajectories=html, flash="Alert acknowledged." if flash == "ack" else "")


@router.post("/alerts/{alert_id}/ack")
def acknowledge_alert(request: Request, alert_id: str, comment: str = Form("", max_length=2000),
                      auth: Auth = Depends(require(*PATIENT_LEVEL)), db: DBSession = Depends(get_db)) -> Response:
    """Acknowledge an alert with a comment; back to the patient."""
    try:
        alert = acknowledge(db, auth, alert_id, comment, client_of(request))
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    if alert is None:
        raise HTTPException(404, "no such alert in your clinic")
    return RedirectResponse(f"/patients/{alert.patient_id}?flash=ack#alerts", status_code=303)


@router.get("/monitoring", response_class=HTMLResponse)
def monitoring_page(request: Request, auth: Auth = Depends(require(*ALL_ROLES)), db: DBSession = Depends(get_db)) -> Response:
    """Open alerts per rule (no identifiers; counts under 11 masked) and the rules themselves."""
    rules = request.app.state.rules
    where = _clinic_name(db, auth) if auth.role == "clinician" else "all clinics"
    dose = rules.dose_above_protocol
    rule_list = [*rule_titles(rules).values(),
                 f"dose ceilings: ketamine {', '.join(f'{k} {v:g}' for k, v in dose.ketamine_max_mg_per_kg.items())} mg/kg "
                 f"(+{dose.tolerance_pct:g}%); esketamine {dose.esketamine_max_mg:g} mg"]
    rows = state_cached(request.app.state.cache, db, ("monitoring", *scope(auth)), lambda: monitoring_counts(db, auth, rules))
    return render(request, "monitoring.html", auth, title="Monitoring", rows=rows, scope=where,
                  rules_file=rules.source, rule_list=rule_list)
