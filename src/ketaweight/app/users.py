"""Accounts and clinics (used by the admin pages and by ``ketaweight create-admin``)."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session as DBSession

from ketaweight.app.db import ROLES, Clinic, User
from ketaweight.app.security import hash_password

USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{2,80}$")


def create_user(db: DBSession, username: str, password: str, role: str, clinic_id: int | None = None) -> User:
    """Add an account (not committed); ValueError with the reason when something is wrong."""
    if not USERNAME.match(username):
        raise ValueError("a user name has 2 to 80 letters, digits or . _ @ -")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if role == "clinician" and clinic_id is None:
        raise ValueError("a clinician belongs to a clinic: choose one (add it first if needed)")
    if clinic_id is not None and db.get(Clinic, clinic_id) is None:
        raise ValueError("no such clinic")
    if db.scalar(select(User).where(User.username == username)) is not None:
        raise ValueError(f"the user name {username!r} is taken")
    user = User(username=username, password_hash=hash_password(password), role=role,
                clinic_id=clinic_id if role == "clinician" else None, active=True)
    db.add(user)
    db.flush()
    return user


def create_clinic(db: DBSession, name: str) -> Clinic:
    name = name.strip()
    if not 1 <= len(name) <= 120:
        raise ValueError("a clinic name has 1 to 120 characters")
    if db.scalar(select(Clinic).where(Clinic.name == name)) is not None:
        raise ValueError(f"a clinic named {name!r} exists")
    clinic = Clinic(name=name)
    db.add(clinic)
    db.flush()
    return clinic
