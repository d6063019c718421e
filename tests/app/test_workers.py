"""``ketaweight serve --workers 2`` as a clinic runs it: one sign-in valid on both server processes, uploads
and jobs visible from either, jobs run one at a time by one runner, a load not blocked by the store kept open
in both processes, a change (an acknowledgement, a load) seen at once by both processes' caches — and
Ctrl-C during a running job ends every process (no orphans) with the job marked interrupted."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from ketaweight.pipelines.simulation import run_simulation

from .conftest import PASSWORD, south_folder, zip_folder

KETAWEIGHT = str(Path(sys.executable).with_name("ketaweight"))
ACCESS = re.compile(r'\[(\d+)\] [\d.:]+ - "(GET|POST) (\S+) HTTP/1.1" (\d+)')


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc)."""
    out: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            out.update(kids)
            todo.extend(kids)
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    """A signed-in user whose every request opens a new connection (so requests spread over the processes)."""

    def __init__(self, base: str) -> None:
        self.base = base
        with httpx.Client(base_url=base) as c:
            token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text).group(1)
            r = c.post("/login", data={"username": "admin", "password": PASSWORD, "csrf_token": token})
            assert r.status_code == 303, r.text[:300]
            self.cookies = dict(c.cookies)
            self.csrf = c.get("/api/me").json()["csrf_token"]

    def get(self, path: str, **kw) -> httpx.Response:
        with httpx.Client(base_url=self.base, cookies=self.cookies, timeout=60) as c:
            return c.get(path, **kw)

    def post(self, path: str, **kw) -> httpx.Response:
        with httpx.Client(base_url=self.base, cookies=self.cookies, timeout=60) as c:
            return c.post(path, **kw)

    def wait_job(self, job_id: int, timeout_s: float = 240) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            job = self.get(f"/api/jobs/{job_id}").json()
            if job["status"] in ("done", "failed"):
                return job
            time.sleep(0.3)
        raise AssertionError(f"job {job_id} did not finish in {timeout_s:.0f} s")

    def upload(self, archive: Path) -> int:
        with open(archive, "rb") as fh:
            r = self.post("/upload", data={"csrf_token": self.csrf, "format": "canonical", "clinic_id": "1"},
                          files={"archive": (archive.name, fh, "application/zip")})
        assert r.status_code == 303, r.text[:500]
        return int(r.headers["location"].rsplit("/", 1)[1])


def open_alerts_of_s_loss(browser: Browser) -> int:
    """S-LOSS's open alerts in the patient list (a page each process caches per app-state version)."""
    page = browser.get("/patients").text
    found = re.search(r'/patients/S-LOSS">S-LOSS</a></td><td>[^<]*</td>\s*<td class="num"><span class="badge(?: ok)?">(\d+)<',
                      page)
    assert found, page[-3000:]
    return int(found.group(1))


def start_server(data: Path, log_path: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with open(log_path, "w") as log:
        server = subprocess.Popen([KETAWEIGHT, "serve", "--data", str(data), "--port", str(port), "--insecure-cookies",
                                   "--workers", "2", *extra], stdout=log, stderr=subprocess.STDOUT)
    for _ in range(300):
        try:
            if httpx.get(base + "/api/health", timeout=2).status_code == 200:
                return server, base
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError("the service did not start: " + log_path.read_text()[-2000:])


def pages_from_both_processes(browser: Browser, log_path: Path, workers: set[int]) -> None:
    """The rapid-loss patient's page through new connections until both server processes have answered it."""
    served: set[int] = set()
    for _ in range(200):
        r = browser.get("/patients/S-LOSS")
        assert r.status_code == 200 and "Rapid weight loss" in r.text
        served = {int(m.group(1)) for m in ACCESS.finditer(log_path.read_text())
                  if m.group(3) == "/patients/S-LOSS" and m.group(4) == "200"}
        if len(served) == 2:
            break
    assert len(served) == 2 and served <= workers, (served, workers)


def acknowledgement_seen_by_both(browser: Browser) -> None:
    """An acknowledgement through one process: every process's patient list shows one open alert fewer."""
    before = {open_alerts_of_s_loss(browser) for _ in range(20)}
    assert len(before) == 1
    alert_id = re.search(r'action="/alerts/([0-9a-f]+)/ack"', browser.get("/patients/S-LOSS").text).group(1)
    assert browser.post(f"/alerts/{alert_id}/ack", data={"csrf_token": browser.csrf, "comment": "seen, dietitian"}
                        ).status_code == 303
    assert {open_alerts_of_s_loss(browser) for _ in range(20)} == {before.pop() - 1}


def monitor_jobs_one_at_a_time(browser: Browser) -> list[int]:
    """Three jobs queued through either process all finish; their ids (the caller checks they did not overlap)."""
    ids = [browser.post("/api/jobs", json={"kind": "monitor"}, headers={"X-CSRF-Token": browser.csrf}).json()["id"]
           for _ in range(3)]
    assert [browser.wait_job(i)["status"] for i in ids] == ["done"] * 3
    return ids


def no_overlap(spans: list[tuple]) -> bool:
    return all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))


