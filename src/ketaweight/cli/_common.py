"""What every CLI command shares: the consoles, the error boundary, Ctrl-C, progress, tables.

Numbers are never cut: every table column folds instead of truncating, whatever the terminal
width (80 columns, or none under ``make``).
"""

from __future__ import annotations

import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from _ketaweight_launch import EXIT_INTERRUPTED, is_interrupt, report_interrupted
from ketaweight.core.errors import InputError, KetaweightWarning, NumericalError

console = Console(stderr=False)
err_console = Console(stderr=True)

T = TypeVar("T")

_SIGINT = {"seen": False}


def _remember_ctrl_c() -> None:
    """Ctrl-C still raises KeyboardInterrupt (Python's own handler does the raising) and is remembered, so that
    an exception a library made out of the KeyboardInterrupt still ends as an interrupt (seen once in the suite:
    a ValueError naming a scikit-learn histogram buffer format, `demo` interrupted at 12 s under load)."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        return  # not ours to change (another thread, Ctrl-C ignored, or someone else's handler)

    def handler(signum: int, frame: object) -> None:
        _SIGINT["seen"] = True
        signal.default_int_handler(signum, frame)

    signal.signal(signal.SIGINT, handler)

def run_cli(action: Callable[[], T]) -> T:
    """Run a library call; turn input and numerical errors into a red message and exit code 2, and
    Ctrl-C into one line and exit code 130.

    Warnings of the ketaweight family are shown in yellow, each distinct message once (with how many
    times it was raised), never swallowed; other warnings are passed on.  They are shown after the
    recording context has closed: inside it, ``warnings.showwarning`` is the recorder itself, and
    re-emitting there would append to the list being read (an endless loop).
    """
    caught: list[warnings.WarningMessage] = []
    _remember_ctrl_c()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", KetaweightWarning)
            return action()
    except (InputError, NumericalError, FileNotFoundError, ValueError) as exc:
        if _SIGINT["seen"]:
            report_interrupted()
            raise typer.Exit(code=EXIT_INTERRUPTED) from None
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
        raise typer.Exit(code=2) from exc
    except BaseException as exc:
        if is_interrupt(exc) or _SIGINT["seen"]:
            report_interrupted()
            raise typer.Exit(code=EXIT_INTERRUPTED) from None
        raise
    finally:
        seen: dict[tuple[type, str], int] = {}
        for w in caught:
            if issubclass(w.category, KetaweightWarning):
                key = (w.category, str(w.message))
                seen[key] = seen.get(key, 0) + 1
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        for (category, message), times in seen.items():
            again = f" (×{times})" if times > 1 else ""
            err_console.print(f"[yellow]warning ({category.__name__}){again}:[/] {message}", highlight=False,
                              soft_wrap=True)


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """Progress on stderr; yields ``advance(n)``.  A bar on a terminal; elsewhere (a log, ``make``, CI)
    a line at every further 10% and at least every 30 s, so long runs are never silent."""
    if err_console.is_terminal:
        progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=err_console, transient=True)
        with progress:
            task = progress.add_task(description, total=total)
            yield lambda n=1: progress.advance(task, n)
        return
    started = last = time.monotonic()
    state = {"done": 0, "shown": -1}

    def advance(n: int = 1) -> None:
        nonlocal last
        state["done"] += n
        now = time.monotonic()
        decile = int(10 * state["done"] / total) if total else 0
        if decile > state["shown"] or now - last >= 30:
            state["shown"] = max(decile, state["shown"])
            last = now
            share = f"{state['done']:,}/{total:,}" if total else f"{state['done']:,}"
            print(f"{description}: {share} ({now - started:.0f} s)", file=sys.stderr, flush=True)

    print(f"{description}: started", file=sys.stderr, flush=True)
    yield advance


def make_table(*columns: str, title: str | None = None, caption: str | None = None,
               right: tuple[str, ...] = ()) -> Table:
    """A rich table whose cells fold rather than truncate (no number is ever cut)."""
    table = Table(title=title, caption=caption)
    for col in columns:
        table.add_column(col, justify="right" if col in right else "left", overflow="fold")
    return table
