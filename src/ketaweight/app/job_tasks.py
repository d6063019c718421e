"""What a background job does, run in its own process (:func:`run_job`), reporting progress to the app database.

Kinds:

* ``load`` — validate and load an uploaded folder into the store, all or nothing (canonical tables through
  :meth:`ketaweight.store.Store.load_folder`, an OMOP CDM or FHIR files through
  :mod:`ketaweight.pipelines.imports`), assign the new patients to the uploader's clinic, and refresh the
  monitoring alerts; its result is the validation report (with what an import left out, and why);
* ``monitor`` — refresh the monitoring alerts (:func:`ketaweight.pipelines.monitoring.monitor`);
* ``study`` — a run: the weight and depression target trials (:func:`~ketaweight.pipelines.emulation.run_study`),
  responsible use, optionally mechanisms and FAERS signals, then the graded report
  (:func:`ketaweight.report.render.write_report`) in ``runs/job-<id>/``.

Each job runs as ``python -m ketaweight.app.job_tasks DB_URL DATA_DIR JOB_ID [RULES]`` with numerical
libraries limited to one thread (set in its environment before numpy loads) at a lower priority, so
pages stay quick on a small machine while a study runs.  The pipelines are imported inside the tasks,
which keeps this module light for the web process that only needs :func:`refresh_alerts`' neighbours.
"""

from __future__ import annotations

import os
import shutil
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session as DBSession

from ketaweight.app.db import Alert, Job, PatientClinic, Run, bump_state, make_engine, session_factory, utcnow
from ketaweight.app.storelock import store_lock

Progress = Callable[[float, str], None]
STUDIES = {"weight": "ketamine-weight", "depression": "ketamine-depression"}


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def run_job(db_url: str, data_dir: str, job_id: int, rules_path: str | None = None) -> None:
    """Process entry point: run job ``job_id`` to the end, recording progress, result or error."""
    try:
        os.nice(5)
    except OSError:  # pragma: no cover - not permitted on some systems
        pass
    engine = make_engine(db_url)
    factory = session_factory(engine)
    with factory() as db:
        job = db.get(Job, job_id)
        if job is None or job.status != "queued":
            return
        job.status, job.started_at, job.stage = "running", utcnow(), "starting"
        db.commit()
        kind, params = job.kind, dict(job.params)

    def progress(fraction: float, stage: str) -> None:
        with factory() as s:
            s.execute(update(Job).where(Job.id == job_id).values(progress=max(0.0, min(1.0, fraction)), stage=stage[:200]))
            s.commit()

    data = Path(data_dir)
    try:
        task = {"load": _load, "monitor": _monitor, "study": _study}[kind]
        status, result, error, run_id = task(factory, data, job_id, params, progress, rules_path)
    except Exception as exc:  # noqa: BLE001 - every failure is recorded on the job, with its reason
        status, result, error, run_id = "failed", None, f"{type(exc).__name__}: {exc}", None
        traceback.print_exc()
    with factory() as db:
        db.execute(update(Job).where(Job.id == job_id).values(
            status=status, result=result, error=error, run_id=run_id, finished_at=utcnow(),
            progress=1.0 if status == "done" else Job.progress, stage="finished" if status == "done" else "stopped"))
        db.commit()
    engine.dispose()


def refresh_alerts(db: DBSession, store_path: Path, rules_path: str | None) -> dict[str, Any]:
    """Run the monitoring rules and make the alerts table match: new alerts added, gone ones inactive."""
    from ketaweight.pipelines.monitoring import monitor

    with store_lock(store_path, timeout_s=None):
        result = monitor(store_path, rules_path)
    current = {a.alert_id: a for a in result.alerts}
    known = set(db.scalars(select(Alert.alert_id)))
    db.execute(update(Alert).where(Alert.alert_id.not_in(list(current)) if current else Alert.active.is_(True))
               .values(active=False))
    if current:
        db.execute(update(Alert).where(Alert.alert_id.in_(list(current))).values(active=True))
    for alert_id, a in current.items():
        if alert_id not in known:
            db.add(Alert(alert_id=alert_id, patient_id=a.patient_id, rule=a.rule, title=a.title, threshold=a.threshold,
                         message=a.message, first_time=a.first_time, last_time=a.last_time,
                         evidence=[e.to_dict() for e in a.evidence], n_triggers=a.n_triggers, active=True))
    bump_state(db)
    db.commit()
    return {"as_of": result.as_of, "summary": result.summary(), "patients_checked": result.patients_checked}


