"""The job runner of the web process: starts queued jobs one at a time, each in its own process.

A thread polls the jobs table; a queued job is started as ``python -m ketaweight.app.job_tasks``
with numerical libraries limited to ``AppConfig.job_threads`` threads.  A job whose process ends
without recording an outcome is marked failed with its exit code; jobs left running by a previous
service process are marked failed at start-up ("interrupted").
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import sessionmaker

from ketaweight.app.config import AppConfig
from ketaweight.app.db import Job, utcnow
from ketaweight.app.job_tasks import THREAD_VARIABLES
from ketaweight.app.storelock import ReadAnchor


class JobRunner:
    """Runs queued jobs in order, one at a time, until :meth:`stop`."""

    def __init__(self, config: AppConfig, factory: sessionmaker, anchor: ReadAnchor) -> None:
        self.config, self.factory, self.anchor = config, factory, anchor
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.factory() as db:
            db.execute(update(Job).where(Job.status == "running").values(
                status="failed", error="interrupted: the service stopped while the job ran; start it again",
                finished_at=utcnow()))
            db.commit()
        self._thread = threading.Thread(target=self._loop, name="ketaweight-jobs", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """A job was queued: look now rather than at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self.factory() as db:
                job = db.scalars(select(Job).where(Job.status == "queued").order_by(Job.id).limit(1)).first()
                job_id = job.id if job else None
                writes = job is not None and job.kind == "load"
            if job_id is None:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            if writes:
                self.anchor.pause()
            try:
                self._run(job_id)
            finally:
                self.anchor.resume()

    def _run(self, job_id: int) -> None:
        env = {**os.environ, **{v: str(self.config.job_threads) for v in THREAD_VARIABLES}}
        args = [sys.executable, "-m", "ketaweight.app.job_tasks", self.config.url, str(self.config.data_dir), str(job_id)]
        if self.config.rules_path is not None:
            args.append(str(Path(self.config.rules_path)))
        log = (self.config.data_dir / "jobs").resolve()
        log.mkdir(parents=True, exist_ok=True)
        with open(log / f"job-{job_id}.log", "wb") as out:
            self._proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            code = self._proc.wait()
        self._proc = None
        with self.factory() as db:
            job = db.get(Job, job_id)
            if job is not None and job.status in ("queued", "running"):
                job.status, job.finished_at = "failed", utcnow()
                job.error = ("interrupted: the service stopped while the job ran" if self._stop.is_set()
                             else f"the job process ended unexpectedly (exit code {code}); see jobs/job-{job_id}.log")
                db.commit()
