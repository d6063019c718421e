"""The job runner: starts queued jobs one at a time, each in its own process, in exactly one server process.

Every server process (``ketaweight serve --workers N``) has a runner thread, but only the one holding
the **runner lease** — an exclusive ``flock`` on ``DATA/jobs.lock`` — runs jobs; the others try for it
every :data:`LEASE_RETRY_S` seconds and take over if its holder ends.  The lease is passed on to each job
process (the inherited lock file), so a job that outlives its server process (killed, not stopped) still
holds it: no second runner starts a job beside it.  The queue, the progress and the outcome are rows of
the app database, so every process shows them.

A queued job is started as ``python -m ketaweight.app.job_tasks`` with numerical libraries limited to
``AppConfig.job_threads`` threads.  A job whose process ends without recording an outcome is marked failed
with its exit code; jobs left "running" when a runner takes the lease are marked failed ("interrupted"):
the lease proves that no job process of theirs lives.
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from ketaweight.app.config import AppConfig
from ketaweight.app.db import Job, utcnow
from ketaweight.app.job_tasks import THREAD_VARIABLES

log = logging.getLogger("uvicorn.error")
LEASE_RETRY_S = 2.0
POLL_S = 0.5
"""How often the lease holder looks for queued jobs when nobody woke it (s)."""


class JobRunner:
    """Runs queued jobs in order, one at a time, until :meth:`stop` (while holding the runner lease)."""

    def __init__(self, config: AppConfig, factory: sessionmaker) -> None:
        self.config, self.factory = config, factory
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lease: IO[str] | None = None

    @property
    def holds_lease(self) -> bool:
        return self._lease is not None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="ketaweight-jobs", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """A job was queued: look now rather than at the next poll (in this process; others poll)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._lease is not None:
            self._lease.close()
            self._lease = None

    def _take_lease(self) -> bool:
        fh = open(self.config.data_dir / "jobs.lock", "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return False
        self._lease = fh
        with self.factory() as db:
            db.execute(update(Job).where(Job.status == "running").values(
                status="failed", error="interrupted: the service stopped while the job ran; start it again",
                finished_at=utcnow()))
            db.commit()
        return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if self._lease is None and not self._take_lease():
                    self._stop.wait(LEASE_RETRY_S)
                    continue
                with self.factory() as db:
                    job_id = db.scalars(select(Job.id).where(Job.status == "queued").order_by(Job.id).limit(1)).first()
                if job_id is None:
                    self._wake.wait(POLL_S)
                    self._wake.clear()
                    continue
                self._run(job_id)
            except SQLAlchemyError:  # the app database is unreachable for a moment: say so, try again
                log.exception("job runner: the app database failed; trying again in %.0f s", LEASE_RETRY_S)
                self._stop.wait(LEASE_RETRY_S)

    def _run(self, job_id: int) -> None:
        env = {**os.environ, **{v: str(self.config.job_threads) for v in THREAD_VARIABLES}}
        args = [sys.executable, "-m", "ketaweight.app.job_tasks", self.config.url, str(self.config.data_dir), str(job_id)]
        if self.config.rules_path is not None:
            args.append(str(Path(self.config.rules_path)))
        log = (self.config.data_dir / "jobs").resolve()
        log.mkdir(parents=True, exist_ok=True)
        assert self._lease is not None
        with open(log / f"job-{job_id}.log", "wb") as out:
            self._proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          pass_fds=(self._lease.fileno(),))  # the job holds the lease too
            code = self._proc.wait()
        self._proc = None
        with self.factory() as db:
            job = db.get(Job, job_id)
            if job is not None and job.status in ("queued", "running"):
                job.status, job.finished_at = "failed", utcnow()
                job.error = ("interrupted: the service stopped while the job ran" if self._stop.is_set()
                             else f"the job process ended unexpectedly (exit code {code}); see jobs/job-{job_id}.log")
                db.commit()
