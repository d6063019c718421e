"""Find one run's results files in a folder, by their ``kind`` (never by guessing numbers).

A run folder (``ketaweight demo`` writes one) holds the causal study files (``kind =
"causal"``), signals scans (``"signals"``), responsible-use views (``"responsible_use"``),
and, when ``ketaweight mechanisms`` ran, the weight study's mediation, dose-response and
heterogeneity results (``"mechanisms"``).  The simulator truth (``"simulation_truth"``) is
looked for in the folder and its parent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ketaweight.core.errors import InputError, Location
from ketaweight.core.results import read_results

@dataclass
class RunResults:
    """Everything the report reads, as results documents (the common envelope)."""

    folder: Path
    weight: dict[str, Any]
    depression: dict[str, Any] | None = None
    signals: list[dict[str, Any]] = field(default_factory=list)
    responsible_use: dict[str, Any] | None = None
    truth: dict[str, Any] | None = None
    mechanisms: dict[str, Any] | None = None


def _outcome_kind(doc: dict[str, Any]) -> str | None:
    return ((doc.get("results", {}).get("study") or {}).get("outcome") or {}).get("kind")


def _read_any(path: Path) -> dict[str, Any] | None:
    try:
        doc = read_results(path)
    except (ValueError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def collect(folder: str | Path) -> RunResults:
    """Read every results file in ``folder``; the weight study is required, the rest is optional."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such results folder (run `ketaweight demo` or `ketaweight analyze --out`)")
    docs = [(p, d) for p in sorted(root.glob("*.json")) if (d := _read_any(p)) is not None]
    causal = [d for _, d in docs if d.get("kind") == "causal" and "analyses" in d.get("results", {})]
    weight = next((d for d in causal if _outcome_kind(d) == "weight"), None)
    if weight is None:
        raise InputError([(Location(str(root)), "no weight study results (kind 'causal' with outcome kind 'weight'); "
                           "run `ketaweight analyze --store STORE --study ketamine-weight --out DIR` first")])
    weight_study = weight["results"]["study"]["study"]["name"]
    truth = None
    for candidate in (root / "truth.json", root.parent / "truth.json"):
        if candidate.exists():
            truth = read_results(candidate, kind="simulation_truth")
            break
    return RunResults(
        folder=root,
        weight=weight,
        depression=next((d for d in causal if _outcome_kind(d) in ("madrs", "phq9")), None),
        signals=[d for _, d in docs if d.get("kind") == "signals"],
        responsible_use=next((d for _, d in docs if d.get("kind") == "responsible_use"), None),
        truth=truth,
        mechanisms=next((d for _, d in docs if d.get("kind") == "mechanisms"
                         and d.get("provenance", {}).get("study") == weight_study), None),
    )
