"""The ``ketaweight`` command: thin typer wrappers over library calls.

Each area has its own module in this package and registers here.  Library errors become
CLI errors only at the boundary (:func:`ketaweight.cli._common.run_cli`).
"""

from __future__ import annotations

import typer

from ketaweight.core.version import __version__

app = typer.Typer(
    name="ketaweight",
    help="Does ketamine cause weight loss? Answer it with data, and say how sure you are.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"ketaweight {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Does ketamine cause weight loss? Answer it with data, and say how sure you are."""


# Area modules register their commands on import (keep this list sorted).
from ketaweight.cli import analyze as _analyze  # noqa: E402,F401
from ketaweight.cli import demo as _demo  # noqa: E402,F401
from ketaweight.cli import mechanisms as _mechanisms  # noqa: E402,F401
from ketaweight.cli import network as _network  # noqa: E402,F401
from ketaweight.cli import report as _report  # noqa: E402,F401
from ketaweight.cli import signals as _signals  # noqa: E402,F401
from ketaweight.cli import simulate as _simulate  # noqa: E402,F401
from ketaweight.cli import store as _store  # noqa: E402,F401
from ketaweight.cli import validate as _validate  # noqa: E402,F401