def _load(factory: Any, data: Path, job_id: int, params: dict[str, Any], progress: Progress,
          rules_path: str | None) -> tuple[str, Any, str | None, None]:
    from ketaweight.core.errors import InputError
    from ketaweight.pipelines.patient_record import patient_ids

    folder = Path(params["folder"])
    store_path = data / "store.duckdb"
    try:
        progress(0.1, "validating every row and loading (all or nothing)")
        with store_lock(store_path, exclusive=True, timeout_s=None):
            before = patient_ids(store_path) if store_path.exists() else set()
            try:
                result = LOADERS[params.get("format", "canonical")](store_path, folder, params["filename"])
            except InputError as exc:
                problems = [{"where": _within_upload(str(loc), folder), "reason": reason} for loc, reason in exc.problems]
                return "failed", {"ok": False, "problems": problems}, \
                    f"validation found {len(problems)} problem(s); nothing was loaded", None
            new = patient_ids(store_path) - before
        with factory() as db:
            for pid in sorted(new):
                db.merge(PatientClinic(patient_id=pid, clinic_id=params["clinic_id"], job_id=job_id))
            bump_state(db)
            db.commit()
            progress(0.6, "checking the monitoring rules")
            monitoring = refresh_alerts(db, store_path, rules_path)
        return "done", {**result, "ok": True, "new_patients": len(new), "monitoring": monitoring}, None, None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _within_upload(where: str, folder: Path) -> str:
    """A problem's location relative to the uploaded folder (the server's scratch path is not shown)."""
    return where.replace(str(folder), "").lstrip("/: ") or "the upload"


def _load_canonical(store_path: Path, folder: Path, filename: str) -> dict[str, Any]:
    from ketaweight.core.provenance import Provenance, read_provenance_file
    from ketaweight.store import Store

    provenance = read_provenance_file(folder) or Provenance("real", f"records uploaded as {filename}")
    with Store(store_path) as store:
        report = store.load_folder(folder, provenance=provenance)
    return {"rows": report.rows, "conversions": report.conversions,
            "files": {k: Path(v).name for k, v in report.sources.items()}, "provenance": provenance.label}


def _import_report(result: Any) -> dict[str, Any]:
    """What an OMOP or FHIR import loaded and left out (counts under 11 masked: the page is shared by the clinic)."""
    report = result.report.to_dict()
    return {"rows": result.load.rows, "conversions": result.load.conversions, "files": {},
            "provenance": result.provenance.label, "excluded": report["excluded"], "found": report["found"],
            "persons": report["persons"]}


def _load_omop(store_path: Path, folder: Path, filename: str) -> dict[str, Any]:
    from ketaweight.pipelines.imports import import_omop

    return _import_report(import_omop(store_path, folder))


def _load_fhir(store_path: Path, folder: Path, filename: str) -> dict[str, Any]:
    from ketaweight.pipelines.imports import import_fhir

    return _import_report(import_fhir(store_path, folder))


LOADERS: dict[str, Callable[[Path, Path, str], dict[str, Any]]] = {
    "canonical": _load_canonical, "omop": _load_omop, "fhir": _load_fhir}
"""One loader per upload format of :data:`ketaweight.app.uploads.FORMATS`: folder → store, all or nothing."""


def _monitor(factory: Any, data: Path, job_id: int, params: dict[str, Any], progress: Progress,
             rules_path: str | None) -> tuple[str, Any, str | None, None]:
    progress(0.2, "checking the monitoring rules")
    with factory() as db:
        return "done", refresh_alerts(db, data / "store.duckdb", rules_path), None, None


def _study(factory: Any, data: Path, job_id: int, params: dict[str, Any], progress: Progress,
           rules_path: str | None) -> tuple[str, Any, str | None, int | None]:
    from ketaweight.pipelines.emulation import run_study
    from ketaweight.pipelines.mechanisms import run_mechanisms
    from ketaweight.pipelines.responsible_use import responsible_use
    from ketaweight.pipelines.signals import mddc_signals
    from ketaweight.report.render import write_report

    store_path = data / "store.duckdb"
    if not store_path.exists():
        return "failed", None, "there are no data yet: upload a clinic's data first", None
    folder = data / "runs" / f"job-{job_id}"
    results = folder / "results"
    steps: list[tuple[str, Callable[[], Any]]] = [
        (f"target-trial emulation: {STUDIES[s]}", lambda s=s: run_study(store_path, STUDIES[s], results))
        for s in params.get("studies", ["weight", "depression"])]
    steps.append(("responsible use: adverse events and monitoring flags",
                  lambda: responsible_use(store_path, out_path=results / "responsible_use.json")))
    if params.get("mechanisms"):
        steps.append(("mechanisms: mediation, dose-response, heterogeneity",
                      lambda: run_mechanisms(store_path, STUDIES["weight"], results, n_bootstrap=params.get("n_bootstrap"))))
    if params.get("signals"):
        steps.append(("signals from FAERS reports (the mddc sedative1000 table)",
                      lambda: mddc_signals(results / "signals-mddc.json")))
    try:
        with store_lock(store_path, timeout_s=None):
            for i, (stage, step) in enumerate(steps):
                progress(0.05 + 0.85 * i / len(steps), f"step {i + 1} of {len(steps) + 1}: {stage}")
                step()
        progress(0.92, f"step {len(steps) + 1} of {len(steps) + 1}: grading the evidence and writing the report")
        paths = write_report(results, folder / "report.html")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    contents = [*params.get("studies", ["weight", "depression"]), "responsible_use",
                *(["mechanisms"] if params.get("mechanisms") else []), *(["signals"] if params.get("signals") else [])]
    with factory() as db:
        run = Run(job_id=job_id, title=params.get("title") or "Weight study", sentence=paths.sentence, grade=paths.grade,
                  contents=contents)
        db.add(run)
        bump_state(db)
        db.commit()
        return "done", {"run_id": run.id, "sentence": paths.sentence, "grade": paths.grade}, None, run.id


if __name__ == "__main__":
    import sys

    run_job(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)
