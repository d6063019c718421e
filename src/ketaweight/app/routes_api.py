"""The JSON API (``/api/…``, described at ``/openapi.json``): the same data and rules as the pages.

Authentication is the session cookie; unsafe methods also need the ``X-CSRF-Token`` header (the
token is returned by ``GET /api/me``).  Patient-level endpoints answer 403 to researchers whatever
the id, and 404 to clinicians for another clinic's patient, exactly as for one that does not exist.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session as DBSession

from ketaweight.app.audit import audit
from ketaweight.app.db import Alert, Job, PatientClinic, Run, open_alert
from ketaweight.app.deps import ALL_ROLES, PATIENT_LEVEL, Auth, client_of, clinic_filter, get_db, require
from ketaweight.app.patients import acknowledge, alerts_for, load_patient, monitoring_counts, patient_rows
from ketaweight.app.answer import report_sections
from ketaweight.app.routes_data import jobs_for, queue_job, visible_job
from ketaweight.app.runs import add_comment, compare_runs, run_folder

router = APIRouter(prefix="/api", tags=["api"])
ID = Field(min_length=1, max_length=120)


class Health(BaseModel):
    status: Literal["ok"]


class Me(BaseModel):
    username: str
    role: str
    clinic_id: int | None
    csrf_token: str


class RuleCount(BaseModel):
    rule: str
    title: str
    alerts: int | str = Field(description="open alerts; '<11' for 1 to 10")
    patients: int | str = Field(description="patients with open alerts; '<11' for 1 to 10")


class PatientRow(BaseModel):
    patient_id: str
    clinic: str
    open: int
    rules: str


class AlertOut(BaseModel):
    alert_id: str
    patient_id: str
    rule: str
    title: str
    threshold: str
    message: str
    first_time: str
    last_time: str
    active: bool
    evidence: list[dict[str, Any]]
    acknowledgements: list[dict[str, Any]] = []


class Point(BaseModel):
    time: str
    value: float


class PatientOut(BaseModel):
    patient_id: str
    clinic: str
    sex: str
    birth_year: int
    height_cm: float
    weights: list[Point]
    mg_per_kg: list[Point]
    madrs: list[Point]
    alerts: list[AlertOut]


class AckIn(BaseModel):
    comment: str = Field(min_length=1, max_length=2000)


class JobIn(BaseModel):
    kind: Literal["study", "monitor"]
    title: str = Field("Weight study", max_length=200)
    depression: bool = True
    mechanisms: bool = False
    signals: bool = False


class JobOut(BaseModel):
    id: int
    kind: str
    status: str
    progress: float
    stage: str
    error: str | None
    run_id: int | None


class RunOut(BaseModel):
    id: int
    title: str
    grade: str | None
    sentence: str | None
    created_utc: str
    contents: list[str]


class ChangeOut(BaseModel):
    section: str
    what: str
    before: str
    after: str


class CommentIn(BaseModel):
    section_id: str = Field(min_length=1, max_length=80)
    body: str = Field(min_length=1, max_length=5000)


@router.get("/health", response_model=Health)
def health() -> dict[str, str]:
    """Liveness (public)."""
    return {"status": "ok"}


@router.get("/me", response_model=Me)
def me(auth: Auth = Depends(require(*ALL_ROLES))) -> dict[str, Any]:
    """Who is signed in, and the CSRF token for unsafe requests."""
    return {"username": auth.user.username, "role": auth.role, "clinic_id": auth.user.clinic_id,
            "csrf_token": auth.session.csrf_token}


@router.get("/monitoring/summary", response_model=list[RuleCount])
def monitoring_summary(request: Request, auth: Auth = Depends(require(*ALL_ROLES)),
                       db: DBSession = Depends(get_db)) -> list[dict[str, Any]]:
    """Open alerts per rule (no identifiers; counts under 11 as '<11')."""
    return monitoring_counts(db, auth, request.app.state.rules)


@router.get("/patients", response_model=list[PatientRow])
def patients(request: Request, only_open: bool = Query(False), auth: Auth = Depends(require(*PATIENT_LEVEL)),
             db: DBSession = Depends(get_db)) -> list[dict[str, Any]]:
    """The patients the user may see, with open-alert counts (patient-level: clinicians and admins)."""
    rows, _ = patient_rows(db, auth, only_open=only_open)
    audit(db, auth.user, "view patient list", target="api", client=client_of(request))
    db.commit()
    return rows


def _points(points: Any) -> list[dict[str, Any]]:
    return [{"time": f"{t:%Y-%m-%dT%H:%M:%S}", "value": float(v)} for t, v in points if not math.isnan(v)]


def _alert_out(a: dict[str, Any], patient_id: str) -> dict[str, Any]:
    return {**{k: a[k] for k in ("alert_id", "rule", "title", "threshold", "message", "first_time", "last_time", "active",
                                 "evidence")},
            "patient_id": patient_id,
            "acknowledgements": [{"by": k["username"], "comment": k["comment"], "at": f"{k['at']:%Y-%m-%dT%H:%M:%S}"}
                                 for k in a["acks"]]}


@router.get("/patients/{patient_id}", response_model=PatientOut)
def patient(request: Request, patient_id: str = Path(min_length=1, max_length=120),
            auth: Auth = Depends(require(*PATIENT_LEVEL)), db: DBSession = Depends(get_db)) -> dict[str, Any]:
    """One patient's trajectories and alerts (404 when not in the user's clinic)."""
    state = request.app.state
    view = load_patient(db, auth, state.config, patient_id, client_of(request), state.anchor, state.cache)
    if view is None:
        raise HTTPException(404, "no such patient in your clinic")
    r = view.record
    return {"patient_id": r.patient_id, "clinic": view.clinic, "sex": r.sex, "birth_year": r.birth_year,
            "height_cm": r.height_cm, "weights": _points(r.weights),
            "mg_per_kg": _points((s.time, s.mg_per_kg) for s in r.sessions),
            "madrs": _points((m.time, m.value) for m in r.scores("madrs")),
            "alerts": [_alert_out(a, r.patient_id) for a in view.alerts]}


@router.get("/alerts", response_model=list[AlertOut])
def alerts(request: Request, limit: int = Query(100, ge=1, le=1000), auth: Auth = Depends(require(*PATIENT_LEVEL)),
           db: DBSession = Depends(get_db)) -> list[dict[str, Any]]:
    """Open alerts of the patients the user may see (patient-level)."""
    visible = select(PatientClinic.patient_id).where(clinic_filter(auth))
    rows = db.scalars(select(Alert).where(open_alert(), Alert.patient_id.in_(visible))
                      .order_by(Alert.patient_id, Alert.rule).limit(limit)).all()
    audit(db, auth.user, "view alerts", target="api", detail=f"{len(rows)} alerts", client=client_of(request))
    db.commit()
    return [{"alert_id": a.alert_id, "patient_id": a.patient_id, "rule": a.rule, "title": a.title, "threshold": a.threshold,
             "message": a.message, "first_time": a.first_time, "last_time": a.last_time, "active": a.active,
             "evidence": a.evidence} for a in rows]


@router.post("/alerts/{alert_id}/ack", response_model=AlertOut)
def ack(request: Request, body: AckIn, alert_id: str = Path(min_length=1, max_length=32),
        auth: Auth = Depends(require(*PATIENT_LEVEL)), db: DBSession = Depends(get_db)) -> dict[str, Any]:
    """Acknowledge an alert with a comment."""
    try:
        alert = acknowledge(db, auth, alert_id, body.comment, client_of(request))
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    if alert is None:
        raise HTTPException(404, "no such alert in your clinic")
    return next(_alert_out(a, alert.patient_id) for a in alerts_for(db, alert.patient_id) if a["alert_id"] == alert_id)


def _job_out(job: Any) -> dict[str, Any]:
    return {"id": job.id, "kind": job.kind, "status": job.status, "progress": job.progress, "stage": job.stage,
            "error": job.error, "run_id": job.run_id}


@router.get("/jobs", response_model=list[JobOut])
def jobs(auth: Auth = Depends(require(*ALL_ROLES)), db: DBSession = Depends(get_db)) -> list[dict[str, Any]]:
    """The latest jobs the user may see."""
    return [_job_out(j) for j in jobs_for(db, auth)]


@router.get("/jobs/{job_id}", response_model=JobOut)
def job(job_id: int = Path(ge=1, le=2**31 - 1), auth: Auth = Depends(require(*ALL_ROLES)),
        db: DBSession = Depends(get_db)) -> dict[str, Any]:
    """One job's status and progress (0..1) — what the job page polls."""
    found = db.get(Job, job_id)
    if not visible_job(db, auth, found):
        raise HTTPException(404, "no such job")
    return _job_out(found)


