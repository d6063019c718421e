"""Pages: the patient list, one patient (alerts, trajectories), acknowledging an alert, monitoring counts."""

from __future__ import annotations

import math

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session as DBSession

from ketaweight.app.audit import audit
from ketaweight.app.charts import line_chart
from ketaweight.app.db import Clinic
from ketaweight.app.deps import ALL_ROLES, PATIENT_LEVEL, Auth, client_of, get_db, render, require
from ketaweight.app.patients import acknowledge, load_patient, monitoring_counts, patient_rows
from ketaweight.pipelines.monitoring import rule_titles

router = APIRouter(include_in_schema=False)


def _clinic_name(db: DBSession, auth: Auth) -> str | None:
    return db.get(Clinic, auth.user.clinic_id).name if auth.user.clinic_id is not None else None


@router.get("/patients", response_class=HTMLResponse)
def patients_page(request: Request, alerts: str = Query("", max_length=10), auth: Auth = Depends(require(*PATIENT_LEVEL)),
                  db: DBSession = Depends(get_db)) -> Response:
    """The patients of the user's clinic (admins: every clinic), most open alerts first."""
    rows, truncated = patient_rows(db, auth, only_open=alerts == "open")
    audit(db, auth.user, "view patient list", target="open alerts" if alerts == "open" else "all", client=client_of(request))
    db.commit()
    return render(request, "patients.html", auth, title="Patients", rows=rows, truncated=truncated,
                  only_open=alerts == "open", clinic=_clinic_name(db, auth))


def _fmt_time(t: object) -> str:
    return f"{t:%Y-%m-%d %H:%M}"


@router.get("/patients/{patient_id}", response_class=HTMLResponse)
def patient_page(request: Request, patient_id: str, flash: str = Query("", max_length=100),
                 auth: Auth = Depends(require(*PATIENT_LEVEL)), db: DBSession = Depends(get_db)) -> Response:
    """One patient: alerts with the rows behind them, weight, dose and MADRS over time (charts and tables)."""
    found = load_patient(db, auth, request.app.state.config, patient_id, client_of(request),
                         request.app.state.anchor)
    if found is None:
        raise HTTPException(404, "no such patient in your clinic")
    record, extra = found
    sessions = record.sessions
    session_times = [t.to_pydatetime() for t in sessions["time"]]
    weights = [(t.to_pydatetime(), float(v)) for t, v in zip(record.weights["time"], record.weights["value"])]
    mgkg = [(t.to_pydatetime(), float(v)) for t, v in zip(sessions["time"], sessions["mg_per_kg"]) if not math.isnan(v)]
    madrs = record.depression[record.depression["kind"] == "madrs"]
    charts = {
        "weight": line_chart(weights, title="Weight", unit="kg", chart_id="ch-weight", markers=session_times),
        "dose": line_chart(mgkg, title="Dose per kg of body weight", unit="mg/kg", chart_id="ch-dose"),
        "madrs": line_chart([(t.to_pydatetime(), float(v)) for t, v in zip(madrs["time"], madrs["value"])],
                            title="MADRS score", unit="points", chart_id="ch-madrs", markers=session_times),
    }
    return render(
        request, "patient.html", auth, title=f"Patient {patient_id}", record=record, clinic=extra["clinic"],
        alerts=extra["alerts"], charts=charts, flash="Alert acknowledged." if flash == "ack" else "",
        sessions=[{"time": _fmt_time(s.time), "drug": s.drug, "route": s.route, "dose": f"{s.dose_mg:.1f}",
                   "mgkg": "—" if math.isnan(s.mg_per_kg) else f"{s.mg_per_kg:.2f}"} for s in sessions.itertuples()],
        weights=[{"time": _fmt_time(t), "value": f"{v:.1f}"} for t, v in weights],
        events=[{"time": _fmt_time(e.time), "term": e.term, "severity": e.severity} for e in record.adverse_events.itertuples()])


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
    scope = _clinic_name(db, auth) if auth.role == "clinician" else "all clinics"
    dose = rules.dose_above_protocol
    rule_list = [*rule_titles(rules).values(),
                 f"dose ceilings: ketamine {', '.join(f'{k} {v:g}' for k, v in dose.ketamine_max_mg_per_kg.items())} mg/kg "
                 f"(+{dose.tolerance_pct:g}%); esketamine {dose.esketamine_max_mg:g} mg"]
    return render(request, "monitoring.html", auth, title="Monitoring", rows=monitoring_counts(db, auth, rules), scope=scope,
                  rules_file=rules.source, rule_list=rule_list)
