"""One writer or many readers of the canonical store, across every server and job process.

DuckDB lets one process write a file or many processes read it, not both at once.  Two ``flock`` files
beside the store coordinate them (the locks end with their process, so a crash leaves none behind):

* ``store.lock`` — every reader (a study job; each server process's :class:`ReadAnchor` while its
  connection is open) holds it shared, a load exclusively;
* ``store.loading.lock`` — a load holds it exclusively from before it waits for ``store.lock`` until it is
  done: readers that see it held start nothing new (pages wait up to ``timeout_s``, then answer
  :class:`StoreBusy`), and every anchor closes its connection within :data:`POLL_S`, so a load never waits
  behind a stream of pages and several server processes need no other signal.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ketaweight.pipelines.patient_record import PatientReader

POLL_S = 0.2
"""How often an anchor looks whether a load wants the store, and a waiting reader whether it is done (s)."""


class StoreBusy(RuntimeError):
    """The store is being written (a load is running); try again shortly."""


def _lock_file(store_path: Path, suffix: str) -> Path:
    path = store_path.with_name(store_path.stem + suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _try(fh: IO[str], mode: int) -> bool:
    try:
        fcntl.flock(fh, mode | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def load_wanted(store_path: Path) -> bool:
    """Does a load hold (or wait for) the store?  (A probe of ``store.loading.lock``; it costs microseconds.)"""
    with open(_lock_file(store_path, ".loading.lock"), "a+") as fh:
        if _try(fh, fcntl.LOCK_SH):
            fcntl.flock(fh, fcntl.LOCK_UN)
            return False
        return True


def _wait_until_no_load(store_path: Path, timeout_s: float | None) -> None:
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while load_wanted(store_path):
        if deadline is not None and time.monotonic() > deadline:
            raise StoreBusy("the store is being updated by a data load; try again in a minute")
        time.sleep(POLL_S / 4)


@contextmanager
def store_lock(store_path: Path, *, exclusive: bool = False, timeout_s: float | None = 10.0) -> Iterator[None]:
    """Hold the store for reading (shared) or for a load (``exclusive``); ``timeout_s=None`` waits for ever.

    A reader first waits while a load wants the store; a load announces itself, then waits for the readers."""
    with open(_lock_file(store_path, ".lock"), "a+") as fh, open(_lock_file(store_path, ".loading.lock"), "a+") as intent:
        if exclusive:
            fcntl.flock(intent, fcntl.LOCK_EX)  # also queues one load behind another
        else:
            _wait_until_no_load(store_path, timeout_s)
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not _try(fh, mode):
            if deadline is not None and time.monotonic() > deadline:
                raise StoreBusy("the store is being updated by a data load; try again in a minute")
            time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
            if exclusive:
                fcntl.flock(intent, fcntl.LOCK_UN)


@dataclass(frozen=True)
class Reading:
    """What a page reads the store through: the open reader and the store's version (for cache keys)."""

    reader: PatientReader
    version: tuple[int, ...]


def store_version(store_path: Path) -> tuple[int, ...]:
    """The store file's identity, size and modification time (and its write-ahead log's, if any): a load
    changes it, reading does not."""
    out: list[int] = []
    for path in (store_path, store_path.with_name(store_path.name + ".wal")):
        try:
            st = os.stat(path)
        except FileNotFoundError:
            continue
        out += [st.st_ino, st.st_size, st.st_mtime_ns]
    return tuple(out)


class ReadAnchor:
    """Keeps one read-only store open in this server process while no load wants it, so pages look a
    patient up through an open database (opening the file costs 25-45 ms; a lookup a few ms).

    While open it holds ``store.lock`` shared; a watcher thread closes it (after the pages reading it are
    done) as soon as a load announces itself, and the next page opens it again once the load is over —
    then on the new file, with a new :func:`store_version`.  One anchor per process, each independent."""

    def __init__(self, store_path: Path, timeout_s: float = 10.0) -> None:
        self.store_path, self.timeout_s = store_path, timeout_s
        self._reader: PatientReader | None = None
        self._version: tuple[int, ...] = ()
        self._lock_fh: IO[str] | None = None
        self._users = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def start(self) -> None:
        """Watch for loads in a background thread (until :meth:`stop`)."""
        self._stop.clear()
        self._watcher = threading.Thread(target=self._watch, name="ketaweight-store-anchor", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        self.close()

    @contextmanager
    def reading(self) -> Iterator[Reading | None]:
        """The open store (None when there is no store yet); :class:`StoreBusy` while a load runs longer than
        ``timeout_s``."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            with self._cond:
                if not load_wanted(self.store_path):  # while one is, no page starts: the watcher can close
                    if self._reader is None:
                        self._open()
                    if self._reader is not None:
                        self._users += 1
                        reading: Reading | None = Reading(self._reader, self._version)
                        break
                    if not self.store_path.exists():
                        reading = None
                        break
            if time.monotonic() > deadline:
                raise StoreBusy("the store is being updated by a data load; try again in a minute")
            time.sleep(POLL_S / 4)
        try:
            yield reading
        finally:
            if reading is not None:
                with self._cond:
                    self._users -= 1
                    self._cond.notify_all()

    def _open(self) -> None:
        """Open the store and take ``store.lock`` shared (caller holds ``_cond``); leaves it closed if the store
        is missing or a load holds the lock."""
        if not self.store_path.exists():
            return
        fh = open(_lock_file(self.store_path, ".lock"), "a+")
        if not _try(fh, fcntl.LOCK_SH):
            fh.close()
            return
        try:
            self._reader = PatientReader(self.store_path)
        except BaseException:
            fh.close()
            raise
        self._lock_fh, self._version = fh, store_version(self.store_path)

    def close(self) -> None:
        """Close the store now, once the pages reading it are done (the next page opens it again)."""
        with self._cond:
            self._cond.wait_for(lambda: self._users == 0)
            if self._reader is not None:
                self._reader.close()
                self._reader = None
            if self._lock_fh is not None:
                self._lock_fh.close()  # releases the shared lock
                self._lock_fh = None

    def _watch(self) -> None:
        while not self._stop.wait(POLL_S):
            if self._reader is not None and load_wanted(self.store_path):
                self.close()
