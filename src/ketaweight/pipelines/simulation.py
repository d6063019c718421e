"""Simulate a clinic into a store: the simulator's canonical tables loaded (with their provenance),
an optional CSV/Parquet copy, and the ground truth beside them (``truth.json``,
``patient_truth.parquet``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

import pyarrow.parquet as pq

from ketaweight.core.results import write_result
from ketaweight.pipelines.results import SimulationTruth
from ketaweight.sources.simulator import SimulationResult, load_scenario, simulate, with_measurement
from ketaweight.store import Store

ExportFormat = Literal["duckdb", "csv", "parquet"]
"""``duckdb``: the store only; ``csv``/``parquet``: also a copy of the tables in ``OUT/<format>/``."""


def write_truth(result: SimulationResult, out_dir: Path) -> dict[str, Path]:
    """Write ``truth.json`` (common results envelope) and ``patient_truth.parquet``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    if result.truth is not None:
        written["truth"] = write_result(out_dir / "truth.json", SimulationTruth.from_dict(result.truth), result.provenance,
                                        exact_counts=True, seed=result.seed, scenario=result.scenario.model_dump())
    if result.patient_truth is not None:
        tmp = out_dir / ".patient_truth.parquet.tmp"
        pq.write_table(result.patient_truth, tmp)
        tmp.replace(out_dir / "patient_truth.parquet")
        written["patient_truth"] = out_dir / "patient_truth.parquet"
    return written


def run_simulation(scenario: str, patients: int, seed: int, out: Path, export: ExportFormat = "duckdb",
                   truth: bool = True, measurement: str = "clinic", *,
                   on_patients: Callable[[int], None] | None = None,
                   on_stage: Callable[[str], None] | None = None) -> tuple[SimulationResult, Path]:
    """Simulate ``patients`` of ``scenario``; write ``out/store.duckdb`` (refusing an existing one), the
    optional export and the truth.  ``on_patients(n)`` reports simulation progress, ``on_stage(text)``
    the stage that starts."""
    s = with_measurement(load_scenario(scenario), measurement)
    store_path = out / "store.duckdb"
    if store_path.exists():
        raise ValueError(f"{store_path} already exists; choose an empty --out folder or delete it")
    result = simulate(s, patients, seed, truth=truth, on_patients=on_patients)
    out.mkdir(parents=True, exist_ok=True)
    if on_stage is not None:
        on_stage("writing the store")
    with Store(store_path) as store:
        store.load_frames(result.tables, label=f"simulated scenario '{s.name}'", provenance=result.provenance,
                          checks="contract")  # typed and valid by construction (tests/store/test_contract.py)
        if export != "duckdb":
            store.export(out / export, export)
    write_truth(result, out)
    return result, store_path
