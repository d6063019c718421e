"""Security of the clinic service: roles on every route, researchers never reach patient-level data (every
route tried, ids guessed), clinics see only their own patients, CSRF and session fixation fail, the
sign-in rate limit holds, passwords never reach a log, and bad uploads are refused with nothing written."""

from __future__ import annotations

import io
import logging
import re
import zipfile

import numpy as np
import pytest
from fastapi.routing import APIRoute
from sqlalchemy import select, text

from ketaweight.app.db import Alert, AuditEntry, Job
from ketaweight.store import Store

from .conftest import PASSWORD

PUBLIC = {("GET", "/login"), ("POST", "/login"), ("GET", "/"), ("GET", "/api/health")}
PATIENT_LEVEL_PREFIXES = ("/patients", "/alerts", "/api/patients", "/api/alerts", "/upload")


def _routes(app):
    for route in app.routes:
        if isinstance(route, APIRoute):
            for method in route.methods - {"HEAD"}:
                yield method, route


def test_every_route_declares_who_may_use_it(service):
    undeclared = []
    for method, route in _routes(service.app):
        roles = [getattr(d.call, "roles", None) for d in route.dependant.dependencies]
        roles = [r for r in roles if r]
        if (method, route.path) not in PUBLIC and not roles:
            undeclared.append(f"{method} {route.path}")
        if route.path.startswith(PATIENT_LEVEL_PREFIXES) and roles:
            assert "researcher" not in roles[0], f"{method} {route.path} lets researchers in"
    assert not undeclared, undeclared


def _fill(path: str, guess: str) -> str:
    return re.sub(r"\{[^}]+\}", guess, path)


def _alert_ids(service) -> list[str]:
    with service.app.state.factory() as db:
        return list(db.scalars(select(Alert.alert_id).limit(5)))


def test_a_researcher_reaches_no_patient_level_route_whatever_the_id(service):
    client, csrf = service.login("res")
    guesses = [*service.north_ids[:3], *service.south_ids, *_alert_ids(service), "1", "SIM0000001", "../etc/passwd"]
    identifiers = set(service.north_ids) | set(service.south_ids)
    for method, route in _routes(service.app):
        for guess in guesses if "{" in route.path else [""]:
            url = _fill(route.path, guess)
            r = client.request(method, url, headers={"X-CSRF-Token": csrf}, data={"csrf_token": csrf, "comment": "x"},
                               follow_redirects=False)
            if route.path.startswith(PATIENT_LEVEL_PREFIXES):
                assert r.status_code in (403, 404), f"{method} {url}: {r.status_code}"
            assert r.status_code < 500, f"{method} {url}: {r.status_code}"
            found = {i for i in identifiers if i in r.text}
            assert not found, f"{method} {url} shows patient identifiers {sorted(found)[:3]}"


def test_a_researchers_pages_show_aggregates_with_small_counts_masked(service):
    client, _ = service.login("res")
    for url in ("/", "/monitoring", "/runs", "/runs/1", "/jobs", "/api/monitoring/summary", "/api/runs", "/api/jobs"):
        r = client.get(url)
        assert r.status_code == 200, url
        assert "SIM0" not in r.text and "S-LOSS" not in r.text
    summary = client.get("/api/monitoring/summary").json()
    assert all(row["alerts"] == "<11" or row["alerts"] == 0 or row["alerts"] >= 11 for row in summary)
    assert any(row["alerts"] == "<11" for row in summary)  # the South clinic's single rapid-loss alert, masked
    assert "Patients" not in client.get("/").text.split("<main", 1)[1].split("</nav>")[0]
    jobs = client.get("/api/jobs").json()
    assert jobs and all(j["kind"] == "study" for j in jobs)  # load jobs (with validation messages) stay hidden


def test_a_clinician_sees_only_their_own_clinics_patients(service):
    north, _ = service.login("north")
    page = north.get("/patients").text
    assert service.north_ids[0] in page and "S-LOSS" not in page
    assert north.get("/patients/S-LOSS").status_code == 404
    assert north.get("/api/patients/S-LOSS").status_code == 404
    assert north.get(f"/api/patients/{service.north_ids[0]}").status_code == 200
    assert all(not p["patient_id"].startswith("S-") for p in north.get("/api/patients").json())
    south, csrf = service.login("south")
    with service.app.state.factory() as db:
        south_alert = db.scalars(select(Alert).where(Alert.patient_id == "S-LOSS")).first()
    assert south_alert is not None and south_alert.rule == "rapid_weight_loss_30d"
    _, north_csrf = service.login("north", north)
    r = north.post(f"/api/alerts/{south_alert.alert_id}/ack", json={"comment": "not mine"}, headers={"X-CSRF-Token": north_csrf})
    assert r.status_code == 404
    south_page = south.get("/patients/S-LOSS")
    assert south_page.status_code == 200 and "Rapid weight loss" in south_page.text
    assert service.north_ids[0] not in south.get("/patients").text


