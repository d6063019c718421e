"""The application factory: settings, database migration, routes, security headers, error pages, jobs."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from ketaweight.app import routes_admin, routes_api, routes_auth, routes_data, routes_patients, routes_runs
from ketaweight.app.cache import VersionedCache
from ketaweight.app.config import AppConfig
from ketaweight.app.db import make_engine, migrate, session_factory
from ketaweight.app.deps import NotSignedIn, current_auth, render
from ketaweight.app.jobs import JobRunner
from ketaweight.app.storelock import ReadAnchor, StoreBusy
from ketaweight.core.version import __version__
from ketaweight.pipelines.monitoring_rules import load_rules

CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
"""Scripts only from this service; inline styles are allowed for the report's own stylesheet."""


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


RECORD_CACHE_ENTRIES = 4096
"""Cached records, charts and aggregates per server process (a patient's record and charts: ~20 KB)."""


def prepare(config: AppConfig) -> None:
    """What must happen once before any server process starts: the data folder, the app database migrated
    to the newest schema, the rules file read (its errors name file, line and key)."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    migrate(config.url)
    load_rules(config.rules_path)


CONFIG_VARIABLE = "KETAWEIGHT_SERVE_CONFIG"
"""The environment variable through which ``ketaweight serve --workers N`` passes its settings (JSON)."""


def _end_with_parent() -> None:
    """Ask Linux to stop this process when its parent ends, even by SIGKILL (which lets uvicorn's supervisor
    stop nobody): no server process is left behind.  prctl(PR_SET_PDEATHSIG) has no Python binding."""
    if not sys.platform.startswith("linux"):
        return
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the parent was already gone before the call
        os.kill(os.getpid(), signal.SIGTERM)


def app_from_environment() -> FastAPI:
    """The app of one of ``ketaweight serve --workers N``'s server processes (uvicorn calls this factory in each;
    the parent ran :func:`prepare`)."""
    _end_with_parent()
    return create_app(AppConfig.from_json(os.environ[CONFIG_VARIABLE]), prepared=True)


def create_app(config: AppConfig, *, prepared: bool = False) -> FastAPI:
    """A ready app for ``config`` (:func:`prepare` runs first unless ``prepared``).

    Several processes may serve the same ``config`` (``ketaweight serve --workers N``): each has its own
    database pool, store anchor and caches; sessions, jobs and their progress live in the app database; the
    job runner of only one process at a time runs jobs (:class:`~ketaweight.app.jobs.JobRunner`)."""
    if not prepared:
        prepare(config)
    engine = make_engine(config.url)
    factory = session_factory(engine)
    anchor = ReadAnchor(config.store_path)
    runner = JobRunner(config, factory) if config.run_jobs else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        anchor.start()
        if runner is not None:
            runner.start()
        yield
        if runner is not None:
            runner.stop()
        anchor.stop()
        engine.dispose()

    app = FastAPI(title="ketaweight clinic service", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None,
                  description="Monitoring patients on ketamine, running studies and reading the answer.")
    app.state.config, app.state.factory, app.state.engine, app.state.anchor = config, factory, engine, anchor
    app.state.cache = VersionedCache(RECORD_CACHE_ENTRIES)
    app.state.rules = load_rules(config.rules_path)
    app.state.wake_jobs = runner.wake if runner is not None else (lambda: None)
    for module in (routes_auth, routes_patients, routes_data, routes_runs, routes_admin, routes_api):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")

    @app.middleware("http")
    async def security_headers(request: Request, call_next):  # noqa: ANN001, ANN202 - Starlette's signature
        response: Response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        if not request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    def _error(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": message}, status_code=status, headers=headers)
        with factory() as db:
            auth = current_auth(request, db)
            titles = {401: "Please sign in", 403: "Not allowed", 404: "Not found", 409: "Busy", 411: "Size needed",
                      413: "Too large", 422: "Please check the form"}
            return render(request, "error.html", auth, status, title=titles.get(status, "Something went wrong"),
                          message=message)

    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, exc: NotSignedIn) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": "sign in first"}, status_code=401)
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return _error(request, exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": exc.errors()}, status_code=422)
        where = "; ".join(f"{'.'.join(str(x) for x in e['loc'][1:])}: {e['msg']}" for e in exc.errors())
        return _error(request, 422, f"the request was not understood ({where})")

    @app.exception_handler(StoreBusy)
    async def busy(request: Request, exc: StoreBusy) -> Response:
        return _error(request, 409, str(exc), {"Retry-After": "30"})

    return app
