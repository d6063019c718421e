"""One writer or many readers of the canonical store, across the web and job processes.

DuckDB lets one process write a file or many processes read it, not both at once.  Every reader
(a patient page, a study job) holds a shared ``flock`` on ``store.lock`` and a load holds it
exclusively; a page gives up after ``timeout_s`` with :class:`StoreBusy` instead of hanging.
"""

from __future__ import annotations

import fcntl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb


class StoreBusy(RuntimeError):
    """The store is being written (a load is running); try again shortly."""


@contextmanager
def store_lock(store_path: Path, *, exclusive: bool = False, timeout_s: float | None = 10.0) -> Iterator[None]:
    """Hold the store's lock (shared, or exclusive for a load); ``timeout_s=None`` waits for ever."""
    lock_path = store_path.with_suffix(".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as fh:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        if timeout_s is None:
            fcntl.flock(fh, mode)
        else:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(fh, mode | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise StoreBusy("the store is being updated by a data load; try again in a minute") from None
                    time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class ReadAnchor:
    """Keeps one read-only connection to the store open in the web process, so each page's own
    connection reuses DuckDB's already-open database (opening the file costs 25-45 ms; reusing it ~1 ms).

    The job runner pauses it (:meth:`pause`, closing the connection) before a load, whose process must open the
    file for writing, and resumes it (:meth:`resume`) after: the next page then sees the new rows."""

    def __init__(self, store_path: Path) -> None:
        self.store_path = store_path
        self._con: duckdb.DuckDBPyConnection | None = None
        self._paused = False
        self._lock = threading.Lock()

    def ensure(self) -> None:
        with self._lock:
            if self._con is None and not self._paused and self.store_path.exists():
                self._con = duckdb.connect(str(self.store_path), read_only=True)

    def pause(self) -> None:
        with self._lock:
            self._paused = True
            if self._con is not None:
                self._con.close()
                self._con = None

    def resume(self) -> None:
        with self._lock:
            self._paused = False
