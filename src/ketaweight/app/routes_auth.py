"""Sign-in, sign-out and the start page."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session as DBSession

from ketaweight.app.audit import audit
from ketaweight.app.cache import scope, state_cached
from ketaweight.app.db import Alert, Clinic, PatientClinic, Run, Session, User, open_alert
from ketaweight.app.deps import ALL_ROLES, Auth, client_of, clinic_filter, current_auth, get_db, render, require
from ketaweight.app.security import (LOGIN_CSRF_COOKIE, SESSION_COOKIE, new_token, record_attempt, same, start_session,
                                     token_hash, too_many_failures, verify_password)

router = APIRouter(include_in_schema=False)


def _login_page(request: Request, *, error: str = "", username: str = "", status_code: int = 200) -> Response:
    token = new_token()
    page = render(request, "login.html", None, status_code, title="Sign in", error=error, username=username,
                  login_csrf=token)
    page.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, secure=request.app.state.config.secure_cookies,
                    samesite="strict", path="/login")
    return page


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> Response:
    """The sign-in form (public)."""
    return _login_page(request)


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, username: str = Form("", max_length=80), password: str = Form("", max_length=1024),
          csrf_token: str = Form(""), db: DBSession = Depends(get_db)) -> Response:
    """Check the password; on success start a new session (the browser's old one, if any, is deleted)."""
    config = request.app.state.config
    if not same(csrf_token, request.cookies.get(LOGIN_CSRF_COOKIE)):
        return _login_page(request, error="The sign-in form expired; please try again.", username=username, status_code=403)
    client = client_of(request)
    wait = too_many_failures(db, username, client, config.login_max_failures, config.login_window_minutes)
    if wait:
        audit(db, None, "sign-in refused (rate limit)", username=username, target=username, client=client)
        db.commit()
        page = _login_page(request, error=f"Too many failed sign-ins. Try again in {max(1, round(wait / 60))} minute(s).",
                           username=username, status_code=429)
        page.headers["Retry-After"] = str(wait)
        return page
    user = db.scalar(select(User).where(User.username == username))
    ok = verify_password(user.password_hash if user else None, password) and user is not None and user.active
    record_attempt(db, username, client, ok)
    if not ok:
        audit(db, None, "sign-in failed", username=username, target=username, client=client)
        db.commit()
        return _login_page(request, error="User name or password is wrong.", username=username, status_code=401)
    token = start_session(db, user, config.session_hours, request.cookies.get(SESSION_COOKIE))
    audit(db, user, "sign-in", target=user.username, client=client)
    db.commit()
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(SESSION_COOKIE, token, httponly=True, secure=config.secure_cookies, samesite="lax",
                        max_age=int(config.session_hours * 3600), path="/")
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, auth: Auth = Depends(require(*ALL_ROLES)), db: DBSession = Depends(get_db)) -> Response:
    """End the session (the token is deleted from the database, the cookie cleared)."""
    token = request.cookies.get(SESSION_COOKIE)
    row = db.scalar(select(Session).where(Session.token_hash == token_hash(token or "")))
    if row is not None:
        db.delete(row)
    audit(db, auth.user, "sign-out", target=auth.user.username, client=client_of(request))
    db.commit()
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/", response_class=HTMLResponse)
def home(request: Request, auth: Auth | None = Depends(current_auth), db: DBSession = Depends(get_db)) -> Response:
    """The start page: open alerts (clinicians, admins) and the latest answer; signed-out visitors go to sign-in."""
    if auth is None:
        return RedirectResponse("/login", status_code=303)

    def counts() -> tuple[dict[str, Any] | None, int, int]:
        run = db.execute(select(Run.id, Run.sentence).order_by(Run.id.desc()).limit(1)).first()
        latest = {"id": run.id, "sentence": run.sentence} if run else None
        if auth.role not in ("admin", "clinician"):
            return latest, 0, 0
        in_scope = select(PatientClinic.patient_id).where(clinic_filter(auth))
        patients = db.scalar(select(func.count()).select_from(in_scope.subquery())) or 0
        open_alerts = db.scalar(select(func.count()).select_from(Alert).where(open_alert(), Alert.patient_id.in_(in_scope)))
        return latest, patients, open_alerts or 0

    latest, patients, open_alerts = state_cached(request.app.state.cache, db, ("home", *scope(auth)), counts)
    clinic = db.get(Clinic, auth.user.clinic_id).name if auth.user.clinic_id is not None else None
    return render(request, "home.html", auth, title="Start", latest=latest, open_alerts=open_alerts, patients=patients,
                  clinic=clinic)
