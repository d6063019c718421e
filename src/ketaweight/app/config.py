"""Settings of one clinic service: where its data live and its limits (units in the names)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path

from ketaweight.app.db import sqlite_url


@dataclass(frozen=True, kw_only=True)
class AppConfig:
    """``data_dir`` holds ``store.duckdb`` (the canonical store), ``app.db`` (app state, unless
    ``database_url`` names PostgreSQL), ``runs/`` (results and reports) and ``uploads/`` (scratch)."""

    data_dir: Path
    database_url: str | None = None
    rules_path: Path | None = None
    """Monitoring rules file (default: the shipped one)."""
    secure_cookies: bool = True
    """Mark cookies Secure (sent over HTTPS only; browsers also accept them from http://localhost)."""
    session_hours: float = 8.0
    max_upload_bytes: int = 200 * 1024**2
    max_unpacked_bytes: int = 2 * 1024**3
    max_compression_ratio: float = 200.0
    """Largest uncompressed/compressed size ratio of one archive member (CSV compresses about 10×)."""
    login_max_failures: int = 5
    login_window_minutes: float = 15.0
    run_jobs: bool = True
    """Start the background job runner (tests of the web layer alone may switch it off)."""
    job_threads: int = 1
    """Threads each job's numerical libraries may use (leaves the other core to the web pages)."""
    extra: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        """These settings as JSON (how ``ketaweight serve --workers N`` hands them to its server processes)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in values.items()})

    @classmethod
    def from_json(cls, text: str) -> "AppConfig":
        raw = json.loads(text)
        for key in ("data_dir", "rules_path"):
            if raw.get(key) is not None:
                raw[key] = Path(raw[key])
        return cls(**raw)

    @property
    def url(self) -> str:
        return self.database_url or sqlite_url(self.data_dir)

    @property
    def store_path(self) -> Path:
        return self.data_dir / "store.duckdb"

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / "runs"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"
