"""What every CLI command shares: the console, the error boundary, progress bars."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ketaweight.core.errors import InputError, KetaweightWarning, NumericalError

console = Console(stderr=False)
err_console = Console(stderr=True)

T = TypeVar("T")


def run_cli(action: Callable[[], T]) -> T:
    """Run a library call; turn input and numerical errors into a red message and exit code 2.

    Warnings of the ketaweight family are shown in yellow, never swallowed; other warnings are
    passed on.  They are shown after the recording context has closed: inside it,
    ``warnings.showwarning`` is the recorder itself, and re-emitting there would append to the
    list being read (an endless loop).
    """
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", KetaweightWarning)
            return action()
    except (InputError, NumericalError, FileNotFoundError, ValueError) as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(code=2) from exc
    finally:
        for w in caught:
            if issubclass(w.category, KetaweightWarning):
                err_console.print(f"[yellow]warning ({w.category.__name__}):[/] {w.message}", highlight=False)
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields ``advance(n)``.  Silent when stderr is not a TTY."""
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    )
    with progress:
        task = progress.add_task(description, total=total)
        yield lambda n=1: progress.advance(task, n)
