"""Passwords, session tokens, CSRF tokens and the login rate limit.

* Passwords: Argon2id (argon2-cffi's defaults, RFC 9106 low-memory profile); never logged, never stored.
* Sessions: a 256-bit random token in an HTTP-only, SameSite=Lax (and Secure) cookie; the database keeps
  only its SHA-256, so a copy of the database does not sign anyone in.  A new token is issued at every
  sign-in (no session fixation) and the old one is deleted.
* CSRF: a per-session synchronizer token in every form (``csrf_token``) or the ``X-CSRF-Token`` header,
  compared in constant time; before sign-in a double-submit cookie protects the login form.
* Rate limit: at most N failed sign-ins per user name and per client address in a sliding window.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select
from sqlalchemy.orm import Session as DBSession

from ketaweight.app.db import LoginAttempt, Session, User, utcnow

SESSION_COOKIE = "kw_session"
LOGIN_CSRF_COOKIE = "kw_login_csrf"
_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))
MIN_PASSWORD_LENGTH = 12


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; a missing user costs the same time as a wrong password."""
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same(a: str | None, b: str | None) -> bool:
    """Constant-time comparison of two tokens (False if either is missing)."""
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))


def start_session(db: DBSession, user: User, hours: float, old_token: str | None) -> str:
    """Create a session for ``user`` and return its cookie token; any session the browser had is deleted."""
    if old_token:
        old = db.scalar(select(Session).where(Session.token_hash == token_hash(old_token)))
        if old is not None:
            db.delete(old)
    token = new_token()
    db.add(Session(token_hash=token_hash(token), user_id=user.id, csrf_token=new_token(),
                   expires_at=utcnow() + dt.timedelta(hours=hours)))
    return token


def session_for(db: DBSession, token: str | None) -> tuple[Session, User] | None:
    """The live session and its active user for a cookie token, or None."""
    if not token:
        return None
    row = db.execute(select(Session, User).join(User, User.id == Session.user_id)
                     .where(Session.token_hash == token_hash(token))).first()
    if row is None:
        return None
    session, user = row
    if session.expires_at <= utcnow() or not user.active:
        return None
    return session, user


def too_many_failures(db: DBSession, username: str, client: str, limit: int, window_minutes: float) -> int:
    """Seconds to wait before the next sign-in attempt (0 = allowed).

    Counted per user name (guessing one account's password) and per client (trying many accounts, with a
    limit four times as high); attempts are kept in the database so the limit holds across restarts."""
    since = utcnow() - dt.timedelta(minutes=window_minutes)
    for column, value, cap in ((LoginAttempt.username, username.lower(), limit), (LoginAttempt.client, client, 4 * limit)):
        q = select(func.count(), func.min(LoginAttempt.at)).where(
            column == value, LoginAttempt.at > since, LoginAttempt.success.is_(False))
        n, first = db.execute(q).one()
        if n >= cap and first is not None:
            return max(1, int((first + dt.timedelta(minutes=window_minutes) - utcnow()).total_seconds()))
    return 0


def record_attempt(db: DBSession, username: str, client: str, success: bool) -> None:
    db.add(LoginAttempt(username=username.lower()[:80], client=client[:64], success=success))
