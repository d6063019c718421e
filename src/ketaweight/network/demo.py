"""The demo's network step: three simulated clinics, each running the weight study into a bundle, and
the synthesis in the demo's results folder (``ketaweight demo``, stage 7).

Handed to :func:`ketaweight.pipelines.demo.run_demo` by the CLI as a callback, because the network
layer sits above the pipelines.  Files: ``OUT/network/site-*/store.duckdb`` (the sites' own stores,
with their truth), ``OUT/network/site-*.zip`` (what each site shares) and
``OUT/results/network.json`` (what the report reads).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ketaweight.network.site import run_site
from ketaweight.network.synthesis import NetworkResult, synthesize, write_network
from ketaweight.pipelines.network_simulation import SimulatedNetwork, run_network_simulation

DEMO_SITES = 3
STUDY = "ketamine-weight"


@dataclass(frozen=True)
class NetworkDemo:
    """The simulated sites, their bundles, and the synthesis."""

    simulated: SimulatedNetwork
    bundles: list[Path]
    result: NetworkResult
    path: Path


def site_patients(demo_patients: int) -> int:
    """Patients per demo site for a demo of ``demo_patients``: a sixth of them, at least 1,500."""
    return max(1500, demo_patients // 6)


def run_network_demo(folder: Path, results: Path, *, scenario: str, patients: int, seed: int,
                     on_stage: Callable[[str], None] = lambda text: None) -> NetworkDemo:
    """Simulate :data:`DEMO_SITES` sites into ``folder`` (the last with an unmeasured confounder), run
    the weight study at each into a bundle, and write the synthesis into ``results``."""
    on_stage(f"simulating {DEMO_SITES} clinics of about {patients:,} patients")
    net = run_network_simulation(scenario, DEMO_SITES, patients, seed, folder)
    bundles = []
    for spec, store in zip(net.sites, net.stores):
        on_stage(f"{spec.name}: the study and its negative controls → {spec.name}.zip")
        run = run_site(store, STUDY, spec.name, folder / f"{spec.name}.zip")
        assert run.path is not None
        bundles.append(run.path)
    on_stage("synthesis: calibrate and pool")
    result = synthesize(bundles)
    return NetworkDemo(net, bundles, result, write_network(result, results))
