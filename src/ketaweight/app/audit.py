"""The append-only audit log: every view of patient-level data and every change.

Entries are only ever inserted (the database refuses UPDATE and DELETE on the table, see the first
migration).  Details never hold a password or a cookie."""

from __future__ import annotations

from sqlalchemy.orm import Session as DBSession

from ketaweight.app.db import AuditEntry, User


def audit(db: DBSession, user: User | None, action: str, target: str = "", detail: str = "", client: str = "",
          *, username: str | None = None) -> None:
    """Add one entry (committed with the caller's transaction)."""
    db.add(AuditEntry(user_id=user.id if user else None, username=(user.username if user else username or "-")[:80],
                      action=action[:60], target=target[:200], detail=detail, client=client[:64]))
