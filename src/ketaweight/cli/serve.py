"""CLI: ketaweight serve (the clinic service) and ketaweight create-admin (its first account)."""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

import typer

from ketaweight.cli import app
from ketaweight.cli._common import console, err_console

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@app.command("serve")
def serve_command(
    data: Path = typer.Option(Path("clinic-service"), "--data", "-d", help="Folder for the store, app database, runs "
                              "and uploads (created if missing)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; the default answers this machine only. "
                             "Put a TLS reverse proxy in front before opening it to a network."),
    port: int = typer.Option(8000, "--port", "-p", min=1, max=65535, help="TCP port."),
    database_url: str = typer.Option(None, "--database-url", envvar="KETAWEIGHT_DATABASE_URL",
                                     help="App state database (default: SQLite DATA/app.db); e.g. "
                                     "postgresql+psycopg://user@host/db (install the 'postgres' extra)."),
    rules: Path = typer.Option(None, "--rules", help="Monitoring rules file (TOML; default: the shipped one)."),
    insecure_cookies: bool = typer.Option(False, "--insecure-cookies", help="Send cookies without the Secure flag: "
                                          "only for plain-HTTP testing on a network you trust."),
    workers: int = typer.Option(1, "--workers", "-w", min=1, max=64, help="Server processes answering pages (about "
                                "one per core); one of them runs the background jobs."),
) -> None:
    """Start the clinic service (FastAPI): monitoring, uploads, studies and the answer page."""
    import uvicorn  # imported here: `ketaweight --help` must not load the web stack

    from ketaweight.app.config import AppConfig
    from ketaweight.app.main import CONFIG_VARIABLE, create_app, prepare

    config = AppConfig(data_dir=data, database_url=database_url, rules_path=rules, secure_cookies=not insecure_cookies)
    try:
        prepare(config)
        application = create_app(config, prepared=True) if workers == 1 else None
    except (ValueError, OSError) as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(code=2) from exc
    if host not in LOOPBACK:
        err_console.print(f"[yellow]warning:[/] listening on {host}: anyone who can reach it sees the sign-in page; "
                          "use HTTPS through a reverse proxy", highlight=False)
    console.print(f"ketaweight clinic service on http://{host}:{port}/  (data: {data.resolve()}; "
                  f"{workers} server process{'es' if workers > 1 else ''}; Ctrl-C stops it)", highlight=False)
    if application is not None:
        uvicorn.run(application, host=host, port=port, log_level="info", access_log=True)
    else:  # each worker process builds the app from the settings in its environment
        os.environ[CONFIG_VARIABLE] = config.to_json()
        uvicorn.run("ketaweight.app.main:app_from_environment", factory=True, workers=workers, host=host, port=port,
                    log_level="info", access_log=True, log_config=_log_config_with_process())


def _log_config_with_process() -> dict:
    """uvicorn's logging, each access line naming the server process that answered ("[pid]")."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["access"]["fmt"] = '%(levelprefix)s [%(process)d] %(client_addr)s - "%(request_line)s" %(status_code)s'
    return config


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        raise typer.BadParameter("no terminal to ask for the password; pipe it in with --password-stdin")
    first = typer.prompt("Password (at least 12 characters)", hide_input=True)
    if typer.prompt("Repeat the password", hide_input=True) != first:
        raise typer.BadParameter("the two passwords differ")
    return first


@app.command("create-admin")
def create_admin_command(
    username: str = typer.Option(..., "--username", "-u", help="The admin's user name."),
    data: Path = typer.Option(Path("clinic-service"), "--data", "-d", help="The service's data folder."),
    database_url: str = typer.Option(None, "--database-url", envvar="KETAWEIGHT_DATABASE_URL",
                                     help="App state database (default: SQLite DATA/app.db)."),
    clinic: str = typer.Option(None, "--clinic", help="Also create a first clinic with this name."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from standard input "
                                        "(for scripts); otherwise it is asked for twice, hidden."),
) -> None:
    """Create the service's first admin account (asks for the password; it is stored only as an Argon2 hash)."""
    from ketaweight.app.audit import audit
    from ketaweight.app.config import AppConfig
    from ketaweight.app.db import make_engine, migrate, session_factory
    from ketaweight.app.users import create_clinic, create_user

    config = AppConfig(data_dir=data, database_url=database_url)
    password = _read_password(password_stdin)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    migrate(config.url)
    engine = make_engine(config.url)
    try:
        with session_factory(engine)() as db:
            if clinic:
                create_clinic(db, clinic)
            create_user(db, username, password, "admin")
            audit(db, None, "add account", target=username, detail="role admin (ketaweight create-admin)",
                  username=os.environ.get("USER", "command line"))
            db.commit()
    except ValueError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(code=2) from exc
    finally:
        engine.dispose()
    console.print(f"Admin {username!r} created in {config.url.split('///')[-1] if config.url.startswith('sqlite') else 'the database'}. "
                  f"Start the service with: ketaweight serve --data {data}", highlight=False)
