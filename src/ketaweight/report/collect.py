"""Find one run's results files in a folder, by their ``kind``, and read them into their types.

A run folder (``ketaweight demo`` writes one) holds the causal study files (``kind =
"causal"``), signals scans (``"signals"``), responsible-use views (``"responsible_use"``),
and, when ``ketaweight mechanisms`` ran, the weight study's mediation, dose-response and
heterogeneity results (``"mechanisms"``), and a network synthesis (``"network"``, issue 15).  The simulator truth (``"simulation_truth"``) is
looked for in the folder and its parent, and used only when it describes the same simulated data
as the weight study (same provenance): a truth file lying beside real records is ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ketaweight.core.errors import InputError, Location
from ketaweight.core.results import ResultsFile, read_result
from ketaweight.network import synthesis as _network  # noqa: F401  (registers kind 'network')
from ketaweight.pipelines.results import CausalStudy, SimulationTruth, kinds


@dataclass
class RunResults:
    """Everything the report reads, as typed results files."""

    folder: Path
    weight: ResultsFile  # results: CausalStudy
    depression: ResultsFile | None = None  # CausalStudy
    signals: list[ResultsFile] = field(default_factory=list)  # SignalsReport
    responsible_use: ResultsFile | None = None  # ResponsibleUse
    truth: ResultsFile | None = None  # SimulationTruth
    mechanisms: ResultsFile | None = None  # MechanismsResults
    network: ResultsFile | None = None  # NetworkResult (issue 15)

    @property
    def study(self) -> CausalStudy:
        """The weight study's results."""
        return self.weight.results

    @property
    def simulation_truth(self) -> SimulationTruth | None:
        return self.truth.results if self.truth is not None else None


def _read_any(path: Path) -> ResultsFile | None:
    """A results file of a known kind, or None for any other JSON in the folder."""
    try:
        return read_result(path)
    except (ValueError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def collect(folder: str | Path) -> RunResults:
    """Read every results file in ``folder``; the weight study is required, the rest is optional."""
    kinds()  # every results type registered
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such results folder (run `ketaweight demo` or `ketaweight analyze --out`)")
    docs = [d for p in sorted(root.glob("*.json")) if (d := _read_any(p)) is not None]
    causal = [d for d in docs if d.kind == "causal" and d.results.study is not None]
    weight = next((d for d in causal if d.results.outcome_kind == "weight"), None)
    if weight is None:
        raise InputError([(Location(str(root)), "no weight study results (kind 'causal' with outcome kind 'weight'); "
                           "run `ketaweight analyze --store STORE --study ketamine-weight --out DIR` first")])
    weight_study = weight.results.study.study.name
    truth = None
    for candidate in (root / "truth.json", root.parent / "truth.json"):
        if candidate.exists():
            found = read_result(candidate, SimulationTruth)
            if found.data is not None and found.data == weight.data:  # the same simulated data, not a stray file
                truth = found
            break
    return RunResults(
        folder=root,
        weight=weight,
        depression=next((d for d in causal if d.results.outcome_kind in ("madrs", "phq9")), None),
        signals=[d for d in docs if d.kind == "signals"],
        responsible_use=next((d for d in docs if d.kind == "responsible_use"), None),
        truth=truth,
        mechanisms=next((d for d in docs if d.kind == "mechanisms" and d.results.study == weight_study), None),
        network=next((d for d in docs if d.kind == "network"), None),
    )
