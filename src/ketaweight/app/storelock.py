"""One writer or many readers of the canonical store, across the web and job processes.

DuckDB lets one process write a file or many processes read it, not both at once.  Every reader
(a patient page, a study job) holds a shared ``flock`` on ``store.lock`` and a load holds it
exclusively; a page gives up after ``timeout_s`` with :class:`StoreBusy` instead of hanging.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
