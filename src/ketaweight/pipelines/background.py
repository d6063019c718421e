"""A step of a pipeline run in a worker process beside the others (the demo's signals and network).

The worker is started with ``spawn`` (none of the parent's threads or DuckDB connections are
inherited) and imports only what its step needs: this module is standard library only.  The step's
value, its exception or the warnings it raised come back to the parent as if it had run there.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import warnings
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any


def _worker(conn: Connection, step: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """A worker process: run ``step(*args)`` and send back (ok, value or exception, warnings raised)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it ends this process
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = step(*args)
        conn.send((True, value, [(w.message, w.category, w.filename, w.lineno) for w in caught]))
    except BaseException as exc:  # noqa: BLE001 - every failure goes to the parent, which raises it
        try:
            conn.send((False, exc, []))
        except Exception:  # noqa: BLE001 - an exception that does not pickle: its text then
            conn.send((False, RuntimeError(f"{type(exc).__name__}: {exc}"), []))
    finally:
        conn.close()


class Background:
    """``step(*args)`` in a worker process (``spawn``: none of this process's threads or DuckDB
    connections are inherited).  :meth:`result` waits for it and raises its warnings here (where
    the CLI shows them) or its exception; :meth:`stop` ends it when the demo stops early (an error,
    Ctrl-C), before the staged output folder is removed."""

    def __init__(self, step: Callable[..., Any], *args: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe(duplex=False)
        self._process = context.Process(target=_worker, args=(child, step, args), name="ketaweight-demo-step")
        # Started with Ctrl-C ignored, which the new interpreter keeps (Python installs its handler only
        # over the default): a Ctrl-C at the terminal reaches the whole process group, and a worker still
        # importing would otherwise print a traceback; the parent ends its workers itself.
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            self._process.start()
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        child.close()

    def result(self) -> Any:
        """The step's value once it is done."""
        try:
            ok, value, found = self._conn.recv()
        except EOFError:
            self._process.join()
            raise RuntimeError(f"a demo step's worker process ended without a result "
                               f"(exit code {self._process.exitcode})") from None
        self._process.join()
        for message, category, filename, lineno in found:
            warnings.warn_explicit(message, category, filename, lineno)
        if not ok:
            raise value
        return value

    def stop(self) -> None:
        """End the worker if it still runs, and wait for it."""
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()
        self._conn.close()


class Inline:
    """The same interface, run when :meth:`result` is asked for (a one-core machine)."""

    def __init__(self, step: Callable[..., Any], *args: Any) -> None:
        self._step, self._args = step, args

    def result(self) -> Any:
        return self._step(*self._args)

    def stop(self) -> None:
        pass


def cores() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
