"""Pages: the runs, the answer page (the report's sections with comments, related files and what changed),
the whole report, a run's results files, and two runs side by side.  Aggregates only: every role."""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session as DBSession

from ketaweight.app.answer import report_sections
from ketaweight.app.cache import state_cached
from ketaweight.app.db import Run
from ketaweight.app.deps import ALL_ROLES, Auth, client_of, get_db, render, require
from ketaweight.app.runs import add_comment, answer_material, compare_runs, run_folder

router = APIRouter(include_in_schema=False)
RESULT_NAME = re.compile(r"^[A-Za-z0-9_.-]+\.json$")


def _run(db: DBSession, run_id: int) -> Run:
    run = db.get(Run, run_id)
    if run is None:
        raise HTTPException(404, "no such run")
    return run


@router.get("/runs", response_class=HTMLResponse)
def runs_page(request: Request, auth: Auth = Depends(require(*ALL_ROLES)), db: DBSession = Depends(get_db)) -> Response:
    """Every run, newest first, and the form to compare two."""
    runs = db.scalars(select(Run).order_by(Run.id.desc()).limit(200)).all()
    return render(request, "runs.html", auth, title="Answers", runs=runs)


@router.get("/runs/compare", response_class=HTMLResponse)
def compare_page(request: Request, a: int = Query(..., ge=1), b: int = Query(..., ge=1),
                 auth: Auth = Depends(require(*ALL_ROLES)), db: DBSession = Depends(get_db)) -> Response:
    """Two runs side by side: their answers and every report cell that differs."""
    ra, rb = _run(db, a), _run(db, b)
    return render(request, "compare.html", auth, title=f"Runs #{a} and #{b}", a=ra, b=rb,
                  **compare_runs(request.app.state.config, ra, rb))


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def answer_page(request: Request, run_id: int, auth: Auth = Depends(require(*ALL_ROLES)),
                db: DBSession = Depends(get_db)) -> Response:
    """The answer in the article's structure, with "Add Comment" per section, related files and "latest"."""
    run = _run(db, run_id)
    material = state_cached(request.app.state.cache, db, ("answer", run_id),
                            lambda: answer_material(db, request.app.state.config, run))
    return render(request, "run.html", auth, title=f"Run #{run_id}", run=run, **material)


@router.post("/runs/{run_id}/comments")
def comment(request: Request, run_id: int, section_id: str = Form("", max_length=80), body: str = Form("", max_length=5000),
            auth: Auth = Depends(require(*ALL_ROLES)), db: DBSession = Depends(get_db)) -> Response:
    """Add a comment to one section of the answer page."""
    run = _run(db, run_id)
    sections, _ = report_sections(run_folder(request.app.state.config, run) / "report.html")
    try:
        add_comment(db, auth, run, sections, section_id, body, client_of(request))
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    return RedirectResponse(f"/runs/{run_id}#cm-{section_id}", status_code=303)


@router.get("/runs/{run_id}/report", response_class=HTMLResponse)
def report_page(request: Request, run_id: int, auth: Auth = Depends(require(*ALL_ROLES)),
                db: DBSession = Depends(get_db)) -> Response:
    """The report as written by ketaweight report (one self-contained page)."""
    return FileResponse(run_folder(request.app.state.config, _run(db, run_id)) / "report.html", media_type="text/html")


@router.get("/runs/{run_id}/results/{name}")
def results_file(request: Request, run_id: int, name: str, auth: Auth = Depends(require(*ALL_ROLES)),
                 db: DBSession = Depends(get_db)) -> Response:
    """One results file of the run (JSON; counts under 11 masked by the pipelines that wrote it)."""
    path = run_folder(request.app.state.config, _run(db, run_id)) / "results" / name
    if not RESULT_NAME.match(name) or not path.is_file():
        raise HTTPException(404, "no such results file")
    return FileResponse(path, media_type="application/json")