def test_patient_views_and_changes_are_audited_and_the_log_is_append_only(service):
    client, _ = service.login("north")
    pid = service.north_ids[1]
    client.get(f"/patients/{pid}")
    with service.app.state.factory() as db:
        entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "view patient", AuditEntry.target == pid)).first()
        assert entry is not None and entry.username == "north"
        with pytest.raises(Exception, match="append-only"):
            db.execute(text("UPDATE audit SET detail = 'changed'"))
        db.rollback()
        with pytest.raises(Exception, match="append-only"):
            db.execute(text("DELETE FROM audit"))
        db.rollback()


def test_forms_and_api_calls_without_the_csrf_token_are_refused(service):
    client, csrf = service.login("admin")
    before = _job_count(service)
    assert client.post("/jobs/study", data={"title": "x"}, follow_redirects=False).status_code == 403
    assert client.post("/jobs/study", data={"title": "x", "csrf_token": "forged"}, follow_redirects=False).status_code == 403
    assert client.post("/api/jobs", json={"kind": "study"}).status_code == 403
    assert client.post("/api/jobs", json={"kind": "study"}, headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert _job_count(service) == before
    other, other_csrf = service.login("res")
    assert client.post("/api/jobs", json={"kind": "study"}, headers={"X-CSRF-Token": other_csrf}).status_code == 403
    fresh = service.client()
    r = fresh.post("/login", data={"username": "admin", "password": PASSWORD, "csrf_token": "guess"}, follow_redirects=False)
    assert r.status_code == 403 and "kw_session" not in r.cookies


def _job_count(service) -> int:
    with service.app.state.factory() as db:
        return db.query(Job).count()


def test_session_fixation_fails_and_sign_out_ends_the_session(service):
    client = service.client()
    client.cookies.set("kw_session", "attacker-chosen-token", domain="testserver.local")
    client, _ = service.login("north", client)
    token = client.cookies.get("kw_session", domain="testserver.local")
    assert token and token != "attacker-chosen-token"
    attacker = service.client()
    attacker.cookies.set("kw_session", "attacker-chosen-token")
    assert attacker.get("/api/me").status_code == 401
    first, csrf = service.login("north")
    old = first.cookies.get("kw_session")
    service.login("north", first)  # signing in again replaces the session
    stale = service.client()
    stale.cookies.set("kw_session", old)
    assert stale.get("/api/me").status_code == 401
    current = first.cookies.get("kw_session")
    csrf = first.get("/api/me").json()["csrf_token"]
    assert first.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    reuse = service.client()
    reuse.cookies.set("kw_session", current)
    assert reuse.get("/api/me").status_code == 401


def test_session_cookie_is_http_only_secure_and_same_site(service):
    client = service.client()
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = client.post("/login", data={"username": "res", "password": PASSWORD, "csrf_token": token}, follow_redirects=False)
    cookie = next(v for k, v in r.headers.multi_items() if k == "set-cookie" and v.startswith("kw_session="))
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=lax" in cookie
    assert "default-src 'self'" in r.headers["content-security-policy"] and r.headers["x-frame-options"] == "DENY"


def test_sign_in_is_rate_limited_per_user_name(service):
    client = service.client()
    for i in range(5):
        page = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        r = client.post("/login", data={"username": "south", "password": f"wrong{i}", "csrf_token": token})
        assert r.status_code == 401 and "wrong" in r.text.lower()
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = client.post("/login", data={"username": "south", "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0 and "Too many failed sign-ins" in r.text
    # other accounts from the same client are not locked out by one account's failures
    service.login("north", client)


def test_passwords_never_reach_a_log_or_the_database(service, caplog):
    caplog.set_level(logging.DEBUG)
    client, csrf = service.login("admin")
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    service.client().post("/login", data={"username": "admin", "password": "a-wrong-password-0042", "csrf_token": token})
    client.post("/admin/users", data={"csrf_token": csrf, "username": "newdoc", "password": "a-new-password-0042",
                                      "role": "researcher", "clinic_id": ""}, follow_redirects=False)
    logged = caplog.text
    for secret in (PASSWORD, "a-wrong-password-0042", "a-new-password-0042"):
        assert secret not in logged
    with service.app.state.factory() as db:
        dump = " ".join(str(v) for row in db.execute(text("SELECT * FROM audit")).all() for v in row)
        dump += " ".join(str(v) for row in db.execute(text("SELECT * FROM users")).all() for v in row)
    for secret in (PASSWORD, "a-wrong-password-0042", "a-new-password-0042"):
        assert secret not in dump
    assert "$argon2id$" in dump


def _zip(members: dict[str, bytes], *, compress: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compress) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _post_upload(service, client, csrf, data: bytes, name: str = "upload.zip", clinic: str = "1"):
    return client.post("/upload", data={"csrf_token": csrf, "format": "canonical", "clinic_id": clinic},
                       files={"archive": (name, data, "application/zip")}, follow_redirects=False)


def _state(service):
    with Store(service.config.store_path, read_only=True) as st:
        counts = st.counts()
    leftovers = sorted(p.name for p in service.config.uploads_dir.iterdir()) if service.config.uploads_dir.exists() else []
    return counts, leftovers, _job_count(service)


GOOD_PATIENTS = b"patient_id,sex,birth_year,height_cm\nNEW1,F,1980,160\n"


@pytest.mark.parametrize("members, message", [
    ({"../patients.csv": GOOD_PATIENTS}, "points outside the folder"),
    ({"clinic/../../patients.csv": GOOD_PATIENTS}, "points outside the folder"),
    ({"/etc/patients.csv": GOOD_PATIENTS}, "absolute or Windows path"),
    ({"C:\\clinic\\patients.csv": GOOD_PATIENTS}, "absolute or Windows path"),
    ({"patients.csv": GOOD_PATIENTS, "run.sh": b"rm -rf /"}, "is not a file this format takes"),
    ({"measurements.csv": b"patient_id,time,kind,value,unit\n" + b"0" * (20 * 1024**2)}, "zip bomb"),
    ({"readme.txt": b"hello"}, "is not a file this format takes"),
])
def test_bad_archives_are_refused_with_a_clear_message_and_nothing_written(service, members, message):
    client, csrf = service.login("admin")
    before = _state(service)
    r = _post_upload(service, client, csrf, _zip(members))
    assert r.status_code == 422 and message in r.text
    assert _state(service) == before


def test_an_archive_that_unpacks_past_the_limit_is_refused(service):
    client, csrf = service.login("admin")
    before = _state(service)
    rng = np.random.default_rng(0)
    # four symbols: about 4x compression, well under the bomb ratio; 64 MiB unpacked against a 60 MiB limit
    parts = {f"{name}.csv": rng.choice(np.frombuffer(b"0123", dtype=np.uint8), size=16 * 1024**2).tobytes()
             for name in ("patients", "exposures", "measurements", "lifestyle")}
    r = _post_upload(service, client, csrf, _zip(parts))
    assert r.status_code == 422 and "the archive unpacks to more than 60 MiB" in r.text
    assert _state(service) == before


def test_an_upload_over_the_size_limit_is_refused_before_it_is_read(service):
    client, csrf = service.login("admin")
    before = _state(service)
    r = client.post("/upload", content=b"x" * 100, headers={"Content-Length": str(31 * 1024**2),
                                                            "Content-Type": "multipart/form-data; boundary=x"})
    assert r.status_code == 413 and "larger than the limit of 30 MiB" in r.text
    assert _state(service) == before


def test_not_a_zip_and_a_wrong_clinic_are_refused(service):
    client, csrf = service.login("north")
    before = _state(service)
    r = _post_upload(service, client, csrf, b"patient_id,sex\n", name="patients.csv")
    assert r.status_code == 422 and "not a zip archive" in r.text
    r = _post_upload(service, client, csrf, _zip({"patients.csv": GOOD_PATIENTS}), clinic="2")  # South: not theirs
    assert r.status_code == 422 and "choose one of your clinics" in r.text
    assert _state(service) == before


def test_a_file_with_bad_rows_gives_a_validation_report_and_loads_nothing(service):
    client, csrf = service.login("admin")
    counts_before = _state(service)[0]
    bad = b"patient_id,sex,birth_year,height_cm\nBAD1,X,1980,160\nBAD2,F,1980,900\n"
    r = _post_upload(service, client, csrf, _zip({"patients.csv": bad}))
    assert r.status_code == 303
    service.run_jobs()
    page = client.get(r.headers["location"]).text
    assert "Nothing was loaded" in page and "patients.csv, line 2, column &#39;sex&#39;" in page
    assert "line 3, column &#39;height_cm&#39;" in page
    assert _state(service)[0] == counts_before and not _state(service)[1]
