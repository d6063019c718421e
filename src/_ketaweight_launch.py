"""The ``ketaweight`` console script's first step, and Ctrl-C for the CLI: one line on stderr and exit
code 130, wherever it lands.

A top-level module on purpose, beside the package rather than in it: importing anything inside
``ketaweight`` first runs the package's ``__init__`` (and ``ketaweight.cli``'s), and a Ctrl-C during
those milliseconds used to print Python's traceback (measured: 75 of 100 interrupts sent in the first
120 ms of ``ketaweight analyze --help`` at load 7).  This module uses the standard library's
already-loaded core only and installs the hook when it is imported, before the package is touched;
what is left is the interpreter's own start-up before the script's first line (Python prints its
traceback there, or the process ends by the signal itself, exit 130 in the shell).
"""

import os
import sys
from types import TracebackType

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
    """Ctrl-C outside a command (while the CLI loads): one line and exit 130, no traceback.
    Installed once however often it is called."""
    previous = sys.excepthook
    if getattr(previous, "ketaweight_interrupt_hook", False):
        return

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if is_interrupt(exc):
            report_interrupted()
            sys.stdout.flush()
            os._exit(EXIT_INTERRUPTED)  # sys.exit is ignored in an excepthook; Python would re-raise SIGINT
        previous(kind, exc, tb)

    hook.ketaweight_interrupt_hook = True  # type: ignore[attr-defined]
    sys.excepthook = hook


install_interrupt_hook()  # at import: the console script imports this module before anything else


def main() -> None:
    """The console-script entry point: the CLI proper, loaded after the hook is in place."""
    from ketaweight.cli import main as cli_main

    cli_main()
