"""The canonical DuckDB store: validated, all-or-nothing loads; exports; summaries."""

from ketaweight.store.store import LoadReport, Store

__all__ = ["LoadReport", "Store"]
