"""Uploading an OMOP CDM (CSV files) or FHIR R4 (NDJSON) through the app: the same validation report page,
the patients assigned to the uploader's clinic and visible on their pages, what the import left out listed
with its reasons — and a CDM without its PERSON table refused with that said, nothing loaded."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ketaweight.app.config import AppConfig
from ketaweight.app.db import Job
from ketaweight.app.main import create_app
from ketaweight.app.users import create_clinic, create_user
from ketaweight.pipelines.imports import export_store
from ketaweight.pipelines.patient_record import patient_ids
from ketaweight.pipelines.simulation import run_simulation

from .conftest import PASSWORD, Service, zip_folder


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("formats")
    _, store = run_simulation("article", 60, 21, root / "sim", "csv", False)
    export_store(store, root / "omop", "omop")
    export_store(store, root / "fhir", "fhir")
    return {"store": store, "canonical": root / "sim" / "csv", "omop": root / "omop", "fhir": root / "fhir", "root": root}


def fresh_service(root: Path) -> tuple[Service, int]:
    config = AppConfig(data_dir=root / "data", run_jobs=False)
    app = create_app(config)
    with app.state.factory() as db:
        clinic = create_clinic(db, "East clinic")
        create_user(db, "east", PASSWORD, "clinician", clinic.id)
        db.commit()
        return Service(config, app, [], []), clinic.id


def upload(svc: Service, clinic_id: int, archive: Path, fmt: str):
    client, csrf = svc.login("east")
    with open(archive, "rb") as fh:
        r = client.post("/upload", data={"csrf_token": csrf, "format": fmt, "clinic_id": str(clinic_id)},
                        files={"archive": (archive.name, fh, "application/zip")}, follow_redirects=False)
    assert r.status_code == 303, r.text[:500]
    svc.run_jobs()
    return client, client.get(r.headers["location"])


@pytest.mark.parametrize("fmt", ["canonical", "omop", "fhir"])
def test_each_upload_format_loads_the_clinics_patients(exported, tmp_path, fmt):
    svc, clinic_id = fresh_service(tmp_path)
    client, page = upload(svc, clinic_id, zip_folder(exported[fmt], tmp_path / f"{fmt}.zip"), fmt)
    assert page.status_code == 200 and "Loaded" in page.text, page.text[:2000]
    assert "every row passed validation" in page.text  # the simulated records convert without a row left out
    expected = patient_ids(exported["store"])
    assert patient_ids(svc.config.store_path) == expected
    shown = re.search(r"(\d+) new patient\(s\) assigned", page.text)
    assert shown and int(shown.group(1)) == len(expected)
    patient = sorted(expected)[0]
    assert client.get(f"/patients/{patient}").status_code == 200  # assigned to the uploader's clinic


def test_the_upload_page_offers_each_format_with_its_files():
    from ketaweight.app.uploads import FORMATS

    assert set(FORMATS) == {"canonical", "omop", "fhir"}
    assert FORMATS["omop"].member.match("PERSON.csv") and FORMATS["omop"].member.match("person.csv")
    assert not FORMATS["omop"].member.match("patients.csv")
    assert FORMATS["fhir"].member.match("Observation.ndjson") and not FORMATS["fhir"].member.match("notes.txt")


def test_a_cdm_without_its_person_table_is_refused_and_nothing_is_loaded(exported, tmp_path):
    svc, clinic_id = fresh_service(tmp_path)
    names = [p.name for p in exported["omop"].iterdir() if p.name != "PERSON.csv"]
    _client, page = upload(svc, clinic_id, zip_folder(exported["omop"], tmp_path / "no-person.zip", names), "omop")
    assert "Nothing was loaded" in page.text
    problems = re.findall(r"<tbody>(.*?)</tbody>", page.text, re.S)[-1]
    assert "table person" in problems and "required CDM table is missing" in problems
    assert str(svc.config.uploads_dir) not in page.text  # the server's scratch folder is not shown
    with svc.app.state.factory() as db:
        assert [j.status for j in db.query(Job)] == ["failed"]
    assert not svc.config.store_path.exists() or not patient_ids(svc.config.store_path)


def test_rows_an_import_leaves_out_are_listed_with_their_reason(exported, tmp_path):
    import shutil

    import pandas as pd

    cdm = tmp_path / "cdm"
    shutil.copytree(exported["omop"], cdm)
    m = pd.read_csv(cdm / "MEASUREMENT.csv", dtype=str, keep_default_na=False)
    m.loc[m.index[:12], "value_as_number"] = "-5"  # no weight, height or score is negative
    m.to_csv(cdm / "MEASUREMENT.csv", index=False)
    svc, clinic_id = fresh_service(tmp_path)
    _client, page = upload(svc, clinic_id, zip_folder(cdm, tmp_path / "omop.zip"), "omop")
    assert "except the rows the import left out" in page.text, page.text[:1500]
    left_out = page.text.split("Rows the import left out, and why")[1].split("</table>")[0]
    assert "measurement" in left_out and "<td" in left_out
