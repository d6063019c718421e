"""Pages: uploading a clinic's data, starting jobs, following a job's progress."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from sqlalchemy import select
from sqlalchemy.orm import Session as DBSession

from ketaweight.app.audit import audit
from ketaweight.app.db import Clinic, Job, User
from ketaweight.app.deps import ALL_ROLES, PATIENT_LEVEL, Auth, client_of, get_db, render, require
from ketaweight.app.uploads import FORMATS, UploadRefused, unpack

router = APIRouter(include_in_schema=False)


def _clinics_for(db: DBSession, auth: Auth) -> list[Clinic]:
    if auth.role == "admin":
        return list(db.scalars(select(Clinic).order_by(Clinic.name)))
    return [db.get(Clinic, auth.user.clinic_id)] if auth.user.clinic_id is not None else []


def _upload_page(request: Request, auth: Auth, db: DBSession, error: str = "", status_code: int = 200) -> Response:
    return render(request, "upload.html", auth, status_code, title="Upload data", error=error,
                  formats=list(FORMATS.values()), clinics=_clinics_for(db, auth),
                  max_mb=request.app.state.config.max_upload_bytes // 1024**2)


@router.get("/upload", response_class=HTMLResponse)
def upload_form(request: Request, auth: Auth = Depends(require(*PATIENT_LEVEL)), db: DBSession = Depends(get_db)) -> Response:
    """The upload form (a zipped data folder, its format and clinic)."""
    return _upload_page(request, auth, db)


async def upload_size_limit(request: Request) -> None:
    """Refuse an upload by its declared size before a byte of it is read (413), or one without a size (411)."""
    limit = request.app.state.config.max_upload_bytes
    length = request.headers.get("content-length")
    if length is None or not length.isdigit():
        raise HTTPException(411, "the upload must state its size (Content-Length)")
    if int(length) > limit:
        raise HTTPException(413, f"refused: the upload is larger than the limit of {limit / 1024**2:,.0f} MiB; "
                                 "split the data into several uploads")


def queue_job(db: DBSession, auth: Auth, kind: str, params: dict, clinic_id: int | None = None) -> Job:
    job = Job(kind=kind, params=params, status="queued", user_id=auth.user.id, clinic_id=clinic_id)
    db.add(job)
    db.flush()
    return job


@router.post("/upload", dependencies=[Depends(upload_size_limit)])
async def upload(request: Request, auth: Auth = Depends(require(*PATIENT_LEVEL)), db: DBSession = Depends(get_db)) -> Response:
    """Check the archive, unpack its data files and queue the load job; its page shows the validation report."""
    config = request.app.state.config
    form = await request.form(max_files=1, max_fields=5)
    archive, fmt_key, clinic_raw = form.get("archive"), str(form.get("format", "canonical")), str(form.get("clinic_id", ""))
    client = client_of(request)
    if fmt_key not in FORMATS:
        return _upload_page(request, auth, db, f"unknown format {fmt_key!r}", 422)
    clinics = {str(c.id): c for c in _clinics_for(db, auth)}
    if clinic_raw not in clinics:
        return _upload_page(request, auth, db, "choose one of your clinics (an admin adds clinics under Accounts)", 422)
    if archive is None or isinstance(archive, str) or not archive.filename:
        return _upload_page(request, auth, db, "choose a .zip file to upload", 422)
    filename = Path(archive.filename).name[:120]
    config.uploads_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="zip-", dir=config.uploads_dir))
    def receive() -> Path:
        saved = scratch / "upload.zip"
        with open(saved, "wb") as out:
            shutil.copyfileobj(archive.file, out, 1024 * 1024)
        return unpack(saved, FORMATS[fmt_key], config.uploads_dir, max_unpacked_bytes=config.max_unpacked_bytes,
                      max_ratio=config.max_compression_ratio)

    try:
        folder = await run_in_threadpool(receive)
    except UploadRefused as exc:
        audit(db, auth.user, "upload refused", target=filename, detail=str(exc), client=client)
        db.commit()
        return _upload_page(request, auth, db, str(exc), 422)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    clinic = clinics[clinic_raw]
    job = queue_job(db, auth, "load", {"folder": str(folder), "format": fmt_key, "clinic_id": clinic.id,
                                       "filename": filename}, clinic.id)
    audit(db, auth.user, "upload", target=f"job {job.id}", detail=f"{filename} for clinic {clinic.name}", client=client)
    db.commit()
    request.app.state.wake_jobs()
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


def visible_job(db: DBSession, auth: Auth, job: Any) -> bool:
    """Researchers see study jobs only; clinicians also their own clinic's loads; admins everything.

    ``job`` is a :class:`Job` or a row with its ``kind`` and ``clinic_id`` (None: no such job)."""
    if job is None:
        return False
    if auth.role == "admin" or job.kind == "study":
        return True
    return auth.role == "clinician" and job.kind in ("load", "monitor") and (
        job.clinic_id in (None, auth.user.clinic_id) if job.kind == "monitor" else job.clinic_id == auth.user.clinic_id)


def jobs_for(db: DBSession, auth: Auth, limit: int = 30) -> list[Any]:
    """The latest jobs this user may see: rows of id, kind, status, progress, stage, error, run_id, created_at and
    the starter's username (not the parameters and results, which can be large)."""
    rows = db.execute(select(Job.id, Job.kind, Job.status, Job.progress, Job.stage, Job.error, Job.run_id, Job.clinic_id,
                             Job.created_at, User.username)
                      .join(User, User.id == Job.user_id).order_by(Job.id.desc()).limit(200)).all()
    return [r for r in rows if visible_job(db, auth, r)][:limit]


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request, auth: Auth = Depends(require(*ALL_ROLES)), db: DBSession = Depends(get_db)) -> Response:
    """Start the weight study; the latest jobs."""
    return render(request, "jobs.html", auth, title="Jobs", jobs=jobs_for(db, auth))


@router.post("/jobs/study")
def start_study(request: Request, title: str = Form("Weight study", max_length=200), depression: str = Form(""),
                mechanisms: str = Form(""), signals: str = Form(""), auth: Auth = Depends(require(*ALL_ROLES)),
                db: DBSession = Depends(get_db)) -> Response:
    """Queue a run: the weight study (plus the chosen extras) and its report."""
    params = {"title": title.strip() or "Weight study", "studies": ["weight", *(["depression"] if depression else [])],
              "mechanisms": bool(mechanisms), "signals": bool(signals)}
    job = queue_job(db, auth, "study", params)
    audit(db, auth.user, "start study", target=f"job {job.id}", detail=str(params), client=client_of(request))
    db.commit()
    request.app.state.wake_jobs()
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.post("/jobs/monitor")
def start_monitor(request: Request, auth: Auth = Depends(require(*PATIENT_LEVEL)), db: DBSession = Depends(get_db)) -> Response:
    """Queue a fresh check of the monitoring rules."""
    job = queue_job(db, auth, "monitor", {}, auth.user.clinic_id)
    audit(db, auth.user, "start monitoring", target=f"job {job.id}", client=client_of(request))
    db.commit()
    request.app.state.wake_jobs()
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: int, auth: Auth = Depends(require(*ALL_ROLES)), db: DBSession = Depends(get_db)) -> Response:
    """A job's live progress, and its outcome (the validation report of a load; the run of a study)."""
    job = db.get(Job, job_id)
    if not visible_job(db, auth, job):
        raise HTTPException(404, "no such job")
    return render(request, "job.html", auth, title=f"Job #{job_id}", job=job)
