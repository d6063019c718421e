"""Ctrl-C for the CLI: one line on stderr and exit code 130, wherever it lands (standard library only,
so the hook is in place before anything heavy is imported)."""

from __future__ import annotations

import os
import sys
from typing import Any

INTERRUPTED = "interrupted: stopped before finishing; nothing was written (partial output removed)"
EXIT_INTERRUPTED = 130
"""The shell's code for a command ended by Ctrl-C (128 + SIGINT)."""


def is_interrupt(exc: BaseException) -> bool:
    """Ctrl-C, also when DuckDB turned it into its own exception inside a query."""
    return isinstance(exc, KeyboardInterrupt) or type(exc).__name__ == "InterruptException" or (
        isinstance(exc, RuntimeError) and "interrupted" in str(exc).lower())


_REPORTED = {"interrupted": False}


def report_interrupted() -> None:
    """The one line a Ctrl-C gets (on stderr)."""
    _REPORTED["interrupted"] = True
    print(INTERRUPTED, file=sys.stderr, flush=True)


def interrupted_reported() -> bool:
    return _REPORTED["interrupted"]


def install_interrupt_hook() -> None:
    """Ctrl-C outside a command (while the CLI loads): one line and exit 130, no traceback."""
    previous = sys.excepthook

    def hook(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
        if is_interrupt(exc):
            report_interrupted()
            sys.stdout.flush()
            os._exit(EXIT_INTERRUPTED)  # sys.exit is ignored in an excepthook; Python would re-raise SIGINT
        previous(kind, exc, tb)

    sys.excepthook = hook
