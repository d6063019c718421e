"""Pages for admins: accounts, clinics and the audit log."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session as DBSession

from ketaweight.app.audit import audit
from ketaweight.app.db import AuditEntry, Clinic, User
from ketaweight.app.deps import Auth, client_of, get_db, render, require
from ketaweight.app.users import create_clinic, create_user

router = APIRouter(include_in_schema=False)


def _page(request: Request, auth: Auth, db: DBSession, *, flash: str = "", error: str = "", status_code: int = 200) -> Response:
    users = db.execute(select(User, Clinic.name).outerjoin(Clinic, Clinic.id == User.clinic_id).order_by(User.username)).all()
    return render(request, "admin_users.html", auth, status_code, title="Accounts", users=users, flash=flash, error=error,
                  clinics=list(db.scalars(select(Clinic).order_by(Clinic.name))))


@router.get("/admin/users", response_class=HTMLResponse)
def users_page(request: Request, flash: str = "", auth: Auth = Depends(require("admin")), db: DBSession = Depends(get_db)) -> Response:
    """Accounts and clinics."""
    return _page(request, auth, db, flash={"user": "Account added.", "clinic": "Clinic added."}.get(flash, ""))


@router.post("/admin/users")
def add_user(request: Request, username: str = Form("", max_length=80), password: str = Form("", max_length=1024),
             role: str = Form("clinician", max_length=20), clinic_id: str = Form("", max_length=12),
             auth: Auth = Depends(require("admin")), db: DBSession = Depends(get_db)) -> Response:
    """Add an account (the password is hashed at once and never stored or logged)."""
    try:
        user = create_user(db, username.strip(), password, role, int(clinic_id) if clinic_id.isdigit() else None)
    except ValueError as exc:
        db.rollback()
        return _page(request, auth, db, error=str(exc), status_code=422)
    audit(db, auth.user, "add account", target=user.username, detail=f"role {user.role}", client=client_of(request))
    db.commit()
    return RedirectResponse("/admin/users?flash=user", status_code=303)


@router.post("/admin/clinics")
def add_clinic(request: Request, name: str = Form("", max_length=120), auth: Auth = Depends(require("admin")),
               db: DBSession = Depends(get_db)) -> Response:
    """Add a clinic."""
    try:
        clinic = create_clinic(db, name)
    except ValueError as exc:
        db.rollback()
        return _page(request, auth, db, error=str(exc), status_code=422)
    audit(db, auth.user, "add clinic", target=clinic.name, client=client_of(request))
    db.commit()
    return RedirectResponse("/admin/users?flash=clinic", status_code=303)


@router.get("/admin/audit", response_class=HTMLResponse)
def audit_page(request: Request, auth: Auth = Depends(require("admin")), db: DBSession = Depends(get_db)) -> Response:
    """The latest 500 audit entries."""
    entries = db.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(500)).all()
    return render(request, "audit.html", auth, title="Audit log", entries=entries)
