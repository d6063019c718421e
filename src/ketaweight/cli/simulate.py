"""CLI commands for the simulate area (registered on the root app on import)."""

from __future__ import annotations
