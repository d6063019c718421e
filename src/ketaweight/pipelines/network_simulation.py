"""Simulate a network of clinics (``ketaweight simulate --sites K``): K site stores, each with its
truth, and the network's truth beside them.

``OUT/site-1/store.duckdb`` … ``OUT/site-K/store.duckdb`` (each with ``truth.json`` and
``patient_truth.parquet`` as a single simulation writes them), and ``OUT/network_truth.json``
(``kind = "network_truth"``): per site its size, what sets it apart, whether it has the unmeasured
confounder, and its true ATE/ATT of weight change; for the network the patient-weighted ATE (the
effect in everyone the network holds) and the mean of the sites' ATEs (what random-effects pooling
targets).  The drug's true effect on every negative control is 0 at every site.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ketaweight.core.results import write_result
from ketaweight.pipelines.network_site import SiteData, site_data
from ketaweight.pipelines.results import Averages, NetworkAverage, NetworkTruth, NetworkTruthSite
from ketaweight.pipelines.simulation import ExportFormat, write_truth
from ketaweight.sources.simulator import SimulationResult, load_scenario, simulate, with_measurement
from ketaweight.sources.simulator.network import SiteSpec, network_sites
from ketaweight.store import Store
from ketaweight.study.spec import Study


@dataclass(frozen=True)
class SimulatedNetwork:
    """The sites as simulated, where their stores are, and the network truth file."""

    sites: list[SiteSpec]
    stores: list[Path]
    truth_path: Path
    truth: NetworkTruth


def network_truth(sites: list[SiteSpec], results: list[SimulationResult]) -> NetworkTruth:
    """The truth of every site and of the network (see module docstring)."""
    rows = []
    for spec, res in zip(sites, results):
        t = res.truth or {}
        kg, pct = t.get("weight_change_kg"), t.get("weight_change_pct")
        rows.append(NetworkTruthSite(spec.name, spec.n_patients, spec.seed, spec.unmeasured_confounder,
                                     dict(spec.differences), Averages(**kg) if kg else None,
                                     Averages(**pct) if pct else None))
    total = sum(r.n_patients for r in rows)
    have = [r for r in rows if r.weight_change_kg is not None]
    pooled = None
    if have:
        pooled = NetworkAverage(sum(r.weight_change_kg.ate * r.n_patients for r in have) / total,  # type: ignore[union-attr]
                                sum(r.weight_change_kg.ate for r in have) / len(have))  # type: ignore[union-attr]
    return NetworkTruth(tuple(rows), 0.0, pooled)


def run_network_simulation(scenario: str, sites: int, patients: int, seed: int, out: Path, *,
                           export: ExportFormat = "duckdb", truth: bool = True, measurement: str = "clinic",
                           unmeasured_site: bool = True,
                           on_site: Callable[[SiteSpec], None] | None = None,
                           on_patients: Callable[[int], None] | None = None) -> SimulatedNetwork:
    """Simulate ``sites`` stores of about ``patients`` patients each into ``out`` (refusing existing stores)."""
    base = with_measurement(load_scenario(scenario), measurement)
    specs = network_sites(base, sites, patients, seed, unmeasured_site=unmeasured_site)
    existing = [out / s.name / "store.duckdb" for s in specs if (out / s.name / "store.duckdb").exists()]
    if existing:
        raise ValueError(f"{existing[0]} already exists; choose an empty --out folder or delete it")
    stores, results = [], []
    for spec in specs:
        if on_site is not None:
            on_site(spec)
        res = simulate(spec.scenario, spec.n_patients, spec.seed, truth=truth, on_patients=on_patients)
        folder = out / spec.name
        folder.mkdir(parents=True, exist_ok=True)
        with Store(folder / "store.duckdb") as store:
            store.load_frames(res.tables, label=f"simulated {spec.name}", provenance=res.provenance)
            if export != "duckdb":
                store.export(folder / export, export)
        write_truth(res, folder)
        stores.append(folder / "store.duckdb")
        results.append(res)
    doc = network_truth(specs, results)
    path = write_result(out / "network_truth.json", doc,
                        {"origin": "simulated", "synthetic": True, "source": f"ketaweight simulator, scenario '{base.name}'",
                         "seed": seed, "sites": sites, "patients": patients}, exact_counts=True)
    return SimulatedNetwork(specs, stores, path, doc)


def simulated_site_data(spec: SiteSpec, study: Study, *, truth: bool) -> tuple[SimulationResult, SiteData]:
    """One site simulated into an in-memory store and its study emulated there (validation runs)."""
    res = simulate(spec.scenario, spec.n_patients, spec.seed, truth=truth)
    with Store(":memory:") as store:
        store.load_frames(res.tables, label=spec.name, provenance=res.provenance)
        return res, site_data(store, study)
