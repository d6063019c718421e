"""CLI commands for the store area (registered on the root app on import)."""

from __future__ import annotations
