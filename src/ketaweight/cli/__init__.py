"""The ``ketaweight`` command: thin typer wrappers over library calls.

Each area has its own module in this package and registers its commands on the app here.  The
modules import the engines inside their command functions, so ``ketaweight --help`` starts in a
fraction of a second.  Library errors become CLI errors only at the boundary
(:func:`ketaweight.cli._common.run_cli`); Ctrl-C anywhere ends with one line and exit code 130.
"""

from __future__ import annotations

from _ketaweight_launch import EXIT_INTERRUPTED, install_interrupt_hook, interrupted_reported, report_interrupted

install_interrupt_hook()  # already in place via the console script; here for `python -m ketaweight.cli`

import click  # noqa: E402
import typer  # noqa: E402
from typer.core import TyperArgument  # noqa: E402

from ketaweight.core.version import __version__  # noqa: E402

app = typer.Typer(
    name="ketaweight",
    help="Does ketamine cause weight loss? Answer it with data, and say how sure you are.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: wraps at any width, never cuts a word or a number
)


def _argument_type(self: TyperArgument, ctx: click.Context) -> str | None:
    """An argument's type in ``--help``: typer 0.29 names a list's element by its Python class
    (``QUARTER <list[Path]>``) where a single value reads ``<path>``; a list of paths reads ``<path>...``."""
    label = TyperArgument.display_type(self, ctx)
    return "<path>..." if label == "<list[Path]>" else label


TyperArgument.display_type_rich = _argument_type  # typer has no per-argument hook for this label


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"ketaweight {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Does ketamine cause weight loss? Answer it with data, and say how sure you are."""


def main() -> None:
    """The console-script entry point.  Typer turns a Ctrl-C outside :func:`run_cli` (e.g. while a
    command imports its engines) into a silent exit 130; say it in one line there too."""
    try:
        app()
    except SystemExit as exc:
        if exc.code == EXIT_INTERRUPTED and not interrupted_reported():
            report_interrupted()
        raise


# Area modules register their commands on import (keep this list sorted).
from ketaweight.cli import analyze as _analyze  # noqa: E402,F401
from ketaweight.cli import demo as _demo  # noqa: E402,F401
from ketaweight.cli import mechanisms as _mechanisms  # noqa: E402,F401
from ketaweight.cli import monitor as _monitor  # noqa: E402,F401
from ketaweight.cli import network as _network  # noqa: E402,F401
from ketaweight.cli import report as _report  # noqa: E402,F401
from ketaweight.cli import schemas as _schemas  # noqa: E402,F401
from ketaweight.cli import serve as _serve  # noqa: E402,F401
from ketaweight.cli import signals as _signals  # noqa: E402,F401
from ketaweight.cli import simulate as _simulate  # noqa: E402,F401
from ketaweight.cli import store as _store  # noqa: E402,F401
from ketaweight.cli import validate as _validate  # noqa: E402,F401

__all__ = ["app", "main"]