def stop(server: subprocess.Popen) -> None:
    """After a failure: Ctrl-C, then kill whatever is left (the workers too, not only the parent)."""
    if server.poll() is not None:
        return
    everything = descendants(server.pid)
    server.send_signal(signal.SIGINT)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    for pid in everything:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def ctrl_c_ends_everything(server: subprocess.Popen) -> None:
    everything = descendants(server.pid)
    server.send_signal(signal.SIGINT)
    assert server.wait(timeout=60) == 0
    deadline = time.monotonic() + 15
    while any(alive(p) for p in everything) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in everything if alive(p)], "processes left behind after Ctrl-C"


def test_two_server_processes_share_sessions_jobs_and_the_store(tmp_path):
    data, log_path = tmp_path / "data", tmp_path / "server.log"
    subprocess.run([KETAWEIGHT, "create-admin", "-u", "admin", "--data", str(data), "--clinic", "South clinic",
                    "--password-stdin"], input=PASSWORD + "\n", text=True, check=True, capture_output=True)
    _, _ = run_simulation("article", 300, 3, tmp_path / "sim", "csv", False)
    extra, clinic = south_folder(tmp_path / "south"), tmp_path / "clinic"
    clinic.mkdir()
    for name in ("patients", "exposures", "measurements", "lifestyle", "adverse_events"):  # simulated + hand-built
        frames = [pd.read_csv(tmp_path / "sim" / "csv" / f"{name}.csv", dtype=str)]
        if (extra / f"{name}.csv").exists():
            frames.append(pd.read_csv(extra / f"{name}.csv", dtype=str))
        pd.concat(frames).to_csv(clinic / f"{name}.csv", index=False)
    server, base = start_server(data, log_path)
    try:
        workers = descendants(server.pid)
        browser = Browser(base)
        job = browser.wait_job(browser.upload(zip_folder(clinic, tmp_path / "clinic.zip")))
        assert job["status"] == "done", job

        pages_from_both_processes(browser, log_path, workers)  # one sign-in valid on both
        acknowledgement_seen_by_both(browser)

        # a second load while both processes hold the store open: it is not blocked, and both show the new patient
        new = tmp_path / "new"
        new.mkdir()
        pd.DataFrame({"patient_id": ["S-NEW"], "sex": ["M"], "birth_year": [1970], "height_cm": [175.0]}).to_csv(
            new / "patients.csv", index=False)
        job = browser.wait_job(browser.upload(zip_folder(new, tmp_path / "new.zip")), timeout_s=120)
        assert job["status"] == "done", job
        assert all(browser.get("/patients/S-NEW").status_code == 200 for _ in range(10))
        assert all("Rapid weight loss" in browser.get("/patients/S-LOSS").text for _ in range(10))

        ids = monitor_jobs_one_at_a_time(browser)
        with sqlite3.connect(data / "app.db") as db:
            spans = db.execute(f"SELECT started_at, finished_at FROM jobs WHERE id IN ({','.join(map(str, ids))}) "
                               "ORDER BY id").fetchall()
        assert no_overlap(spans), spans

        # Ctrl-C while a study runs: every process ends, the job is marked interrupted
        study = browser.post("/api/jobs", json={"kind": "study", "mechanisms": True},
                             headers={"X-CSRF-Token": browser.csrf}).json()["id"]
        deadline = time.monotonic() + 60
        while browser.get(f"/api/jobs/{study}").json()["status"] == "queued":
            assert time.monotonic() < deadline, "the study job never started"
            time.sleep(0.2)
        assert len(descendants(server.pid) - workers) >= 1  # the job's process
        ctrl_c_ends_everything(server)
        with sqlite3.connect(data / "app.db") as db:
            status, error = db.execute("SELECT status, error FROM jobs WHERE id = ?", [study]).fetchone()
        assert status == "failed" and error.startswith("interrupted"), (status, error)
        assert PASSWORD not in log_path.read_text()
    finally:
        stop(server)


def test_two_server_processes_on_postgresql_app_state(postgres_url, tmp_path):
    """The same with the app state in PostgreSQL: sessions, the cache counter, jobs and the runner lease."""
    psycopg = pytest.importorskip("psycopg")
    with psycopg.connect(postgres_url, autocommit=True) as con:
        con.execute("DROP DATABASE IF EXISTS kwworkers")
        con.execute("CREATE DATABASE kwworkers")
    url = postgres_url.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0] + "/kwworkers"
    data, log_path = tmp_path / "data", tmp_path / "server.log"
    subprocess.run([KETAWEIGHT, "create-admin", "-u", "admin", "--data", str(data), "--clinic", "South clinic",
                    "--database-url", url, "--password-stdin"], input=PASSWORD + "\n", text=True, check=True,
                   capture_output=True)
    server, base = start_server(data, log_path, "--database-url", url)
    try:
        workers = descendants(server.pid)
        browser = Browser(base)
        job = browser.wait_job(browser.upload(zip_folder(south_folder(tmp_path / "south"), tmp_path / "south.zip")))
        assert job["status"] == "done", job
        pages_from_both_processes(browser, log_path, workers)
        acknowledgement_seen_by_both(browser)
        ids = monitor_jobs_one_at_a_time(browser)
        with psycopg.connect(postgres_url.rsplit("/", 1)[0] + "/kwworkers") as con:
            spans = con.execute("SELECT started_at, finished_at FROM jobs WHERE id = ANY(%s) ORDER BY id", [ids]).fetchall()
        assert no_overlap(spans), spans
        ctrl_c_ends_everything(server)
    finally:
        stop(server)
