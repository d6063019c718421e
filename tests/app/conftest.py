"""A clinic service with two clinics, four accounts, a simulated clinic (North) and a hand-built one
(South) loaded through the upload path, and one finished run — built once per test session (per
xdist worker), in-process (jobs run by calling the job function directly)."""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from ketaweight.app.config import AppConfig
from ketaweight.app.db import Job
from ketaweight.app.job_tasks import run_job
from ketaweight.app.main import create_app
from ketaweight.app.users import create_clinic, create_user
from ketaweight.pipelines.simulation import run_simulation

PASSWORD = "correct horse battery staple"
USERS = {"admin": "admin", "north": "clinician", "south": "clinician", "res": "researcher"}


def zip_folder(folder: Path, target: Path, names: list[str] | None = None) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.iterdir()):
            if names is None or p.name in names:
                zf.write(p, f"clinic/{p.name}")
    return target


def south_folder(folder: Path) -> Path:
    """Three hand-built patients; S-LOSS loses 8% within 3 weeks of starting (a rapid-loss alert)."""
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"patient_id": ["S-LOSS", "S-OK", "S-NONE"], "sex": ["F", "M", "F"], "birth_year": [1980, 1975, 1990],
                  "height_cm": [165.0, 180.0, 170.0]}).to_csv(folder / "patients.csv", index=False)
    days = list(range(-7, 120, 7))
    rows = [{"patient_id": pid, "time": pd.Timestamp("2024-03-01") + pd.Timedelta(days=d), "kind": "weight",
             "value": (80.0 if d < 14 else 73.6) if pid == "S-LOSS" else 80.0, "unit": "kg"}
            for pid in ("S-LOSS", "S-OK") for d in days]
    pd.DataFrame(rows).to_csv(folder / "measurements.csv", index=False)
    pd.DataFrame([{"patient_id": pid, "time": pd.Timestamp("2024-03-01 10:00") + pd.Timedelta(days=d), "drug": "ketamine",
                   "dose_mg": 40.0, "route": "iv", "duration_min": 40}
                  for pid in ("S-LOSS", "S-OK") for d in (0, 2, 4, 7, 9, 11)]).to_csv(folder / "exposures.csv", index=False)
    return folder


@dataclass
class Service:
    config: AppConfig
    app: object
    north_ids: list[str]
    south_ids: list[str]

    def client(self) -> TestClient:
        return TestClient(self.app, base_url="https://testserver")

    def login(self, username: str, client: TestClient | None = None) -> tuple[TestClient, str]:
        client = client or self.client()
        page = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        r = client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token},
                        follow_redirects=False)
        assert r.status_code == 303, r.text[:300]
        return client, client.get("/api/me").json()["csrf_token"]

    def run_jobs(self) -> None:
        with self.app.state.factory() as db:
            queued = [j.id for j in db.query(Job).filter(Job.status == "queued").order_by(Job.id)]
        self.app.state.anchor.close()  # no watcher runs without the lifespan: close before a load opens the store
        for job_id in queued:
            run_job(self.config.url, str(self.config.data_dir), job_id)

    def upload(self, client: TestClient, csrf: str, archive: Path, clinic_id: int):
        with open(archive, "rb") as fh:
            return client.post("/upload", data={"csrf_token": csrf, "format": "canonical", "clinic_id": str(clinic_id)},
                               files={"archive": (archive.name, fh, "application/zip")}, follow_redirects=False)


@pytest.fixture(scope="session")
def service(tmp_path_factory) -> Service:
    root = tmp_path_factory.mktemp("service")
    sim_root = root / "sim"
    _, store = run_simulation("article", 800, 5, sim_root, "csv", False)
    config = AppConfig(data_dir=root / "data", run_jobs=False, max_upload_bytes=30 * 1024**2,
                       max_unpacked_bytes=60 * 1024**2)
    app = create_app(config)
    with app.state.factory() as db:
        north, south = create_clinic(db, "North clinic"), create_clinic(db, "South clinic")
        for name, role in USERS.items():
            create_user(db, name, PASSWORD, role, {"north": north.id, "south": south.id}.get(name))
        db.commit()
    svc = Service(config, app, [], [])
    client, csrf = svc.login("admin")
    assert svc.upload(client, csrf, zip_folder(sim_root / "csv", root / "north.zip"), north.id).status_code == 303
    assert svc.upload(client, csrf, zip_folder(south_folder(root / "south"), root / "south.zip"), south.id).status_code == 303
    r = client.post("/jobs/study", data={"csrf_token": csrf, "title": "first run", "depression": "1"}, follow_redirects=False)
    assert r.status_code == 303
    svc.run_jobs()
    with app.state.factory() as db:
        failed = [(j.id, j.error) for j in db.query(Job).filter(Job.status != "done")]
        assert not failed, failed
    svc.north_ids = pd.read_csv(sim_root / "csv" / "patients.csv")["patient_id"].tolist()
    svc.south_ids = ["S-LOSS", "S-OK", "S-NONE"]
    return svc