@router.post("/jobs", response_model=JobOut, status_code=202)
def start_job(request: Request, body: JobIn, auth: Auth = Depends(require(*ALL_ROLES)),
              db: DBSession = Depends(get_db)) -> dict[str, Any]:
    """Queue a study run (any role) or a monitoring check (clinicians, admins)."""
    if body.kind == "monitor":
        if auth.role not in PATIENT_LEVEL:
            raise HTTPException(403, "your role may not start monitoring")
        new = queue_job(db, auth, "monitor", {}, auth.user.clinic_id)
    else:
        new = queue_job(db, auth, "study", {"title": body.title, "studies": ["weight", *(["depression"] if body.depression else [])],
                                            "mechanisms": body.mechanisms, "signals": body.signals})
    audit(db, auth.user, f"start {body.kind}", target=f"job {new.id}", client=client_of(request))
    db.commit()
    request.app.state.wake_jobs()
    return _job_out(new)


def _run_out(r: Run) -> dict[str, Any]:
    return {"id": r.id, "title": r.title, "grade": r.grade, "sentence": r.sentence,
            "created_utc": f"{r.created_at:%Y-%m-%dT%H:%M:%SZ}", "contents": list(r.contents or [])}


@router.get("/runs", response_model=list[RunOut])
def runs(auth: Auth = Depends(require(*ALL_ROLES)), db: DBSession = Depends(get_db)) -> list[dict[str, Any]]:
    """Every run, newest first."""
    return [_run_out(r) for r in db.scalars(select(Run).order_by(Run.id.desc()).limit(200))]


