"""What every route shares: the app database session, the signed-in user, role checks, CSRF checks,
the patient-visibility rule and page rendering.

Roles (checked on every route by :func:`require`; a test walks every route):

* ``admin`` — accounts, clinics, uploads, every patient of every clinic (each view audited);
* ``clinician`` — patient-level views and acknowledgements for the patients of their own clinic only,
  uploads for their clinic, studies, comments;
* ``researcher`` — aggregates only: runs, answer pages, comparisons, monitoring counts (under 11
  masked); never a patient-level page or API, never an identifier.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup
from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import Session as DBSession

from ketaweight.app.db import Clinic, PatientClinic, Session, User
from ketaweight.app.security import SESSION_COOKIE, same, session_for
from ketaweight.core.privacy import mask_count

PATIENT_LEVEL = ("admin", "clinician")
ALL_ROLES = ("admin", "clinician", "researcher")

TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
    autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined,
    auto_reload=False)  # compiled once per process and reused: the templates ship with the package
TEMPLATES.filters["masked"] = lambda n: n if isinstance(n, str) else mask_count(n)  # already masked: as is


class NotSignedIn(Exception):
    """No valid session: pages redirect to the sign-in page, the API answers 401."""


@dataclass(frozen=True)
class Auth:
    user: User
    session: Session

    @property
    def role(self) -> str:
        return self.user.role


def get_db(request: Request) -> Iterator[DBSession]:
    with request.app.state.factory() as db:
        yield db


def client_of(request: Request) -> str:
    return request.client.host if request.client else "-"


def current_auth(request: Request, db: DBSession = Depends(get_db)) -> Auth | None:
    found = session_for(db, request.cookies.get(SESSION_COOKIE))
    return Auth(found[1], found[0]) if found else None


def require(*roles: str) -> Callable[..., Auth]:
    """A dependency that lets only signed-in users with one of ``roles`` through (403 otherwise).

    For unsafe methods it also checks the CSRF token (form field ``csrf_token`` or header ``X-CSRF-Token``)."""

    async def dependency(request: Request, auth: Auth | None = Depends(current_auth)) -> Auth:
        if auth is None:
            raise NotSignedIn()
        if auth.role not in roles:
            raise HTTPException(403, "your role may not open this page")
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            token = request.headers.get("x-csrf-token")
            if token is None and request.headers.get("content-type", "").startswith(
                    ("application/x-www-form-urlencoded", "multipart/form-data")):
                token = (await request.form()).get("csrf_token")
            if not same(str(token) if token is not None else None, auth.session.csrf_token):
                raise HTTPException(403, "the form's security token is missing or out of date; reload the page and try again")
        return auth

    dependency.roles = roles  # type: ignore[attr-defined]  # read by the test that walks every route
    return dependency


def visible_clinic(db: DBSession, auth: Auth, patient_id: str) -> str | None:
    """The name of the patient's clinic if this user may see the patient, else None (one query).

    Admins: any uploaded patient; clinicians: their clinic's; researchers: none."""
    if auth.role not in PATIENT_LEVEL:
        return None
    row = db.execute(select(PatientClinic.clinic_id, Clinic.name).join(Clinic, Clinic.id == PatientClinic.clinic_id)
                     .where(PatientClinic.patient_id == patient_id)).first()
    if row is None:
        return None
    if auth.role == "admin" or (auth.user.clinic_id is not None and row.clinic_id == auth.user.clinic_id):
        return row.name
    return None


def visible_patient(db: DBSession, auth: Auth, patient_id: str) -> bool:
    """May this user see this patient?  (See :func:`visible_clinic`.)"""
    return visible_clinic(db, auth, patient_id) is not None


def clinic_filter(auth: Auth) -> Any:
    """SQL condition on PatientClinic for the patients this user may see."""
    if auth.role == "admin":
        return PatientClinic.clinic_id.is_not(None)
    return PatientClinic.clinic_id == (auth.user.clinic_id if auth.user.clinic_id is not None else -1)


def visible_patient_ids(db: DBSession, auth: Auth) -> list[str]:
    return list(db.scalars(select(PatientClinic.patient_id).where(clinic_filter(auth)).order_by(PatientClinic.patient_id)))


def fragment(name: str, **context: Any) -> Markup:
    """A piece of a page from ``templates/`` (no user, no token: safe to cache and share, see app.cache)."""
    return Markup(TEMPLATES.get_template(name).render(**context))


def render(request: Request, name: str, auth: Auth | None, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page from ``templates/`` with the user, their CSRF token and the navigation for their role."""
    html = TEMPLATES.get_template(name).render(
        request=request, auth=auth, user=auth.user if auth else None, role=auth.role if auth else None,
        csrf=auth.session.csrf_token if auth else context.pop("login_csrf", ""), path=request.url.path,
        patient_level=bool(auth and auth.role in PATIENT_LEVEL), **context)
    return HTMLResponse(html, status_code=status_code)
