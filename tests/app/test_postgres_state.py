"""The clinic service with its app state in a real PostgreSQL server (the throwaway one of the test
session, from Debian's binaries): the Alembic migration runs there, the audit log is append-only by
PostgreSQL's own triggers, and a sign-in, an upload, a patient view, an acknowledgement and the sign-in
rate limit all work against it as they do on SQLite."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select, text

from ketaweight.app.config import AppConfig
from ketaweight.app.db import AuditEntry
from ketaweight.app.main import create_app
from ketaweight.app.users import create_clinic, create_user

from .conftest import PASSWORD, Service, south_folder, zip_folder

psycopg = pytest.importorskip("psycopg")


@pytest.fixture(scope="module")
def pg_service(postgres_url, tmp_path_factory) -> Service:
    """A service whose app database is a fresh PostgreSQL database ``kwapp`` (SQLAlchemy's psycopg 3 URL)."""
    with psycopg.connect(postgres_url, autocommit=True) as con:
        con.execute("DROP DATABASE IF EXISTS kwapp")
        con.execute("CREATE DATABASE kwapp")
    url = postgres_url.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0] + "/kwapp"
    root = tmp_path_factory.mktemp("pg-service")
    config = AppConfig(data_dir=root / "data", database_url=url, run_jobs=False)
    app = create_app(config)
    with app.state.factory() as db:
        clinic = create_clinic(db, "South clinic")
        create_user(db, "admin", PASSWORD, "admin", None)
        create_user(db, "south", PASSWORD, "clinician", clinic.id)
        db.commit()
        clinic_id = clinic.id
    svc = Service(config, app, [], ["S-LOSS", "S-OK", "S-NONE"])
    client, csrf = svc.login("admin")
    archive = zip_folder(south_folder(root / "south"), root / "south.zip")
    assert svc.upload(client, csrf, archive, clinic_id).status_code == 303
    svc.run_jobs()
    return svc


def test_the_migration_ran_in_postgresql_and_made_the_audit_log_append_only(pg_service):
    engine = pg_service.app.state.engine
    assert engine.dialect.name == "postgresql"
    with engine.connect() as con:
        assert con.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        triggers = set(con.execute(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")).scalars())
    assert "audit_append_only" in triggers
    with pg_service.app.state.factory() as db:
        assert db.scalar(select(func.count()).select_from(AuditEntry)) > 0  # sign-in and upload were audited
        for statement in ("UPDATE audit SET detail = 'changed'", "DELETE FROM audit"):
            with pytest.raises(Exception, match="append-only"):
                db.execute(text(statement))
            db.rollback()


def test_a_clinician_views_and_acknowledges_on_postgresql_and_both_are_audited(pg_service):
    client, csrf = pg_service.login("south")
    page = client.get("/patients/S-LOSS")
    assert page.status_code == 200 and "Rapid weight loss" in page.text
    alert = re.search(r'action="(/alerts/[^"]+/ack)"', page.text)
    assert alert, "the rapid-loss alert offers an acknowledgement"
    r = client.post(alert.group(1), data={"csrf_token": csrf, "comment": "seen in clinic"}, follow_redirects=False)
    assert r.status_code == 303
    with pg_service.app.state.factory() as db:
        entries = {(e.action, e.target.split()[0]) for e in db.scalars(select(AuditEntry).where(AuditEntry.username == "south"))}
    assert {("view patient", "S-LOSS"), ("acknowledge alert", "S-LOSS")} <= entries, entries


def test_the_sign_in_rate_limit_is_kept_in_postgresql(pg_service):
    client = pg_service.client()
    for i in range(5):
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
        assert client.post("/login", data={"username": "admin", "password": f"wrong{i}", "csrf_token": token}).status_code == 401
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
    r = client.post("/login", data={"username": "admin", "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