def _get_run(db: DBSession, run_id: int) -> Run:
    found = db.get(Run, run_id)
    if found is None:
        raise HTTPException(404, "no such run")
    return found


@router.get("/runs/{run_id}", response_model=RunOut)
def run(run_id: int = Path(ge=1, le=2**31 - 1), auth: Auth = Depends(require(*ALL_ROLES)),
        db: DBSession = Depends(get_db)) -> dict[str, Any]:
    """One run's answer and grade."""
    return _run_out(_get_run(db, run_id))


@router.get("/runs/{a}/compare/{b}", response_model=list[ChangeOut])
def compare(request: Request, a: int = Path(ge=1, le=2**31 - 1), b: int = Path(ge=1, le=2**31 - 1),
            auth: Auth = Depends(require(*ALL_ROLES)), db: DBSession = Depends(get_db)) -> list[dict[str, Any]]:
    """What differs between two runs' reports."""
    out = compare_runs(request.app.state.config, _get_run(db, a), _get_run(db, b))
    return [c.__dict__ for c in out["changes"]]


@router.post("/runs/{run_id}/comments", status_code=201, response_model=CommentIn)
def comment(request: Request, body: CommentIn, run_id: int = Path(ge=1, le=2**31 - 1),
            auth: Auth = Depends(require(*ALL_ROLES)), db: DBSession = Depends(get_db)) -> dict[str, Any]:
    """Add a comment to one section of a run's answer page."""
    found = _get_run(db, run_id)
    sections, _ = report_sections(run_folder(request.app.state.config, found) / "report.html")
    try:
        add_comment(db, auth, found, sections, body.section_id, body.body, client_of(request))
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    return body.model_dump()
