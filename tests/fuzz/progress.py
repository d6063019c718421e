"""A long fuzz run's figures written as it goes (``KETAWEIGHT_FUZZ_STATS`` = a folder): inputs tried,
how they ended, the slowest (CPU seconds), and failures (an uncaught exception or a failed check)
counted before they propagate.
A run stopped early (the machine's time ran out) still says how many inputs it got through."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class FuzzProgress:
    """Per-target counts, rewritten to ``<folder>/<target>.json`` after every input (a millisecond against
    an input's 0.3–2 s)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.folder = os.environ.get("KETAWEIGHT_FUZZ_STATS")
        self.inputs = self.loaded = self.refused = self.failed = 0
        self.slowest_cpu_s = 0.0

    @contextmanager
    def input(self) -> Iterator[dict[str, bool]]:
        """One input, around the whole check: the test sets ``["refused"] = True`` when the input was
        refused clearly; anything escaping (an uncaught error, a failed check) counts as a failure."""
        t0 = time.process_time()
        outcome = {"refused": False}
        try:
            yield outcome
        except BaseException:
            self._count("failed", t0)
            raise
        self._count("refused" if outcome["refused"] else "loaded", t0)

    def _count(self, outcome: str, t0: float) -> None:
        self.inputs += 1
        setattr(self, outcome, getattr(self, outcome) + 1)
        self.slowest_cpu_s = max(self.slowest_cpu_s, time.process_time() - t0)
        if self.folder:
            Path(self.folder).mkdir(parents=True, exist_ok=True)
            Path(self.folder, f"{self.target}.json").write_text(json.dumps(
                {"target": self.target, "inputs": self.inputs, "loaded": self.loaded, "refused": self.refused,
                 "failed": self.failed, "slowest_cpu_s": round(self.slowest_cpu_s, 3)}, indent=1))
