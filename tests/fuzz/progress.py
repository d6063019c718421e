"""A long fuzz run's figures, written as it goes, for every fuzz target of the suite (the data sources here,
the signals inputs in tests/signals/test_fuzz.py): inputs tried, how they ended, the slowest (CPU seconds),
and failures (an uncaught exception, a failed check or a hang) counted before they propagate.
A run stopped early (the machine's time ran out) still says how many inputs it got through.

The figures go to ``<folder>/<target>.json``: the folder is ``KETAWEIGHT_FUZZ_STATS``, else ``fuzz-output``
under ``make fuzz`` (HYPOTHESIS_PROFILE=fuzz), else nowhere (the short budget inside ``make test``)."""

from __future__ import annotations

import atexit
import json
import os
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MAX_TRACEBACKS = 20
"""Failures whose traceback is kept (``<target>.failures.txt``)."""
WRITE_EVERY_S = 1.0
"""Wall seconds between two writes of the figures: a parser input takes milliseconds, a write about one."""


def stats_folder() -> str | None:
    """Where the figures go (see the module docstring)."""
    return os.environ.get("KETAWEIGHT_FUZZ_STATS") or (
        "fuzz-output" if os.environ.get("HYPOTHESIS_PROFILE") == "fuzz" else None)


class FuzzProgress:
    """Per-target counts of one run: ``loaded`` (a result), ``refused`` (one clear InputError), ``failed``
    (anything else, hangs included). ``hang_cpu_s``: an input using more CPU seconds than this (all threads
    of this process, so a loaded machine does not make one) fails as a hang."""

    def __init__(self, target: str, hang_cpu_s: float | None = None) -> None:
        self.target = target
        self.hang_cpu_s = hang_cpu_s
        self.folder = stats_folder()
        self.inputs = self.loaded = self.refused = self.failed = self.hangs = 0
        self.slowest_cpu_s = 0.0
        self._written_at = 0.0
        if self.folder:
            atexit.register(self._write)  # the last second's inputs too

    @contextmanager
    def input(self) -> Iterator[dict[str, bool]]:
        """One input, around the whole check: the test sets ``["refused"] = True`` when the input was
        refused clearly; anything escaping (an uncaught error, a failed check) counts as a failure."""
        t0 = time.process_time()
        outcome = {"refused": False}
        try:
            yield outcome
        except BaseException as exc:
            self._failure(exc)
            self._count("failed", time.process_time() - t0)
            raise
        cpu_s = time.process_time() - t0
        if self.hang_cpu_s is not None and cpu_s > self.hang_cpu_s:
            self.hangs += 1
            self._count("failed", cpu_s)
            raise AssertionError(f"{self.target}: an input took {cpu_s:.1f} s of CPU (a hang)")
        self._count("refused" if outcome["refused"] else "loaded", cpu_s)

    def _failure(self, exc: BaseException) -> None:
        """Keep the first failures' tracebacks beside the figures (hypothesis then shrinks the input, which
        can take long in a long run; the traceback is there at once). Shrinking re-runs count as failures too."""
        if self.folder and self.failed < MAX_TRACEBACKS:
            Path(self.folder).mkdir(parents=True, exist_ok=True)
            with Path(self.folder, f"{self.target}.failures.txt").open("a") as out:
                out.write(f"--- input {self.inputs + 1}\n{''.join(traceback.format_exception(exc))}\n")

    def _count(self, outcome: str, cpu_s: float) -> None:
        self.inputs += 1
        setattr(self, outcome, getattr(self, outcome) + 1)
        self.slowest_cpu_s = max(self.slowest_cpu_s, cpu_s)
        if self.folder and (outcome == "failed" or time.monotonic() - self._written_at >= WRITE_EVERY_S):
            self._write()

    def _write(self) -> None:
        if not self.folder or not self.inputs:
            return
        Path(self.folder).mkdir(parents=True, exist_ok=True)
        Path(self.folder, f"{self.target}.json").write_text(json.dumps(
            {"target": self.target, "inputs": self.inputs, "loaded": self.loaded, "refused": self.refused,
             "failed": self.failed, "hangs": self.hangs, "slowest_cpu_s": round(self.slowest_cpu_s, 3),
             "hang_threshold_cpu_s": self.hang_cpu_s}, indent=1))
        self._written_at = time.monotonic()
