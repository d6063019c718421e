"""The clinic service's own state: users, sessions, clinics and patient assignment, alerts and their
acknowledgements, comments, jobs, runs and the append-only audit log.

SQLAlchemy 2 models; the schema is created and upgraded only by the Alembic migrations in
``app/migrations`` (:func:`migrate`).  SQLite by default (a file in the data folder, WAL mode so
the job process and the web process can write side by side); PostgreSQL by URL
(``postgresql+psycopg://…``, with the ``postgres`` extra).

The canonical store has no clinic column, and this service does not add one: which clinic a
patient belongs to is app state (:class:`PatientClinic`, set when a clinic's data are uploaded).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, create_engine, event, select,
                        text, update)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

ROLES = ("admin", "clinician", "researcher")


def utcnow() -> dt.datetime:
    """Now, UTC, without tzinfo (stored naive-UTC on every backend)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Clinic(Base):
    __tablename__ = "clinics"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20))
    clinic_id: Mapped[int | None] = mapped_column(ForeignKey("clinics.id"), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Session(Base):
    """A signed-in browser: the cookie holds a random token, the database only its SHA-256."""

    __tablename__ = "sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime)


class LoginAttempt(Base):
    __tablename__ = "login_attempts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(80), index=True)
    client: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    success: Mapped[bool] = mapped_column(Boolean)


class PatientClinic(Base):
    __tablename__ = "patient_clinics"
    patient_id: Mapped[str] = mapped_column(String(120), primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    assigned_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Alert(Base):
    """An alert from the latest monitoring run (``active``) or an earlier one (kept for its acknowledgements)."""

    __tablename__ = "alerts"
    alert_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(120), index=True)
    rule: Mapped[str] = mapped_column(String(60))
    title: Mapped[str] = mapped_column(String(200))
    threshold: Mapped[str] = mapped_column(Text)
    message: Mapped[str] = mapped_column(Text)
    first_time: Mapped[str] = mapped_column(String(19))
    last_time: Mapped[str] = mapped_column(String(19))
    evidence: Mapped[Any] = mapped_column(JSON)
    n_triggers: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Acknowledgement(Base):
    __tablename__ = "acknowledgements"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.alert_id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    comment: Mapped[str] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    params: Mapped[Any] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(12), default="queued", index=True)  # queued running done failed
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # 0..1
    stage: Mapped[str] = mapped_column(String(200), default="waiting for the job runner")
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    clinic_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    result: Mapped[Any] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    run_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Run(Base):
    """One results folder with its report (``runs/<id>/``)."""

    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    job_id: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    sentence: Mapped[str | None] = mapped_column(Text, nullable=True)
    grade: Mapped[str | None] = mapped_column(String(20), nullable=True)
    contents: Mapped[Any] = mapped_column(JSON)  # what the run holds: ["weight", "depression", "mechanisms", ...]


class Comment(Base):
    __tablename__ = "comments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    section_id: Mapped[str] = mapped_column(String(80))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class StateVersion(Base):
    """One row counting the changes that the pages' cached aggregates depend on (alerts, acknowledgements,
    patient assignments, runs, comments): every such change adds one in its own transaction, and each server
    process keys its caches by the count (:mod:`ketaweight.app.cache`), so all processes see a change at once."""

    __tablename__ = "state_version"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(Integer, default=0)


class AuditEntry(Base):
    """Append-only: the migration installs triggers that refuse UPDATE and DELETE on this table."""

    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    username: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(60))
    target: Mapped[str] = mapped_column(String(200))
    detail: Mapped[str] = mapped_column(Text, default="")
    client: Mapped[str] = mapped_column(String(64), default="")


def make_engine(url: str) -> Engine:
    """An engine for the app database; SQLite gets WAL, a busy timeout and foreign keys."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")  # WAL: no fsync per commit, still never corrupt (SQLite docs)
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{(folder / 'app.db').resolve()}"


def migrate(url: str) -> None:
    """Create or upgrade the app database to the newest schema (Alembic ``upgrade head``)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(cfg, "head")


def session_factory(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)


def ping(engine: Engine) -> None:
    with engine.connect() as con:
        con.execute(text("SELECT 1"))


def bump_state(db: Any) -> None:
    """Count one change of cached app state (committed with the caller's transaction)."""
    db.execute(update(StateVersion).where(StateVersion.id == 1).values(n=StateVersion.n + 1))


def state_version(db: Any) -> int:
    """The current count of app-state changes (see :class:`StateVersion`)."""
    return db.execute(select(StateVersion.n).where(StateVersion.id == 1)).scalar_one()


def open_alert() -> Any:
    """SQL condition: an alert of the latest monitoring run that nobody has acknowledged yet."""
    acked = select(Acknowledgement.id).where(Acknowledgement.alert_id == Alert.alert_id).exists()
    return Alert.active.is_(True) & ~acked
